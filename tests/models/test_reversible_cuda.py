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


def test_cuda_model_fp64_streams_fp16_autocast_and_peak_memory() -> None:
    """Default model settings on a GPU: fp64 streams, fp16 autocast inside F and G; the gradients track
    plain autograd's under the same autocast, and the CUDA peak comes from max_memory_allocated."""
    from sv_toolkit.models import build_model
    from sv_toolkit.training.memory import measure_training_step

    torch.manual_seed(0)
    model = build_model("revnet34_ii", base_width=8, num_blocks=(1, 2, 2, 1), embed_dim=16).cuda().train()
    reference = copy.deepcopy(model)
    reference.store_activations = True
    feats = torch.randn(4, 48, 80, device="cuda")
    for net in (model, reference):
        with torch.autocast("cuda", dtype=torch.float16):
            out = net(feats)
        out.float().square().sum().backward()
    num = sum(float((p.grad - q.grad).float().square().sum()) for p, q in zip(model.parameters(), reference.parameters()))
    den = sum(float(q.grad.float().square().sum()) for q in reference.parameters())
    assert (num / den) ** 0.5 < 5e-2
    report = measure_training_step(model, lambda e: e.square().sum(), feats, None)
    assert report.peak_live >= report.weights + report.grads
