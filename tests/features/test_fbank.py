import math

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from fake_corpora import write_wav
from sv_toolkit.data.audio import read_audio
from sv_toolkit.features import apply_cmn, compute_fbank


def _reference(wave: torch.Tensor, sr: int, dither: float = 0.0) -> torch.Tensor:
    return kaldi.fbank(
        wave.unsqueeze(0) * 32768.0, num_mel_bins=80, frame_length=25.0, frame_shift=10.0, dither=dither,
        energy_floor=0.0, sample_frequency=sr, window_type="hamming", use_energy=False,
    )


def test_fbank_matches_torchaudio_kaldi_on_a_tone():
    sr = 16000
    t = torch.arange(sr) / sr
    wave = 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.01 * torch.randn(sr, generator=torch.Generator().manual_seed(0))
    feats = compute_fbank(wave, sr)
    assert feats.shape == (98, 80)  # 1 + (16000 - 400) // 160
    torch.testing.assert_close(feats, _reference(wave, sr), rtol=0, atol=0)
    # (1, N) input gives the same thing
    torch.testing.assert_close(compute_fbank(wave.unsqueeze(0), sr), feats)


def _check_speech_file(path) -> None:
    wave, sr = read_audio(path)
    feats = compute_fbank(wave, sr)
    assert feats.shape[1] == 80 and feats.shape[0] == 1 + (wave.numel() - 400) // 160
    torch.testing.assert_close(feats, _reference(wave, sr), rtol=0, atol=0)
    # Log-mel energies of 16-bit speech sit in a plausible range (means measured: 17-18 on the real VoxCeleb1
    # sample, 15-17 on the synthetic voices).
    assert 0.0 < feats.mean().item() < 25.0


def test_fbank_matches_torchaudio_kaldi_on_synthetic_speech(tmp_path):
    for seed in range(3):  # three voices of different pitch and formants
        _check_speech_file(write_wav(tmp_path / f"{seed}.wav", 2.3, seed=seed))


def test_fbank_matches_torchaudio_kaldi_on_real_speech(shared_data):
    _check_speech_file(next((shared_data / "voxceleb1_sample" / "wav").glob("*/*/*.wav")))


def test_fbank_bins_and_frame_settings():
    wave = torch.randn(8000, generator=torch.Generator().manual_seed(1)) * 0.1
    feats = compute_fbank(wave, 16000, num_mel_bins=40, frame_length_ms=20.0, frame_shift_ms=5.0)
    assert feats.shape == (1 + (8000 - 320) // 80, 40)


def test_fbank_rejects_stereo_and_too_short():
    with pytest.raises(ValueError, match="mono"):
        compute_fbank(torch.zeros(2, 16000), 16000)
    with pytest.raises(ValueError, match="fewer than one"):
        compute_fbank(torch.zeros(100), 16000)


def test_cmn_removes_the_mean_per_utterance():
    feats = torch.randn(3, 50, 80, generator=torch.Generator().manual_seed(0)) + torch.arange(80.0)
    out = apply_cmn(feats)
    # fp32: subtracting a mean of values up to ~80 leaves residuals of a few ulp(80) = 7.6e-6 each.
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(3, 80), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=1), feats.std(dim=1))  # no variance normalisation
