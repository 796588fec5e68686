"""EpochSampler and TrainData: an epoch's content is a function of (seed, epoch); ranks split each global batch;
gradient accumulation sees the micro-batches DDP would; resuming mid-epoch continues the same sequence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from sv_toolkit.data.chunking import chunk_rng
from sv_toolkit.data.dataset import EpochSampler, SampleIndex
from sv_toolkit.stages.train_data import TrainData, micro_batch_size


def _items(sampler: EpochSampler) -> list[int]:
    return [s.item for s in sampler]


def _batches(sampler: EpochSampler, size: int) -> list[list[int]]:
    items = _items(sampler)
    return [items[i : i + size] for i in range(0, len(items), size)]


def test_order_depends_on_seed_and_epoch_only():
    a, b = EpochSampler(50, 8, seed=3), EpochSampler(50, 8, seed=3)
    np.random.seed(0)
    torch.manual_seed(0)
    first = _items(a)
    np.random.seed(123)  # the global RNGs play no part
    torch.manual_seed(123)
    assert _items(b) == first
    b.set_epoch(1)
    assert _items(b) != first
    assert _items(EpochSampler(50, 8, seed=4)) != first


def test_ranks_take_contiguous_slices_of_each_global_batch_and_drop_the_rest():
    ranks = [EpochSampler(50, 6, rank=r, world_size=2, seed=1) for r in range(2)]
    assert ranks[0].steps_per_epoch == 50 // 12 == 4
    per_rank = [_batches(s, 6) for s in ranks]
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) == 48  # disjoint, 2 items dropped
    whole = _items(EpochSampler(50, 12, seed=1))  # one process with the global batch
    for step in range(4):
        assert per_rank[0][step] + per_rank[1][step] == whole[12 * step : 12 * (step + 1)]


def test_two_ranks_see_the_micro_batches_of_one_process_with_accumulation():
    """2 processes x batch 4 == 1 process x batch 8 in 2 micro-batches of 4: same samples, same chunk seeds."""
    ddp = [list(EpochSampler(40, 4, rank=r, world_size=2, seed=7)) for r in range(2)]
    accum = list(EpochSampler(40, 8, seed=7))
    assert len(accum) == len(ddp[0]) + len(ddp[1]) == 40
    for step in range(5):
        assert accum[8 * step : 8 * step + 4] == ddp[0][4 * step : 4 * step + 4]
        assert accum[8 * step + 4 : 8 * step + 8] == ddp[1][4 * step : 4 * step + 4]


def test_start_step_resumes_mid_epoch():
    s = EpochSampler(64, 8, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_step=3)
    assert len(s) == len(full) - 24 and list(s) == full[24:]
    s.set_epoch(3)  # a new epoch starts from its first step again
    assert len(list(s)) == len(full)
    with pytest.raises(ValueError, match="start_step 9"):
        s.set_epoch(3, start_step=9)


def test_bad_batch_settings_name_the_keys():
    with pytest.raises(ValueError, match="trainer.grad_accum=3"):
        micro_batch_size(8, 3)
    with pytest.raises(ValueError, match="lower trainer.batch_size"):
        EpochSampler(10, 8, world_size=2)


class _SeededItems(Dataset):
    """Chunk-like items drawn from the sample's own generator, as the training datasets do."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, s: SampleIndex) -> tuple[torch.Tensor, torch.Tensor]:
        rng = chunk_rng(2, s.epoch, s.position)
        return torch.from_numpy(rng.random(3)) + s.item, torch.tensor(s.item)


def _train_data(num_workers: int, grad_accum: int) -> TrainData:
    sampler = EpochSampler(20, 4, seed=2)
    loader = DataLoader(_SeededItems(), sampler=sampler, batch_size=4 // grad_accum, drop_last=True,
                        num_workers=num_workers)
    return TrainData(loader, 20, 20, 20, sampler.steps_per_epoch, "features", sampler, grad_accum)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_micro_batches_do_not_depend_on_workers_or_resume_point(num_workers):
    ref = _train_data(0, 2)
    ref.set_epoch(1)
    expected = [f for f, _ in ref]
    assert len(expected) == 10  # 5 steps x 2 micro-batches of 2
    data = _train_data(num_workers, 2)
    data.set_epoch(1)
    data.skip_batches(4)  # two whole steps
    assert data.steps_per_epoch == 5 and len(data) == 6
    got = [f for f, _ in data]
    assert all(torch.equal(a, b) for a, b in zip(got, expected[4:], strict=True))
    with pytest.raises(ValueError, match="not a whole step"):
        data.skip_batches(3)
