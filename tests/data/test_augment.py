"""Augmentation and training-chunk features: speed, noise at an SNR, reverberation, SpecAugment, the chunker."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from fake_corpora import make_musan, make_rirs, make_voxceleb_tree, voxceleb_speakers
from sv_toolkit.data.augment import (
    NoiseKind,
    SpecAugment,
    SpeedPerturbation,
    WaveformAugmentation,
    _fast_len,
    add_noise,
    reverberate,
)
from sv_toolkit.data.chunking import AudioChunker, chunk_rng
from sv_toolkit.data.manifests import Utterance, write_utterances
from sv_toolkit.features import FbankSettings, apply_cmn, compute_fbank, utterance_fbank

SR = 16000


def _tone(freq: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


def _peak_hz(wave: torch.Tensor) -> float:
    spec = torch.fft.rfft(wave * torch.hann_window(wave.numel()))
    return float(spec.abs().argmax()) * SR / wave.numel()


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_length_and_pitch_by_the_factor(factor):
    speed = SpeedPerturbation([1.0, factor])
    wave = _tone(1000.0, 2.0)
    out = speed(1, wave)
    assert abs(out.numel() - wave.numel() / factor) <= 1
    # A 1 kHz tone played `factor` times faster is at factor kHz; FFT bin width at 1.8-2.2 s is < 0.6 Hz.
    assert abs(_peak_hz(out[1000:-1000]) - 1000.0 * factor) < 2.0
    assert speed(0, wave) is wave
    assert speed.input_length(1, 32240) == math.ceil(32240 * factor)


def test_speed_factor_must_be_a_small_ratio():
    with pytest.raises(ValueError, match="not a ratio of integers"):
        SpeedPerturbation([1.0, 1.0 / 3 + 1e-4])


def test_add_noise_reaches_the_snr():
    rng = np.random.default_rng(0)
    wave = _tone(440.0)
    noise = torch.from_numpy(rng.standard_normal(SR).astype(np.float32))
    for snr in (0.0, 7.5, 30.0):
        out = add_noise(wave, noise, snr)
        measured = 10 * math.log10(float(wave.pow(2).mean()) / float((out - wave).pow(2).mean()))
        assert abs(measured - snr) < 1e-3  # float32 arithmetic: measured error below 1e-4 dB


def test_reverberation_is_aligned_to_the_direct_path():
    wave = _tone(300.0, 0.5)
    delta = torch.zeros(2000)
    delta[123] = 0.7  # a pure delay: after alignment and unit-energy scaling the signal is unchanged
    torch.testing.assert_close(reverberate(wave, delta), wave, atol=1e-5, rtol=0)
    rir = torch.from_numpy(np.random.default_rng(1).standard_normal(4000).astype(np.float32)) * torch.exp(
        -torch.arange(4000) / 500.0)
    rir[50] = 5.0
    out = reverberate(wave, rir)
    assert out.shape == wave.shape
    full = np.convolve(wave.numpy(), (rir / rir.norm()).numpy())
    np.testing.assert_allclose(out.numpy(), full[50 : 50 + wave.numel()], atol=1e-4)  # fp32 FFT error ~1e-6


def test_fast_fft_length_is_5_smooth_and_not_smaller():
    for n in (1, 7, 48239, 65537, 100_000):
        m = _fast_len(n)
        assert m >= n and m < 2 * n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        assert m == 1


@pytest.fixture(scope="module")
def noise_lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("aug")
    make_musan(root / "musan", files_per_source=3)
    make_rirs(root / "rirs")
    out = {}
    for name in ("musan", "rirs"):
        files = sorted((root / name).rglob("*.wav"))
        utts = [Utterance(p.relative_to(root / name).as_posix(), p.relative_to(root / name).parts[0], str(p),
                          sf.info(str(p)).frames, SR) for p in files]
        write_utterances(root / f"{name}.tsv", utts)
        out[name] = root / f"{name}.tsv"
    return out


KINDS = [NoiseKind("noise", 1.0, (0.0, 15.0)), NoiseKind("speech", 1.0, (10.0, 30.0), (3, 7)),
         NoiseKind("music", 1.0, (5.0, 15.0))]


def test_waveform_augmentation_probability_split_and_determinism(noise_lists):
    aug = WaveformAugmentation(0.6, 0.5, KINDS, noise_lists["musan"], noise_lists["rirs"], SR)
    wave = _tone(200.0, 0.5)
    outcomes = {"clean": 0, "reverb": 0, "noise": 0}
    seen_kinds = set()
    calls = []
    for bank in aug.banks.values():  # record which bank each noise segment comes from
        bank.segment = lambda rng, length, b=bank, read=bank.segment: (calls.append(b.name), read(rng, length))[1]
    for i in range(600):
        calls.clear()
        out = aug(wave, chunk_rng(0, 0, i))
        if out is wave:
            outcomes["clean"] += 1
        elif calls:
            outcomes["noise"] += 1
            seen_kinds.add(calls[0])
            assert 3 <= len(calls) <= 7 if calls[0] == "speech" else len(calls) == 1  # babble: 3-7 summed
        else:
            outcomes["reverb"] += 1
    # 600 draws: binomial sd of the augmented share is 0.02; 4 sd bounds.
    assert abs((outcomes["noise"] + outcomes["reverb"]) / 600 - 0.6) < 0.08
    assert abs(outcomes["reverb"] / (outcomes["noise"] + outcomes["reverb"]) - 0.5) < 0.11
    assert seen_kinds == {"noise", "speech", "music"}
    torch.testing.assert_close(aug(wave, chunk_rng(3, 1, 7)), aug(wave, chunk_rng(3, 1, 7)))


def test_augmentation_without_its_manifest_says_what_to_set():
    with pytest.raises(ValueError, match="data.rirs_dir"):
        WaveformAugmentation(0.6, 0.5, KINDS, None, None, SR)


def test_spec_augment_masks_within_limits():
    spec = SpecAugment(1.0, 2, 10, 1, 8)
    feats = torch.randn(200, 80) + 5.0
    out = spec(feats, np.random.default_rng(0))
    zero_rows = (out == 0).all(dim=1).sum().item()
    zero_cols = (out == 0).all(dim=0).sum().item()
    assert 1 <= zero_rows <= 20 and 1 <= zero_cols <= 8
    assert SpecAugment(0.0, 2, 10, 1, 8)(feats, np.random.default_rng(0)) is feats


def test_audio_chunker_shapes_labels_dither_and_determinism(noise_lists):
    settings = FbankSettings()
    aug = WaveformAugmentation(1.0, 0.5, KINDS, noise_lists["musan"], noise_lists["rirs"], SR)
    chunker = AudioChunker(200, settings, 1.0, num_speakers=5, speed=SpeedPerturbation([1.0, 0.9, 1.1]),
                           speed_as_new_speakers=True, augment=aug)
    assert chunker.chunk_samples == 32240 and chunker.num_classes == 15
    wave = _tone(250.0, 3.0)
    labels = set()
    for i in range(30):
        rng = chunk_rng(1, 0, i)
        plan = chunker.plan(rng, wave.numel())
        feats = chunker.features(wave[plan.start : plan.start + plan.length], plan, rng)
        assert feats.shape == (200, 80)
        assert feats.mean(dim=0).abs().max() < 1e-4  # CMN
        labels.add(chunker.label(2, plan))
    assert labels == {2, 7, 12}
    # A short utterance (0.5 s) is read whole and repeated.
    rng = chunk_rng(1, 0, 99)
    plan = chunker.plan(rng, 8000)
    assert plan.start == 0 and plan.length == 8000
    assert chunker.features(wave[:8000], plan, rng).shape == (200, 80)

    def run(seed, dither):
        c = AudioChunker(200, settings, dither, 5)
        rng = chunk_rng(seed, 0, 0)
        plan = c.plan(rng, wave.numel())
        return c.features(wave[plan.start : plan.start + plan.length], plan, rng)

    torch.testing.assert_close(run(4, 1.0), run(4, 1.0))  # same seed, same chunk, same dither noise
    assert not torch.equal(run(4, 1.0), run(4, 0.0))
    state = torch.get_rng_state()
    run(5, 1.0)
    assert torch.equal(torch.get_rng_state(), state)  # dither seeding does not disturb the caller's RNG


def _check_utterance_fbank(wav_root, expected_files: int) -> None:
    files = sorted(wav_root.glob("*/*/*.wav"))
    path = files[0]
    feats = utterance_fbank(path)
    wave, _ = sf.read(str(path), dtype="float32")
    ref = apply_cmn(compute_fbank(torch.from_numpy(wave), SR))
    torch.testing.assert_close(feats, ref, rtol=0, atol=0)
    assert feats.shape[0] == 1 + (len(wave) - 400) // 160 and len(files) == expected_files


def test_utterance_fbank_is_dither_free_fbank_with_cmn(tmp_path):
    make_voxceleb_tree(tmp_path / "wav", voxceleb_speakers(2, version=1), videos=1, utts=2, seconds=1.7)
    _check_utterance_fbank(tmp_path / "wav", 4)


def test_utterance_fbank_is_dither_free_fbank_with_cmn_on_real_speech(shared_data):
    _check_utterance_fbank(shared_data / "voxceleb1_sample" / "wav", 6)
