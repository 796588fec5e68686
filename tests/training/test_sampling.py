"""EpochBatchSampler / SeededItems / ResumableLoader: epoch content is a function of (seed, epoch) only."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from sv_toolkit.training.sampling import EpochBatchSampler, ResumableLoader, SeededItems, mix_seed


def _indices(sampler: EpochBatchSampler) -> list[list[int]]:
    return [[i for i, _ in batch] for batch in sampler]


def test_order_depends_on_seed_and_epoch_only():
    a, b = EpochBatchSampler(50, 8, seed=3), EpochBatchSampler(50, 8, seed=3)
    torch.manual_seed(0)
    first = _indices(a)
    torch.manual_seed(123)  # the global RNG plays no part
    assert _indices(b) == first
    b.set_epoch(1)
    assert _indices(b) != first
    assert _indices(EpochBatchSampler(50, 8, seed=4)) != first


def test_ranks_partition_each_global_batch_and_drop_the_rest():
    ranks = [EpochBatchSampler(50, 6, rank=r, world_size=2, seed=1) for r in range(2)]
    assert ranks[0].steps_per_epoch == 50 // 12 == 4
    per_rank = [_indices(s) for s in ranks]
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen)) == 48  # disjoint, 2 items dropped
    order = ranks[0].epoch_order().tolist()
    for step in range(4):
        assert per_rank[0][step] + per_rank[1][step] == order[12 * step : 12 * (step + 1)]


def test_two_ranks_see_the_micro_batches_of_one_process_with_accumulation():
    """2 processes x batch 4 == 1 process x batch 8 in 2 micro-batches of 4, micro-batch by micro-batch."""
    ddp = [_indices(EpochBatchSampler(40, 4, rank=r, world_size=2, seed=7)) for r in range(2)]
    accum = _indices(EpochBatchSampler(40, 8, grad_accum=2, seed=7))
    assert len(accum) == 2 * len(ddp[0]) == 10
    for step in range(5):
        assert accum[2 * step] == ddp[0][step] and accum[2 * step + 1] == ddp[1][step]


def test_skip_batches_resumes_mid_epoch():
    s = EpochBatchSampler(64, 8, grad_accum=2, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2)
    s.skip_batches(5)
    assert len(s) == len(full) - 5 and list(s) == full[5:]
    s.set_epoch(3)  # a new epoch starts from its first micro-batch again
    assert len(list(s)) == len(full)
    with pytest.raises(ValueError, match="cannot skip"):
        s.skip_batches(len(full) + 1)


def test_bad_batch_settings_name_the_keys():
    with pytest.raises(ValueError, match="trainer.grad_accum=3"):
        EpochBatchSampler(64, 8, grad_accum=3)
    with pytest.raises(ValueError, match="larger than the training set"):
        EpochBatchSampler(10, 8, world_size=2)


class _RandomItems(Dataset):
    def __len__(self) -> int:
        return 20

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(3) + i, torch.tensor(i)


def test_seeded_items_are_reproducible_and_leave_the_global_rng_alone():
    items = SeededItems(_RandomItems())
    torch.manual_seed(5)
    before = torch.get_rng_state()
    x = items[(4, mix_seed(1, 0, 4))][0]
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(10)  # drawing in between changes nothing
    assert torch.equal(items[(4, mix_seed(1, 0, 4))][0], x)
    assert not torch.equal(items[(4, mix_seed(1, 1, 4))][0], x)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_batches_do_not_depend_on_workers_or_resume_point(num_workers):
    def make(workers: int) -> ResumableLoader:
        return ResumableLoader(_RandomItems(), EpochBatchSampler(20, 4, seed=2), num_workers=workers)

    ref = make(0)
    ref.set_epoch(1)
    expected = [f for f, _ in ref]
    loader = make(num_workers)
    loader.set_epoch(1)
    loader.skip_batches(2)
    assert loader.steps_per_epoch == 5 and len(loader) == 3
    got = [f for f, _ in loader]
    assert all(torch.equal(a, b) for a, b in zip(got, expected[2:], strict=True))
