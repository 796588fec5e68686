"""Training chunks streamed from tar shards, split by DDP rank and DataLoader worker, every sample once per epoch.

Epoch plan (:func:`plan_epoch`): the shard order is reshuffled each epoch (seeded by seed and epoch) and the
shards are laid end to end into one sequence of T = utterances x repeats samples. Each of the W ranks gets a
contiguous run of floor(T / W) samples, cut to whole batches: steps_per_epoch = floor(floor(T / W) / B) is the
same on every rank (DDP needs that), and the fewer than W * (B + 1) samples left over are skipped this epoch
(different ones next epoch, since the order changes). A rank's run is split between its DataLoader workers in
whole batches (worker w gets steps // nw batches, one more for w < steps % nw), possibly starting or ending
inside a shard. So every sample is read by exactly one (rank, worker), at most once per epoch.

Each worker passes its samples through a shuffle buffer. A sample's randomness (chunk position, speed, noise)
comes from its position in the epoch sequence, not from the worker. Resuming at step k skips, in each worker,
the batches the DataLoader's round-robin had taken from it (reading but not featurising them), with the
workers' parts rotated so that the resumed loader yields exactly the remaining batches in their order.
"""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sv_toolkit.data.chunking import AudioChunker, FeatureChunker, chunk_rng
from sv_toolkit.data.dataset import EpochSteps, steps_per_epoch
from sv_toolkit.data.shards import ShardList


@dataclass(frozen=True)
class Segment:
    shard: int  # index into the shard list
    first: int  # first member (sample) of the shard to read
    stop: int  # one past the last member to read
    position: int  # epoch-sequence position of member ``first``


def plan_epoch(
    counts: np.ndarray, epoch: int, seed: int, rank: int, world_size: int, num_workers: int, batch_size: int,
    repeats: int = 1,
) -> list[tuple[list[Segment], int]]:
    """For each DataLoader worker of ``rank``: the shard segments it reads and its number of batches."""
    order = np.concatenate([np.random.default_rng([seed, epoch, r]).permutation(len(counts)) for r in range(repeats)])
    ends = np.cumsum(counts[order])
    starts = ends - counts[order]
    per_rank = int(ends[-1]) // world_size
    steps = steps_per_epoch(int(ends[-1]), world_size, batch_size)
    out, begin = [], rank * per_rank
    for w in range(num_workers):
        batches = steps // num_workers + (w < steps % num_workers)
        a, b = begin, begin + batches * batch_size
        begin = b
        segs = []
        for j in np.nonzero((starts < b) & (ends > a))[0].tolist():
            lo, hi = max(a, int(starts[j])), min(b, int(ends[j]))
            segs.append(Segment(int(order[j]), lo - int(starts[j]), hi - int(starts[j]), lo))
        out.append((segs, batches))
    return out


def shuffled(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Items through a shuffle buffer of ``size`` (1: unchanged order)."""
    buf = []
    for x in items:
        if len(buf) < size:
            buf.append(x)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = x
    for j in rng.permutation(len(buf)).tolist():
        yield buf[j]


class ShardChunkDataset(EpochSteps, IterableDataset):
    """Chunks and labels from the shards of ``shards`` for one DDP rank; see the module docstring."""

    def __init__(
        self,
        shards: ShardList,
        speaker_to_index: Mapping[str, int],
        chunker: AudioChunker | FeatureChunker,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        repeats: int = 1,
    ) -> None:
        wants = "fbank" if isinstance(chunker, FeatureChunker) else "audio"
        if shards.content != wants:
            raise ValueError(
                f"shards in {shards.root} hold {shards.content}, but this training set-up needs {wants} shards "
                + ("(speed perturbation, noise and reverberation work on audio); re-run scripts/shard.py content=audio"
                   if wants == "audio" else "")
            )
        self.shards, self.speaker_to_index, self.chunker = shards, dict(speaker_to_index), chunker
        self._init_steps(shards.num_utterances * repeats, batch_size, rank, world_size)
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle_buffer, self.repeats = max(int(shuffle_buffer), 1), repeats
        # set_epoch must come before iter(loader): the DataLoader's workers (created afresh each epoch) copy it.

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        nw, w = (info.num_workers, info.id) if info is not None else (1, 0)
        # The DataLoader takes batch m from worker m % nw. Resuming at step k, its first batch comes from worker
        # 0, so worker w plays the part of worker (w + k) % nw of the full epoch and skips what that one gave.
        k = self.start_step
        role = (w + k) % nw
        segments, _ = plan_epoch(self.shards.counts, self.epoch, self.seed, self.rank, self.world_size, nw,
                                 self.batch_size, self.repeats)[role]
        skip = (k // nw + (role < k % nw)) * self.batch_size
        buffer_rng = np.random.default_rng([self.seed, self.epoch, self.rank, role, nw])
        for n, item in enumerate(shuffled(self._prepared(segments), self.shuffle_buffer, buffer_rng)):
            if n >= skip:
                yield self._finish(*item)

    def _prepared(self, segments: list[Segment]) -> Iterator[tuple]:
        """(payload, plan or start, rng, label) per sample in segment order; payload: the planned audio / fbank."""
        for seg in segments:
            path = self.shards.paths[seg.shard]
            with tarfile.open(path, "r:") as tar:
                i = 0
                for member in tar:
                    if not member.isfile():
                        continue
                    if i >= seg.stop:
                        break
                    if i >= seg.first:
                        yield self._prepare(tar, member, path, seg.position + i - seg.first)
                    i += 1
            if i < seg.stop:
                raise ValueError(f"shard {path} has {i} utterances, fewer than listed; re-run scripts/shard.py")

    def _prepare(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path, position: int) -> tuple:
        data = tar.extractfile(member).read()
        rng = chunk_rng(self.seed, self.epoch, position)
        speaker = member.name.split("/", 1)[0]
        if speaker not in self.speaker_to_index:
            raise ValueError(f"{path}: member {member.name} has speaker {speaker!r}, not in the speaker list")
        label = self.speaker_to_index[speaker]
        if isinstance(self.chunker, FeatureChunker):
            feats = np.load(io.BytesIO(data))  # (frames, bins)
            start = self.chunker.start(rng, feats.shape[0])
            return feats[start : start + self.chunker.chunk_frames].copy(), start, rng, label
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                plan = self.chunker.plan(rng, f.frames)
                f.seek(plan.start)
                audio = f.read(plan.length, dtype="int16", always_2d=True)  # int16 halves the buffer's memory
        except (sf.LibsndfileError, RuntimeError) as err:
            raise ValueError(f"{path}: member {member.name} is not readable audio ({err}); re-run scripts/shard.py")
        mono = audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1).astype(np.int16)
        return mono, plan, rng, label

    def _finish(self, payload: np.ndarray, plan, rng: np.random.Generator, label: int) -> tuple[torch.Tensor, int]:
        if isinstance(self.chunker, FeatureChunker):
            # payload = the stored frames from the planned start; a short utterance (start 0) is repeated
            return self.chunker.features(payload, 0, rng), label
        segment = torch.from_numpy(payload.astype(np.float32) / 32768.0)
        return self.chunker.features(segment, plan, rng), self.chunker.label(label, plan)
