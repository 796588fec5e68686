"""Training chunks from audio: choose a segment, read it, speed-perturb, augment, fbank (dither), CMN, SpecAugment.

A chunk is planned before it is read (:meth:`AudioChunker.plan`: speed factor, start, samples to read), so
that only about 2 s of a long utterance is decoded. All randomness comes from one ``numpy`` Generator per
chunk, seeded from (seed, epoch, position in the epoch) by the dataset; Kaldi's dither uses torch's RNG,
which is seeded from that Generator inside a forked RNG state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sv_toolkit.data.augment import SpecAugment, SpeedPerturbation, WaveformAugmentation, repeat_to
from sv_toolkit.features.fbank import apply_cmn, compute_fbank
from sv_toolkit.features.store import FbankSettings


def crop_or_repeat(feats: np.ndarray, num_frames: int, start: int) -> np.ndarray:
    """``num_frames`` frames from ``start``; utterances shorter than that are repeated end to end."""
    if feats.shape[0] < num_frames:
        reps = -(-num_frames // feats.shape[0])
        return np.concatenate([feats] * reps, axis=0)[:num_frames]
    return feats[start : start + num_frames]


def chunk_rng(seed: int, epoch: int, position: int) -> np.random.Generator:
    """The Generator of the chunk at ``position`` of ``epoch``'s sample order."""
    return np.random.default_rng([seed, epoch, position])


@dataclass(frozen=True)
class ChunkPlan:
    speed: int  # index into the speed factors (0 when there is no speed perturbation)
    start: int  # first sample to read
    length: int  # samples to read (the whole utterance when it is shorter than needed)


class AudioChunker:
    """Turns (part of) an utterance into a (chunk_frames, num_mel_bins) training chunk and its class label."""

    def __init__(
        self,
        chunk_frames: int,
        fbank: FbankSettings,
        dither: float,
        num_speakers: int,
        speed: SpeedPerturbation | None = None,
        speed_as_new_speakers: bool = True,
        augment: WaveformAugmentation | None = None,
        spec_augment: SpecAugment | None = None,
    ) -> None:
        if chunk_frames <= 0:
            raise ValueError(f"chunk_frames={chunk_frames} must be > 0")
        self.chunk_frames, self.fbank, self.dither = chunk_frames, fbank, dither
        self.chunk_samples = fbank.num_samples(chunk_frames)
        self.speed, self.augment, self.spec_augment = speed, augment, spec_augment
        self.num_speakers = num_speakers
        self.label_copies = len(speed) if speed is not None and speed_as_new_speakers else 1

    @property
    def num_classes(self) -> int:
        return self.num_speakers * self.label_copies

    def plan(self, rng: np.random.Generator, num_samples: int) -> ChunkPlan:
        k = int(rng.integers(len(self.speed))) if self.speed is not None else 0
        need = self.speed.input_length(k, self.chunk_samples) if self.speed is not None else self.chunk_samples
        if num_samples <= need:
            return ChunkPlan(k, 0, num_samples)
        return ChunkPlan(k, int(rng.integers(num_samples - need + 1)), need)

    def label(self, speaker: int, plan: ChunkPlan) -> int:
        """Speed-perturbed copies are new classes: speaker + k * num_speakers (when switched on)."""
        return speaker + (plan.speed * self.num_speakers if self.label_copies > 1 else 0)

    def features(self, segment: torch.Tensor, plan: ChunkPlan, rng: np.random.Generator) -> torch.Tensor:
        """(samples,) float waveform segment read as planned -> (chunk_frames, bins) features after CMN."""
        wave = segment
        if self.speed is not None:
            wave = self.speed(plan.speed, repeat_to(wave, self.speed.input_length(plan.speed, self.chunk_samples)))
        wave = repeat_to(wave, self.chunk_samples)
        if self.augment is not None:
            wave = self.augment(wave, rng)
        s = self.fbank
        # Kaldi's dither draws from torch's default CPU generator: seed it for this chunk, then put it back.
        # (torch.manual_seed would also seed the CUDA / XPU generators, which costs about 2 ms a call.)
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(int(rng.integers(2**62)))
        try:
            feats = compute_fbank(wave, s.sample_rate, s.num_mel_bins, s.frame_length_ms, s.frame_shift_ms, self.dither)
        finally:
            generator.set_state(state)
        feats = apply_cmn(feats)  # (T, F)
        return self.spec_augment(feats, rng) if self.spec_augment is not None else feats


class FeatureChunker:
    """Random (chunk_frames, bins) chunks of stored fbank (no waveform augmentation possible), CMN, SpecAugment."""

    def __init__(self, chunk_frames: int, spec_augment: SpecAugment | None = None) -> None:
        if chunk_frames <= 0:
            raise ValueError(f"chunk_frames={chunk_frames} must be > 0")
        self.chunk_frames, self.spec_augment = chunk_frames, spec_augment

    def start(self, rng: np.random.Generator, num_frames: int) -> int:
        return int(rng.integers(max(num_frames - self.chunk_frames, 0) + 1))

    def features(self, feats: np.ndarray, start: int, rng: np.random.Generator) -> torch.Tensor:
        """(frames, bins) stored fbank -> (chunk_frames, bins) chunk from ``start`` (repeated if short), CMN."""
        chunk = crop_or_repeat(feats, self.chunk_frames, start)
        out = apply_cmn(torch.from_numpy(np.array(chunk, dtype=np.float32)))
        return self.spec_augment(out, rng) if self.spec_augment is not None else out
