"""On-the-fly augmentation of training chunks: speed perturbation, MUSAN noise / babble / music, RIR
reverberation, SpecAugment. Everything draws from a ``numpy.random.Generator`` passed in, so a chunk's
augmentation is fixed by its seed (see :mod:`sv_toolkit.data.chunking`), whatever worker computes it.

Defaults follow wespeaker (REFERENCE.md section 3): speed 0.9 / 1.0 / 1.1 with equal probability, noise or
reverberation with probability 0.6 (50/50), SNR noise 0-15 dB, speech 10-30 dB (babble: 3-7 utterances summed),
music 5-15 dB.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch
import torchaudio.transforms as AT

from sv_toolkit.data.audio import read_audio
from sv_toolkit.data.manifests import read_utterances


class SpeedPerturbation:
    """Resampling by a rational factor p/q (1.1 = 11/10): the chunk plays ``factor`` times faster.

    Kernels are built once per factor (torchaudio ``Resample`` between small integers, not between
    16000 and 17600 Hz); a factor must be a ratio of integers up to 100 (0.9, 1.1, 0.95, ...).
    """

    def __init__(self, factors: Sequence[float]) -> None:
        if not factors or any(f <= 0 for f in factors):
            raise ValueError(f"augment.speed.factors={list(factors)}: give positive factors, e.g. [1.0, 0.9, 1.1]")
        self.factors = [float(f) for f in factors]
        self._ratios, self._resamplers = [], []
        for f in self.factors:
            ratio = Fraction(f).limit_denominator(100)
            if abs(float(ratio) - f) > 1e-9:
                raise ValueError(f"speed factor {f} is not a ratio of integers up to 100; use e.g. 0.9 or 1.1")
            self._ratios.append(ratio)
            self._resamplers.append(
                None if ratio == 1 else AT.Resample(orig_freq=ratio.numerator, new_freq=ratio.denominator)
            )

    def __len__(self) -> int:
        return len(self.factors)

    def input_length(self, k: int, out_len: int) -> int:
        """Samples to read so that factor ``k`` yields at least ``out_len`` samples."""
        r = self._ratios[k]
        return math.ceil(out_len * r.numerator / r.denominator)

    def __call__(self, k: int, wave: torch.Tensor) -> torch.Tensor:  # (N,) -> (about N / factor,)
        resampler = self._resamplers[k]
        return wave if resampler is None else resampler(wave)


class AudioBank:
    """Audio files of one kind (a MUSAN type, the RIRs) from a manifest, read whole or in random segments."""

    def __init__(self, name: str, paths: Sequence[str], num_samples: Sequence[int], sample_rate: int,
                 resample: bool = False) -> None:
        if len(paths) == 0:
            raise ValueError(f"no {name} files: check the augmentation manifest (run scripts/prepare.py with the "
                             "MUSAN / RIRS_NOISES folders set in data.musan_dir / data.rirs_dir)")
        self.name, self.sample_rate, self.resample = name, sample_rate, resample  # resample: data.resample_on_read
        self.paths = np.asarray(paths, dtype=np.bytes_)  # one numpy array: no per-object refcounts in workers
        self.num_samples = np.asarray(num_samples, dtype=np.int64)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, kind: str | None, sample_rate: int,
                      resample: bool = False) -> "AudioBank":
        """Files of ``kind`` (the manifest's first key component: noise / speech / music...), or all when None."""
        utts = [u for u in read_utterances(path) if kind is None or u.speaker == kind]
        if not utts:
            raise ValueError(f"{path} holds no {kind!r} files; kinds are the first folder level of the source")
        return cls(kind or "rir", [u.path for u in utts], [u.num_samples for u in utts], sample_rate, resample)

    def __len__(self) -> int:
        return len(self.paths)

    def whole(self, rng: np.random.Generator) -> torch.Tensor:
        i = int(rng.integers(len(self)))
        return read_audio(self.paths[i].decode(), self.sample_rate, resample_to_expected=self.resample)[0]

    def segment(self, rng: np.random.Generator, length: int) -> torch.Tensor:
        """``length`` samples from a random position of a random file (a shorter file is repeated)."""
        i = int(rng.integers(len(self)))
        n = int(self.num_samples[i])
        start = int(rng.integers(n - length + 1)) if n > length else 0
        wave = read_audio(self.paths[i].decode(), self.sample_rate, start, min(length, n), self.resample)[0]
        return repeat_to(wave, length)


def repeat_to(wave: torch.Tensor, length: int) -> torch.Tensor:
    """``wave`` repeated end to end and cut to ``length`` samples."""
    if wave.numel() >= length:
        return wave[:length]
    return wave.repeat(-(-length // wave.numel()))[:length]


def add_noise(wave: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``wave + g * noise`` with g chosen so that the signal-to-noise power ratio is ``snr_db``."""
    p_sig = float(wave.pow(2).mean()) + 1e-10
    p_noise = float(noise.pow(2).mean()) + 1e-10
    return wave + math.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10))) * noise


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (FFT sizes with large prime factors are 10x slower)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def reverberate(wave: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve with a unit-energy RIR, aligned to its direct path (its largest tap), same length as ``wave``."""
    rir = rir / (rir.norm() + 1e-10)
    delay = int(rir.abs().argmax())
    n = wave.numel()
    size = _fast_len(n + rir.numel() - 1)
    out = torch.fft.irfft(torch.fft.rfft(wave, size) * torch.fft.rfft(rir, size), size)
    return out[delay : delay + n]


@dataclass(frozen=True)
class NoiseKind:
    """One MUSAN type: how often it is picked, its SNR range, how many files are summed (babble: 3-7)."""

    name: str
    weight: float
    snr_db: tuple[float, float]
    count: tuple[int, int] = (1, 1)


class WaveformAugmentation:
    """With probability ``prob``: reverberation (share ``reverb_prob``) or additive noise of a random kind."""

    def __init__(
        self,
        prob: float,
        reverb_prob: float,
        noise_kinds: Sequence[NoiseKind],
        noise_manifest: str | os.PathLike | None,
        rir_manifest: str | os.PathLike | None,
        sample_rate: int,
        resample: bool = False,
    ) -> None:
        if not 0 <= prob <= 1 or not 0 <= reverb_prob <= 1:
            raise ValueError(f"augment.prob={prob} and augment.reverb_prob={reverb_prob} must be in [0, 1]")
        self.prob, self.reverb_prob = prob, reverb_prob
        needs_noise, needs_rir = prob > 0 and reverb_prob < 1, prob > 0 and reverb_prob > 0
        if needs_rir and rir_manifest is None:
            raise ValueError("augment.reverb_prob > 0 but no RIR manifest: set data.rirs_dir and re-run prepare")
        if needs_noise and (noise_manifest is None or not noise_kinds):
            raise ValueError("augment.reverb_prob < 1 but no MUSAN manifest or noise kinds: set data.musan_dir")
        self.rirs = AudioBank.from_manifest(rir_manifest, None, sample_rate, resample) if needs_rir else None
        self.kinds = [k for k in noise_kinds if k.weight > 0] if needs_noise else []
        self.banks = {k.name: AudioBank.from_manifest(noise_manifest, k.name, sample_rate, resample)
                      for k in self.kinds}
        w = np.array([k.weight for k in self.kinds], dtype=np.float64)
        self.kind_p = w / w.sum() if len(w) else w

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:  # (N,) -> (N,)
        if self.prob == 0 or rng.random() >= self.prob:
            return wave
        if rng.random() < self.reverb_prob:
            return reverberate(wave, self.rirs.whole(rng))
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.kind_p))]
        bank = self.banks[kind.name]
        noise = sum(bank.segment(rng, wave.numel()) for _ in range(int(rng.integers(kind.count[0], kind.count[1] + 1))))
        return add_noise(wave, noise, float(rng.uniform(*kind.snr_db)))


class SpecAugment:
    """With probability ``prob``: time and frequency masks (set to 0, the mean after CMN) of random widths."""

    def __init__(self, prob: float, time_masks: int, max_time: int, freq_masks: int, max_freq: int) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f"augment.specaug.prob={prob} must be in [0, 1]")
        self.prob, self.time_masks, self.max_time = prob, time_masks, max_time
        self.freq_masks, self.max_freq = freq_masks, max_freq

    def __call__(self, feats: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:  # (T, F) -> (T, F)
        if self.prob == 0 or rng.random() >= self.prob:
            return feats
        feats = feats.clone()
        for axis, count, width in ((0, self.time_masks, self.max_time), (1, self.freq_masks, self.max_freq)):
            size = feats.shape[axis]
            for _ in range(count):
                w = int(rng.integers(1, min(width, size) + 1))
                start = int(rng.integers(size - w + 1))
                feats.narrow(axis, start, w).zero_()
        return feats
