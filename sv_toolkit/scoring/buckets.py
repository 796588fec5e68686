"""Pad-free batching of whole utterances: buckets of (near-)equal length, cropped to the bucket's shortest.

Convolutional extractors see padding, so batching utterances of different lengths by zero-padding changes
their embeddings. Instead, utterances are sorted by length and grouped so that every member of a batch is
at most ``max_crop`` (a fraction of its frames) longer than the batch's shortest; the longer ones are
centre-cropped to that length after per-utterance CMN over their whole length. With ``max_crop=0`` only
utterances of exactly equal length share a batch and the embeddings equal one-by-one extraction up to float
summation order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from sv_toolkit.data.dataset import crop_or_repeat
from sv_toolkit.errors import ConfigError


@dataclass(frozen=True)
class Batch:
    """Utterance indices of one batch and the frame count every member is cropped (or repeated) to."""

    indices: np.ndarray  # (B,) int64
    num_frames: int


def effective_frames(num_frames: np.ndarray, min_frames: int) -> np.ndarray:
    """Frames an utterance is fed with: its own length, or ``min_frames`` when shorter (repeated to fill)."""
    return np.maximum(np.asarray(num_frames, dtype=np.int64), min_frames)


def plan_batches(
    num_frames: np.ndarray,
    max_batch_frames: int,
    max_batch_size: int,
    max_crop: float = 0.0,
    min_frames: int = 20,
) -> list[Batch]:
    """Group utterances (by index into ``num_frames``) into length buckets; see the module docstring.

    A batch holds at most ``max_batch_size`` utterances and at most ``max_batch_frames`` frames in all (an
    utterance longer than that is a batch of its own). Every utterance appears in exactly one batch.
    """
    if not 0.0 <= max_crop < 1.0:
        raise ConfigError(f"max_crop must be in [0, 1), got {max_crop}")
    if max_batch_size < 1 or max_batch_frames < 1 or min_frames < 1:
        raise ConfigError(
            f"max_batch_size ({max_batch_size}), max_batch_frames ({max_batch_frames}) and min_frames "
            f"({min_frames}) must be positive"
        )
    lengths = effective_frames(num_frames, min_frames)
    order = np.argsort(lengths, kind="stable")
    batches: list[Batch] = []
    start = 0
    while start < order.size:
        shortest = int(lengths[order[start]])
        size_cap = max(1, min(max_batch_size, max_batch_frames // shortest))
        longest_allowed = shortest / (1.0 - max_crop)  # cropping drops at most max_crop of its frames
        end = start + 1
        while end < order.size and end - start < size_cap and lengths[order[end]] <= longest_allowed:
            end += 1
        batches.append(Batch(order[start:end].copy(), shortest))
        start = end
    return batches


def prepare_utterance(feats: np.ndarray, num_frames: int, min_frames: int) -> torch.Tensor:
    """(T, F) raw fbank -> (num_frames, F): repeat to ``min_frames`` if shorter, CMN, centre crop."""
    if feats.shape[0] < min_frames:
        feats = crop_or_repeat(feats, min_frames, start=0)
    x = torch.from_numpy(np.array(feats, dtype=np.float32))
    x = x - x.mean(dim=0, keepdim=True)  # CMN over the whole (repeated) utterance
    start = (x.shape[0] - num_frames) // 2
    return x[start : start + num_frames]


class BucketDataset(Dataset):
    """Item b: (utterance indices (B,), features (B, T, F)) of ``batches[b]``, for a DataLoader (batch_size=None)."""

    def __init__(self, source, batches: list[Batch], min_frames: int) -> None:
        self.source = source
        self.batches = batches
        self.min_frames = min_frames

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.batches[b]
        feats = [prepare_utterance(self.source.features(int(i)), batch.num_frames, self.min_frames) for i in batch.indices]
        return torch.from_numpy(batch.indices), torch.stack(feats)  # (B,), (B, T, F)
