"""DistributedDataParallel over a reversible model (2 gloo processes on CPU), with and without
find_unused_parameters: DDP gradients equal the all-reduced mean of plain-autograd gradients."""

from __future__ import annotations

import copy
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from sv_toolkit.models import build_model

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, find_unused: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        model = build_model("revnet10_ii", base_width=4, embed_dim=8).double()
        reference = copy.deepcopy(model)
        reference.store_activations = True
        ddp = DistributedDataParallel(model, find_unused_parameters=find_unused)
        torch.manual_seed(100 + rank)
        feats = torch.randn(2, 32, 80, dtype=torch.float64)
        for _ in range(2):  # a second step catches "marked ready twice" errors
            ddp.zero_grad()
            ddp(feats).square().sum().backward()
        reference(feats).square().sum().backward()  # two steps' worth of ref below
        for p, q in zip(model.parameters(), reference.parameters()):
            expected = q.grad.clone()
            dist.all_reduce(expected)
            expected /= world_size
            torch.testing.assert_close(p.grad, expected, rtol=1e-6, atol=1e-12)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("find_unused", [False, True])
def test_ddp_gradients_match_plain_autograd(find_unused: bool) -> None:
    mp.spawn(_worker, args=(2, _free_port(), find_unused), nprocs=2, join=True)
