"""CUDA paths of the reversible core: CUDA RNG replay for dropout, fp16 autocast with fp32 streams."""

from __future__ import annotations

import copy

import pytest
import torch

from reversible_helpers import make_run, run_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_cuda_dropout_rng_replayed() -> None:
    torch.manual_seed(0)
    rev = make_run(half=4, dropout=0.5, blocks=3).double().cuda().train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(4, 8, 16, 16, dtype=torch.float64, device="cuda")
    _, gx = run_step(rev, x, seed=3)
    _, gx_ref = run_step(ref, x, seed=3)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-10)
    for p, q in zip(rev.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-10)


def test_cuda_fp16_autocast_streams_stay_fp32() -> None:
    torch.manual_seed(0)
    rev = make_run(half=8, blocks=3).cuda().train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(4, 16, 16, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        y, gx = run_step(rev, x)
        _, gx_ref = run_step(ref, x)
    assert y.dtype == torch.float32 and gx.dtype == torch.float32
    assert float((gx - gx_ref).norm() / gx_ref.norm()) < 1e-2
