"""Kaldi-compatible log-mel filterbank features and cepstral mean normalisation."""
from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi

from sv_toolkit.errors import InputFileError

# Kaldi works on 16-bit integer sample values; soundfile gives floats in [-1, 1].
_INT16_SCALE = float(2**15)


def compute_fbank(
    waveform: torch.Tensor,
    sample_rate: int,
    num_mel_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    dither: float = 0.0,
) -> torch.Tensor:
    """Log-mel filterbank of a float waveform in [-1, 1], shape (N,) or (1, N) -> (frames, num_mel_bins).

    Identical to ``torchaudio.compliance.kaldi.fbank`` on ``waveform * 2**15`` with a Hamming window and no
    energy term (the wespeaker / Kaldi recipe). No mean normalisation here: see :func:`apply_cmn`.
    """
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2 or waveform.shape[0] != 1:
        raise ValueError(f"compute_fbank expects a mono waveform of shape (N,) or (1, N), got {tuple(waveform.shape)}")
    min_samples = int(sample_rate * frame_length_ms / 1000)
    if waveform.shape[1] < min_samples:
        raise InputFileError(
            f"waveform has {waveform.shape[1]} samples, fewer than one {frame_length_ms} ms frame "
            f"({min_samples} samples at {sample_rate} Hz)"
        )
    return kaldi.fbank(
        waveform.float() * _INT16_SCALE,
        num_mel_bins=num_mel_bins,
        frame_length=frame_length_ms,
        frame_shift=frame_shift_ms,
        dither=dither,
        energy_floor=0.0,
        sample_frequency=float(sample_rate),
        window_type="hamming",
        use_energy=False,
    )


def apply_cmn(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance cepstral mean normalisation over frames (no variance normalisation).

    Works on (frames, bins) or batched (B, frames, bins); the mean is taken over the frame axis.
    """
    return feats - feats.mean(dim=-2, keepdim=True)
