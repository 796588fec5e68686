"""Training dataset: random fixed-length chunks of pre-computed fbank with per-chunk mean normalisation."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from sv_toolkit.features.store import FeatureStore


def crop_or_repeat(feats: np.ndarray, num_frames: int, start: int) -> np.ndarray:
    """``num_frames`` frames from ``start``; utterances shorter than that are repeated end to end."""
    if feats.shape[0] < num_frames:
        reps = -(-num_frames // feats.shape[0])
        return np.concatenate([feats] * reps, axis=0)[:num_frames]
    return feats[start : start + num_frames]


class RandomChunkDataset(Dataset):
    """Item i is a random ``chunk_frames`` chunk of utterance ``i % len(store)`` and its speaker index.

    One epoch visits every utterance ``chunks_per_utterance`` times. Chunk positions come from torch's RNG,
    so they follow ``torch.manual_seed`` (and DataLoader worker seeding).
    """

    def __init__(
        self,
        store: FeatureStore,
        speaker_to_index: Mapping[str, int],
        chunk_frames: int,
        chunks_per_utterance: int = 1,
    ) -> None:
        unknown = sorted({s for s in store.speakers if s not in speaker_to_index})
        if unknown:
            raise ValueError(f"speakers {unknown[:3]} of {store.path} are missing from the speaker list")
        if chunk_frames <= 0 or chunks_per_utterance <= 0:
            raise ValueError(f"chunk_frames ({chunk_frames}) and chunks_per_utterance ({chunks_per_utterance}) must be > 0")
        self.store = store
        self.labels = torch.tensor([speaker_to_index[s] for s in store.speakers], dtype=torch.long)
        self.chunk_frames = chunk_frames
        self.chunks_per_utterance = chunks_per_utterance

    def __len__(self) -> int:
        return len(self.store) * self.chunks_per_utterance

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = i % len(self.store)
        feats = self.store.by_index(j)
        spare = max(feats.shape[0] - self.chunk_frames, 0)
        start = int(torch.randint(spare + 1, ()).item())
        chunk = torch.from_numpy(np.array(crop_or_repeat(feats, self.chunk_frames, start)))  # (T, F)
        return chunk - chunk.mean(dim=0, keepdim=True), self.labels[j]
