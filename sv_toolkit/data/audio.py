"""Reading audio files with soundfile, with errors that name the file; resampling to a model's rate.

torch is imported inside :func:`read_audio` only: the prepare stage reads headers and must not pay torch's
~700 MB of resident memory (measured: ``import torch`` alone, 2.14 with its CUDA libraries).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from sv_toolkit.errors import InputFileError

if TYPE_CHECKING:
    import torch


class AudioError(InputFileError, RuntimeError):
    """An audio file that cannot be used: unreadable, empty or of an unexpected sample rate."""


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """(num_frames, sample_rate, channels) from the file header, without decoding the samples."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot read audio file {path}: {err}. Replace or delete the file.") from err
    return int(info.frames), int(info.samplerate), int(info.channels)


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """Samples of a ``num_samples`` waveform at ``from_rate`` once resampled to ``to_rate`` (:func:`resample`)."""
    return -(-num_samples * to_rate // from_rate)


def resample(wave: torch.Tensor, from_rate: int, to_rate: int) -> torch.Tensor:
    """A waveform (N,) at ``from_rate`` as (:func:`resampled_length`,) at ``to_rate``: torchaudio's band-limited
    sinc interpolation (Hann window, 6 zero crossings), which low-passes below the lower Nyquist frequency."""
    import torchaudio.functional as AF

    return AF.resample(wave, int(from_rate), int(to_rate))


def read_audio(
    path: str | os.PathLike,
    expected_sample_rate: int | None = None,
    start: int = 0,
    num_samples: int = -1,
    resample_to_expected: bool = False,
) -> tuple[torch.Tensor, int]:
    """Read a mono float32 waveform in [-1, 1] as a 1-D tensor, and its sample rate.

    Multi-channel files are averaged to mono. ``start`` / ``num_samples`` read a segment.
    Raises :class:`AudioError` naming the file when it cannot be decoded, is empty, or has another rate than
    ``expected_sample_rate`` -- unless ``resample_to_expected``: then such a file is read whole, resampled to
    ``expected_sample_rate`` (:func:`resample`) and the segment is cut from that (``start`` / ``num_samples`` count
    samples at the expected rate), so segments are the same as slices of the whole resampled file.
    """
    p = Path(path)
    if resample_to_expected and expected_sample_rate is not None:
        _, rate, _ = audio_info(p)
        if rate != expected_sample_rate:
            whole, _ = read_audio(p)
            wave = resample(whole, rate, expected_sample_rate)
            segment = wave[start:] if num_samples < 0 else wave[start : start + num_samples]
            if segment.numel() == 0:
                raise AudioError(f"audio file {p} has no samples at {start} once resampled to {expected_sample_rate} "
                                 "Hz; delete it or fix the manifest")
            return segment.contiguous(), int(expected_sample_rate)
    try:
        data, sr = sf.read(str(p), start=start, frames=num_samples, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot read audio file {p}: {err}. Replace or delete the file.") from err
    if data.shape[0] == 0:
        raise AudioError(f"audio file {p} has no samples (start={start}); delete it or fix the manifest")
    if expected_sample_rate is not None and sr != expected_sample_rate:
        raise AudioError(
            f"audio file {p} has sample rate {sr} Hz, expected {expected_sample_rate} Hz; resample the corpus "
            "(e.g. sox in.wav -r 16000 out.wav) or let prepare keep such files with data.resample_on_read=true"
        )
    import torch

    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return torch.from_numpy(np.ascontiguousarray(mono)), int(sr)
