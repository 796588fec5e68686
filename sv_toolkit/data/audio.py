"""Reading audio files with soundfile, with errors that name the file.

torch is imported inside :func:`read_audio` only: the prepare stage reads headers and must not pay torch's
~700 MB of resident memory (measured: ``import torch`` alone, 2.14 with its CUDA libraries).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    import torch


class AudioError(RuntimeError):
    """An audio file that cannot be used: unreadable, empty or of an unexpected sample rate."""


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(num_frames, sample_rate, channels) from the file header, without decoding the samples."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot read audio file {path}: {err}. Replace or delete the file.") from err
    return int(info.frames), int(info.samplerate), int(info.channels)


def read_audio(
    path: str | os.PathLike,
    expected_sample_rate: int | None = None,
    start: int = 0,
    num_samples: int = -1,
) -> tuple[torch.Tensor, int]:
    """Read a mono float32 waveform in [-1, 1] as a 1-D tensor, and its sample rate.

    Multi-channel files are averaged to mono. ``start`` / ``num_samples`` read a segment.
    Raises :class:`AudioError` naming the file when it cannot be decoded, is empty, or has another rate than
    ``expected_sample_rate``.
    """
    p = Path(path)
    try:
        data, sr = sf.read(str(p), start=start, frames=num_samples, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot read audio file {p}: {err}. Replace or delete the file.") from err
    if data.shape[0] == 0:
        raise AudioError(f"audio file {p} has no samples (start={start}); delete it or fix the manifest")
    if expected_sample_rate is not None and sr != expected_sample_rate:
        raise AudioError(
            f"audio file {p} has sample rate {sr} Hz, expected {expected_sample_rate} Hz; "
            "resample the corpus (e.g. sox in.wav -r 16000 out.wav) or set features.sample_rate"
        )
    import torch

    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return torch.from_numpy(np.ascontiguousarray(mono)), int(sr)
