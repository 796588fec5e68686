"""Features computed from audio files on the fly (no feature store): the test-time recipe."""
from __future__ import annotations

import os

import torch

from sv_toolkit.data.audio import read_audio
from sv_toolkit.features.fbank import apply_cmn, compute_fbank
from sv_toolkit.features.store import FbankSettings


def utterance_fbank(
    path: str | os.PathLike, settings: FbankSettings = FbankSettings(), cmn: bool = True, resample: bool = False
) -> torch.Tensor:
    """Test-time features of a whole audio file: Kaldi fbank with dither 0, then per-utterance CMN, (T, bins).

    The file must have ``settings.sample_rate``, or with ``resample`` any rate (resampled to it on read);
    multi-channel audio is averaged to mono. Raises AudioError naming the file otherwise, and ValueError for a
    file shorter than one frame.
    """
    wave, _ = read_audio(path, settings.sample_rate, resample_to_expected=resample)
    feats = compute_fbank(
        wave, settings.sample_rate, settings.num_mel_bins, settings.frame_length_ms, settings.frame_shift_ms, 0.0
    )
    return apply_cmn(feats) if cmn else feats
