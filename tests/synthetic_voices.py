"""Speech-like synthetic audio for test corpora: voices that differ the way speakers do, music, and noise.

A voice is a harmonic source (a pitch contour with vibrato, declination and jitter, a per-voice spectral roll-off)
shaped by three formant resonances that move from vowel to vowel, in syllables separated by short pauses. Each
speaker has its own mean pitch, vocal-tract length (formant scale), roll-off and speaking rate, so fbank statistics
really do tell speakers apart, and each utterance adds its own channel colouring and background noise. Importable
from any test module (pytest puts this folder, the one of tests/conftest.py, on sys.path).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

# F1-F3 (Hz) of /a i u e o/ for an adult male voice (Peterson & Barney 1952), and the formant bandwidths.
VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]],
                  dtype=np.float64)
BANDWIDTHS = np.array([90.0, 110.0, 160.0])
FORMANT_GAINS = np.array([1.0, 0.6, 0.3])
_CONTROL_RATE = 200  # control frames (pitch, formants, loudness) per second; samples interpolate between them


@dataclass(frozen=True)
class Voice:
    """What makes a synthetic speaker recognisable."""

    f0: float      # mean pitch, Hz
    tract: float   # formant scale: 1 / relative vocal-tract length
    tilt: float    # source roll-off, dB per octave of harmonic number
    rate: float    # syllables per second


def voice_of(speaker: str) -> Voice:
    """The voice of ``speaker``: the same name always gives the same voice."""
    rng = np.random.default_rng(zlib.crc32(speaker.encode()))
    return Voice(f0=float(rng.uniform(85.0, 240.0)), tract=float(rng.uniform(0.85, 1.25)),
                 tilt=float(rng.uniform(-15.0, -8.0)), rate=float(rng.uniform(3.0, 6.0)))


def _syllables(voice: Voice, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per control frame: formant targets (frames, 3) and loudness (frames,), syllables with pauses between words."""
    formants = np.empty((frames, 3))
    gain = np.zeros(frames)
    i = int(rng.integers(0, _CONTROL_RATE // 20 + 1))  # a short lead-in of silence
    formants[:i] = VOWELS[0]
    while i < frames:
        length = max(4, int(_CONTROL_RATE / voice.rate * rng.uniform(0.7, 1.3)))
        end = min(frames, i + length)
        formants[i:end] = VOWELS[rng.integers(0, len(VOWELS))] * rng.uniform(0.95, 1.05, 3)
        gain[i:end] = np.sin(np.pi * (np.arange(end - i) + 0.5) / length) ** 0.5
        i = end
        if rng.random() < 0.25:  # a word break
            pause = min(frames, i + int(_CONTROL_RATE * rng.uniform(0.05, 0.2)))
            formants[i:pause] = formants[i - 1]
            i = pause
    kernel = np.ones(8) / 8  # 40 ms of coarticulation
    padded = np.pad(formants, ((4, 3), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(3)], axis=1)
    return smooth * voice.tract, gain


def speak(voice: Voice, seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """``seconds`` of speech-like audio in ``voice``, float32 in [-1, 1] (peak between 0.25 and 0.5)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    frames = int(np.ceil(n * _CONTROL_RATE / sr)) + 2
    t = np.arange(frames) / _CONTROL_RATE
    formants, gain = _syllables(voice, frames, rng)
    jitter = np.cumsum(rng.normal(0.0, 0.004, frames))
    f0 = (voice.f0 * (1.0 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 2 * np.pi)))
          * (1.0 - 0.1 * t / max(seconds, 1e-3)) * np.exp(jitter - jitter.mean()))
    num_harmonics = int(0.45 * sr / voice.f0)
    k = np.arange(1, num_harmonics + 1)
    freqs = f0[:, None] * k  # (frames, K)
    resonance = FORMANT_GAINS / (1.0 + ((freqs[:, :, None] - formants[:, None, :]) / (BANDWIDTHS / 2)) ** 2)
    amps = resonance.sum(axis=2) * k ** (voice.tilt / 6.02) * gain[:, None]
    amps[freqs > 0.45 * sr] = 0.0  # no harmonic above the band edge, whatever the pitch does

    pos = np.arange(n) * _CONTROL_RATE / sr
    i0 = pos.astype(np.int64)
    w = (pos - i0)[:, None]
    phase = 2 * np.pi * np.cumsum(np.interp(pos, np.arange(frames), f0)) / sr
    wave = np.empty(n)
    for start in range(0, n, sr // 2):  # half a second at a time: (samples, K) arrays stay a few MB
        s = slice(start, min(n, start + sr // 2))
        a = amps[i0[s]] * (1 - w[s]) + amps[i0[s] + 1] * w[s]
        wave[s] = (a * np.sin(phase[s, None] * k)).sum(axis=1)
    loud = np.interp(pos, np.arange(frames), gain)
    wave += 0.02 * np.abs(wave).max() * loud * rng.standard_normal(n)  # aspiration
    return _finish(wave, rng)


def _finish(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A per-recording channel (first-order colouring), background noise 45-55 dB down, a peak of 0.25-0.5."""
    coloured = wave.copy()
    coloured[1:] += rng.uniform(-0.4, 0.4) * wave[:-1]
    peak = np.abs(coloured).max()
    coloured = coloured / peak if peak > 0 else coloured
    coloured += 10 ** (-rng.uniform(45, 55) / 20) * rng.standard_normal(coloured.size)
    return (rng.uniform(0.25, 0.5) * coloured / np.abs(coloured).max()).astype(np.float32)


def music(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Chords of three equal-tempered notes with decaying partials, a new chord every 0.25-0.6 s."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    wave = np.zeros(n)
    start = 0
    while start < n:
        length = min(n - start, int(sr * rng.uniform(0.25, 0.6)))
        t = np.arange(length) / sr
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(2.0, 6.0))
        for note in rng.integers(-12, 24, 3):
            f = 220.0 * 2 ** (note / 12)
            for p in range(1, 6):
                if p * f < 0.45 * sr:
                    wave[start : start + length] += envelope * np.sin(2 * np.pi * p * f * t) / p ** 1.5
        start += length
    return _finish(wave, rng)


def noise(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Coloured noise (a 1/f^alpha spectrum, alpha 0-2) with slow loudness swells."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec *= 1.0 / np.maximum(f, 20.0) ** (rng.uniform(0.0, 2.0) / 2)
    wave = np.fft.irfft(spec, n) * (1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * np.arange(n) / sr))
    return _finish(wave, rng)
