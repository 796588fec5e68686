"""Shared pieces of the command-line tools: error reporting and embedding a list of audio files."""
from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from sv_toolkit.errors import UserError
from sv_toolkit.model_file import ModelHeader
from sv_toolkit.scoring.embeddings import extract_embeddings
from sv_toolkit.scoring.sources import AudioFeatureSource

log = logging.getLogger(__name__)


def reports_errors(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Run ``main``; a :class:`~sv_toolkit.errors.UserError` becomes 'prog: error: message' on stderr and exit
    status 2. Every other exception is a bug and keeps its traceback."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            return main(argv)
        except UserError as err:
            print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
            return 2

    return wrapper


def _kilohertz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def embed_audio_files(
    model: nn.Module, paths: dict[str, str], header: ModelHeader, device: torch.device, **extract_options
) -> np.ndarray:
    """Embeddings (N, D) of audio files (key -> path) with the features the model file names.

    Files at another sample rate than the model's (any container soundfile reads: wav, flac, ogg ...) are
    resampled to it on read; this is said once per rate met.
    """
    settings = header.fbank_settings()
    source = AudioFeatureSource(paths, settings, resample=True)
    source.num_frames()  # reads every header: the rates are known before extraction starts
    for rate in source.resampled_rates:
        log.info("resampling %s audio to %s (the model's sample rate)", _kilohertz(rate),
                 _kilohertz(settings.sample_rate))
    return extract_embeddings(model, source, device, **extract_options)
