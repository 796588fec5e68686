"""Map-style training datasets (stored fbank; raw audio files) and the epoch sampler that feeds them.

:class:`EpochSampler` yields :class:`SampleIndex` items (utterance, epoch, position): the position in the
epoch's global order seeds the chunk's randomness (:func:`sv_toolkit.data.chunking.chunk_rng`), so a chunk
does not depend on which rank or worker computes it, and an epoch can be resumed at any step.
"""
from __future__ import annotations

from typing import Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sv_toolkit.data.audio import read_audio
from sv_toolkit.data.augment import SpecAugment
from sv_toolkit.data.chunking import AudioChunker, FeatureChunker, chunk_rng, crop_or_repeat
from sv_toolkit.data.manifests import Utterance
from sv_toolkit.features.store import FeatureStore

__all__ = ["EpochSampler", "EpochSteps", "RandomChunkDataset", "RawChunkDataset", "SampleIndex", "crop_or_repeat"]


class SampleIndex(NamedTuple):
    item: int  # utterance index
    epoch: int
    position: int  # position in the epoch's global sample order


def steps_per_epoch(total: int, world_size: int, batch_size: int) -> int:
    """Steps every rank can run: whole batches of an equal share of ``total`` samples."""
    return (total // world_size) // batch_size


class EpochSteps:
    """The epoch and the step it starts at, for an epoch of ``steps_per_epoch`` equal steps on every rank."""

    def _init_steps(self, total: int, batch_size: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch(total, world_size, batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(f"{total} samples give no full batch of {batch_size} on each of {world_size} ranks; "
                             "lower trainer.batch_size")
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Shuffle for ``epoch``; the next pass starts at batch ``start_step``. Call it before iterating."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} is not in [0, {self.steps_per_epoch}]")
        self.epoch, self.start_step = epoch, start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.batch_size


class EpochSampler(EpochSteps, Sampler):
    """A per-epoch shuffle of ``num_items * repeats`` samples, split across ``world_size`` ranks.

    The epoch's order is cut into global batches of W x ``batch_size`` positions and rank r takes the r-th
    contiguous ``batch_size`` slice of each, so that every rank runs the same ``steps_per_epoch`` steps; the
    fewer than W x batch_size samples left over are dropped for that epoch (other ones each epoch). So one
    process with batch W x B split into W micro-batches (gradient accumulation) gets the same micro-batches,
    samples and chunks as W processes with batch B each.
    ``set_epoch(epoch, start_step)`` resumes mid-epoch.
    """

    def __init__(
        self, num_items: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0, repeats: int = 1
    ) -> None:
        self._init_steps(num_items * repeats, batch_size, rank, world_size)
        self.num_items, self.rank, self.world_size, self.seed, self.repeats = num_items, rank, world_size, seed, repeats

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items * self.repeats)
        steps = np.arange(self.start_step, self.steps_per_epoch)[:, None]
        within = np.arange(self.batch_size)[None, :]
        positions = ((steps * self.world_size + self.rank) * self.batch_size + within).reshape(-1)
        for p in positions.tolist():
            yield SampleIndex(int(order[p]) % self.num_items, self.epoch, p)


class RandomChunkDataset(Dataset):
    """Random ``chunk_frames`` chunks of stored fbank (CMN per chunk) and speaker indices.

    Items are :class:`SampleIndex` (from :class:`EpochSampler`; chunk position from the sample's seed) or plain
    ints i (utterance ``i % len(store)``, chunk position from torch's RNG): one epoch of ints visits every
    utterance ``chunks_per_utterance`` times.
    """

    def __init__(
        self,
        store: FeatureStore,
        speaker_to_index: Mapping[str, int],
        chunk_frames: int,
        chunks_per_utterance: int = 1,
        spec_augment: SpecAugment | None = None,
        seed: int = 0,
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
        self.chunker = FeatureChunker(chunk_frames, spec_augment)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.store) * self.chunks_per_utterance

    def __getitem__(self, i: int | SampleIndex) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(i, SampleIndex):
            rng = chunk_rng(self.seed, i.epoch, i.position)
            feats = self.store.by_index(i.item)
            return self.chunker.features(feats, self.chunker.start(rng, feats.shape[0]), rng), self.labels[i.item]
        j = i % len(self.store)
        feats = self.store.by_index(j)
        spare = max(feats.shape[0] - self.chunk_frames, 0)
        start = int(torch.randint(spare + 1, ()).item())
        chunk = torch.from_numpy(np.array(crop_or_repeat(feats, self.chunk_frames, start)))  # (T, F)
        return chunk - chunk.mean(dim=0, keepdim=True), self.labels[j]


class RawChunkDataset(Dataset):
    """Training chunks computed on the fly from the audio files of a manifest (small corpora, or no shards).

    Items are :class:`SampleIndex`; each reads only the planned segment of its file (with ``resample``, a file of
    another rate is read whole and resampled: prepare's data.resample_on_read).
    """

    def __init__(
        self, utterances: Sequence[Utterance], speaker_to_index: Mapping[str, int], chunker: AudioChunker, seed: int,
        resample: bool = False,
    ) -> None:
        unknown = sorted({u.speaker for u in utterances if u.speaker not in speaker_to_index})
        if unknown:
            raise ValueError(f"speakers {unknown[:3]} of the utterance manifest are missing from the speaker list")
        # numpy arrays, not lists of str: DataLoader workers would otherwise copy every page they touch.
        self.paths = np.asarray([u.path for u in utterances], dtype=np.bytes_)
        self.num_samples = np.asarray([u.num_samples for u in utterances], dtype=np.int64)
        self.speakers = np.asarray([speaker_to_index[u.speaker] for u in utterances], dtype=np.int64)
        self.sample_rate = chunker.fbank.sample_rate
        self.chunker, self.seed, self.resample = chunker, seed, resample

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: SampleIndex) -> tuple[torch.Tensor, int]:
        rng = chunk_rng(self.seed, i.epoch, i.position)
        plan = self.chunker.plan(rng, int(self.num_samples[i.item]))
        segment, _ = read_audio(self.paths[i.item].decode(), self.sample_rate, plan.start, plan.length, self.resample)
        return self.chunker.features(segment, plan, rng), self.chunker.label(int(self.speakers[i.item]), plan)
