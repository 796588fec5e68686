"""Resumable, rank-aware batching of a map-style dataset: every epoch's content is a function of (seed, epoch).

- :class:`EpochBatchSampler` shuffles all items with a generator seeded by (seed, epoch), cuts the order into
  global batches of ``world_size x batch_size`` items, gives rank r the r-th contiguous ``batch_size`` slice of
  each, and splits that slice into ``grad_accum`` micro-batches. So 2 processes x (B/2) and 1 process with 2 x
  (B/2) micro-batches see the same micro-batches in the same order. ``skip_batches(n)`` starts the next pass
  at micro-batch n, which is how a run resumed from a mid-epoch checkpoint skips what it had consumed.
- :class:`SeededItems` draws each item under a torch seed made of (seed, epoch, index), so random crops do not
  depend on the process, the DataLoader worker or what was drawn before.
- :class:`ResumableLoader` puts the two behind a DataLoader and offers the hooks the Trainer calls
  (``set_epoch``, ``skip_batches``).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, the same in every process and Python version (splitmix64 chain)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _M64))
    return h >> 1


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Micro-batches of ``(item index, item seed)`` for one rank; see the module docstring."""

    def __init__(
        self, num_items: int, batch_size: int, grad_accum: int = 1, rank: int = 0, world_size: int = 1,
        seed: int = 0, shuffle: bool = True,
    ) -> None:
        if batch_size <= 0 or grad_accum <= 0:
            raise ValueError(f"batch_size ({batch_size}) and grad_accum ({grad_accum}) must be > 0")
        if batch_size % grad_accum:
            raise ValueError(
                f"trainer.batch_size={batch_size} is not divisible by trainer.grad_accum={grad_accum}; the batch "
                "of each optimizer step is split into grad_accum equal micro-batches"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.num_items, self.batch_size, self.grad_accum = num_items, batch_size, grad_accum
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.micro_batch_size = batch_size // grad_accum
        self.steps_per_epoch = num_items // (world_size * batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"trainer.batch_size={batch_size} x {world_size} processes is larger than the training set "
                f"({num_items} items); lower the batch size"
            )
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next pass yields (from its first micro-batch)."""
        self.epoch, self.start = epoch, 0

    def skip_batches(self, n: int) -> None:
        """Start the next pass at micro-batch ``n`` of the epoch."""
        if not 0 <= n <= len(self) + self.start:
            raise ValueError(f"cannot skip {n} micro-batches of an epoch of {self.steps_per_epoch * self.grad_accum}")
        self.start = n

    def epoch_order(self) -> torch.Tensor:
        """All item indices in this epoch's order."""
        if not self.shuffle:
            return torch.arange(self.num_items)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        return torch.randperm(self.num_items, generator=g)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.grad_accum - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.epoch_order().tolist()
        g_size, m = self.world_size * self.batch_size, self.micro_batch_size
        for k in range(self.start, self.steps_per_epoch * self.grad_accum):
            step, micro = divmod(k, self.grad_accum)
            first = step * g_size + self.rank * self.batch_size + micro * m
            yield [(i, mix_seed(self.seed, self.epoch, i)) for i in order[first : first + m]]


class SeededItems(Dataset):
    """``dataset[index]`` drawn under ``torch.manual_seed(seed)`` for an ``(index, seed)`` key.

    The global torch RNG of the caller is left as it was. Only torch's RNG is seeded: datasets that draw from
    numpy or python ``random`` are not reproducible through this wrapper.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class ResumableLoader:
    """A DataLoader over ``SeededItems(dataset)`` driven by an :class:`EpochBatchSampler`.

    Yields the micro-batches of the current epoch; ``len()`` is the number left in it.
    """

    def __init__(
        self, dataset: Dataset, sampler: EpochBatchSampler, num_workers: int = 0, pin_memory: bool = False
    ) -> None:
        self.sampler = sampler
        self._generator = torch.Generator()  # worker base seeds, kept off the global RNG
        self.loader = DataLoader(
            SeededItems(dataset), batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
            persistent_workers=num_workers > 0, generator=self._generator,
        )

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self._generator.manual_seed(mix_seed(self.sampler.seed, epoch, 1))

    def skip_batches(self, n: int) -> None:
        self.sampler.skip_batches(n)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)
