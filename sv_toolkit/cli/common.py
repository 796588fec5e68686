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

from sv_toolkit.data.audio import AudioError
from sv_toolkit.features.store import FbankSettings
from sv_toolkit.scoring.embeddings import extract_embeddings
from sv_toolkit.scoring.sources import AudioFeatureSource

# Errors a user can fix: print them as one line, without a traceback.
USER_ERRORS = (FileNotFoundError, ValueError, KeyError, ImportError, AudioError)


def reports_errors(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Run ``main``; a user-fixable error becomes 'prog: error: message' on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(argv: list[str] | None = None) -> int:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        try:
            return main(argv)
        except USER_ERRORS as err:
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
            return 2

    return wrapper


def embed_audio_files(
    model: nn.Module, paths: dict[str, str], model_config: dict, device: torch.device, **extract_options
) -> np.ndarray:
    """Embeddings (N, D) of audio files (key -> path), fbank computed with the model's number of mel bins."""
    settings = FbankSettings(num_mel_bins=int(model_config.get("feat_dim", 80)))
    return extract_embeddings(model, AudioFeatureSource(paths, settings), device, **extract_options)
