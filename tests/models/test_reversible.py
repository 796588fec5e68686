"""Reversible core: exact inverse, gradients equal to plain autograd, BN stats, RNG replay, autocast."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from torch.func import functional_call

from reversible_helpers import branch, make_run, run_step
from sv_toolkit.models.reversible import (
    CouplingBlock,
    ReversibleSequence,
    SpaceToDepth,
    frozen_running_stats,
    has_randomness,
    paused_running_stats,
)

FP32_EPS = torch.finfo(torch.float32).eps


def assert_same_grads(a: nn.Module, b: nn.Module, rtol: float, atol: float) -> None:
    """Elementwise rtol, plus atol relative to the tensor's largest reference gradient."""
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.grad is not None, f"{name} got no gradient"
        scale = float(q.grad.abs().max())
        torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol * scale, msg=f"grad of {name}")


def test_inverse_reconstructs_input_fp32() -> None:
    torch.manual_seed(0)
    seq = make_run(half=4, blocks=8).eval()
    x = torch.randn(2, 8, 16, 12)
    with torch.no_grad():
        y = seq(x)
        x_rec = seq.inverse(y)
    # Each of the 16 couplings subtracts what it added: rounding error ~ eps * |y| per subtraction,
    # two per block, so the bound is ~ 2 * 16 * eps * max|y|; we allow 4x that (measured ~1e-7 rel).
    bound = 4 * 2 * 16 * FP32_EPS * y.abs().max()
    assert (x_rec - x).abs().max() <= bound


def test_inverse_is_exact_in_fp64() -> None:
    torch.manual_seed(0)
    seq = make_run(half=2, blocks=3).double().train()
    x = torch.randn(3, 4, 8, 6, dtype=torch.float64)
    with torch.no_grad():
        x_rec = seq.inverse(seq(x))
    torch.testing.assert_close(x_rec, x, rtol=0, atol=1e-12)


def test_gradcheck_fp64_inputs_and_parameters() -> None:
    torch.manual_seed(0)
    seq = ReversibleSequence(
        [CouplingBlock(branch(1), branch(1)), SpaceToDepth(), CouplingBlock(branch(4, kernel=1), branch(4, kernel=1))]
    ).double()
    names = [n for n, _ in seq.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in seq.parameters())
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)

    def fn(inp: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(seq, dict(zip(names, ps)), (inp,))

    assert type(fn(x, *params).grad_fn).__name__ == "_ReversibleRunFunctionBackward"
    assert torch.autograd.gradcheck(fn, (x, *params), fast_mode=True)


def test_gradients_match_plain_autograd_fp64() -> None:
    torch.manual_seed(0)
    rev = make_run(half=2, blocks=3).double().train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(3, 4, 8, 6, dtype=torch.float64)
    y, gx = run_step(rev, x)
    y_ref, gx_ref = run_step(ref, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-10)
    assert_same_grads(rev, ref, rtol=1e-9, atol=1e-10)


def test_gradients_match_plain_autograd_fp32() -> None:
    torch.manual_seed(0)
    rev = make_run(half=4, blocks=4).train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(4, 8, 8, 8)
    _, gx = run_step(rev, x)
    _, gx_ref = run_step(ref, x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-5 * float(gx_ref.abs().max()))
    assert_same_grads(rev, ref, rtol=1e-4, atol=1e-5)


def _relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float((p - q).double().square().sum()) for p, q in zip(a, b))
    return (num / sum(float(q.double().square().sum()) for q in b)) ** 0.5


@pytest.mark.parametrize("stream_dtype", [torch.float32, torch.float64])
def test_fp64_streams_give_fp32_gradients_of_plain_autograd(stream_dtype: torch.dtype) -> None:
    """A deep run on small streams (std 0.01): F and G begin with conv + train-mode BN, so they are
    scale invariant and their Jacobian grows like 1 / |stream|. With fp32 streams the rounding of every
    ``x1 + F(x2)`` is amplified on the way back: measured 1.7e-4 relative parameter-gradient error
    (1.1e-5 at std 0.1, 2e-7 at std 1). fp64 streams rebuild every block input exactly as the forward
    saw it: measured 2.3e-7 at every scale, plain fp32 summation noise."""
    torch.manual_seed(0)
    rev = make_run(half=2, blocks=12, stream_dtype=stream_dtype).train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = 0.01 * torch.randn(4, 4, 16, 16)
    y, gx = run_step(rev, x)
    y_ref, gx_ref = run_step(ref, x)
    assert y.dtype == torch.float32 and gx.dtype == torch.float32
    err = _relative_error([p.grad for p in rev.parameters()], [p.grad for p in ref.parameters()])
    if stream_dtype == torch.float64:
        assert err < 2e-6, err
        assert_same_grads(rev, ref, rtol=1e-4, atol=1e-5)
    else:
        assert 2e-5 < err < 1e-2, err  # bounded, but far above fp32 rounding


def test_fp64_stream_output_is_kept_as_hi_and_lo() -> None:
    torch.manual_seed(0)
    seq = make_run(half=2, blocks=2, stream_dtype=torch.float64).train()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = seq(x)
    assert y.dtype == torch.float32
    assert [t.dtype for t in saved] == [torch.float32, torch.float32]
    assert saved[0].data_ptr() == y.data_ptr()  # hi is the returned output itself
    # lo holds what fp32 rounding dropped: a few ulps of hi at most
    assert float(saved[1].abs().max()) <= 2 * torch.finfo(torch.float32).eps * float(y.detach().abs().max())


def test_running_stat_contexts_leave_buffers_alone() -> None:
    torch.manual_seed(0)
    net = branch(3).train()
    x = torch.randn(2, 3, 5, 5)
    before = [b.clone() for b in net.buffers()]
    with paused_running_stats(net):
        out_paused = net(x)
    with frozen_running_stats(net):
        out_frozen = net(x)
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    for b, b0 in zip(net.buffers(), before):
        assert torch.equal(b, b0)
    torch.testing.assert_close(out_paused, out_frozen, rtol=0, atol=0)  # batch statistics either way
    net(x)
    assert int(net[1].num_batches_tracked) == 1


def test_batchnorm_running_stats_updated_once() -> None:
    torch.manual_seed(0)
    rev = make_run(half=2, blocks=2).double().train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(3, 4, 8, 6, dtype=torch.float64)
    for model in (rev, ref):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        run_step(model, x)
        opt.step()
    for (name, b), b_ref in zip(rev.named_buffers(), ref.buffers()):
        if name.endswith("num_batches_tracked"):
            assert int(b) == 1 and torch.equal(b, b_ref), name
        else:
            torch.testing.assert_close(b, b_ref, rtol=1e-12, atol=1e-12, msg=name)
    for (name, p), p_ref in zip(rev.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, p_ref, rtol=1e-9, atol=1e-10, msg=name)


def test_dropout_rng_is_replayed_and_global_rng_untouched() -> None:
    torch.manual_seed(0)
    rev = make_run(half=2, dropout=0.5, blocks=2).double().train()
    assert all(layer.preserve_rng_state for layer in rev.layers if isinstance(layer, CouplingBlock))
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(3, 4, 8, 6, dtype=torch.float64)
    _, gx = run_step(rev, x, seed=7)
    after_rev = torch.rand(4)
    _, gx_ref = run_step(ref, x, seed=7)
    after_ref = torch.rand(4)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-10)
    assert_same_grads(rev, ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(after_rev, after_ref, rtol=0, atol=0)  # backward left the RNG alone


def test_randomness_detection() -> None:
    assert has_randomness(branch(2, dropout=0.1))
    assert not has_randomness(branch(2))


@pytest.mark.parametrize("stream_dtype", [None, torch.float64])
def test_autocast_keeps_streams_full_precision(stream_dtype: torch.dtype | None) -> None:
    torch.manual_seed(0)
    rev = make_run(half=4, blocks=2, stream_dtype=stream_dtype).train()
    ref = copy.deepcopy(rev)
    ref.store_activations = True
    x = torch.randn(2, 8, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, gx = run_step(rev, x)
        y_ref, gx_ref = run_step(ref, x)
    assert y.dtype == torch.float32 and gx.dtype == torch.float32
    # Same bf16 computations replayed: equal up to the fp32 reconstruction of bf16-rounded branches.
    torch.testing.assert_close(gx, gx_ref, rtol=2e-2, atol=2e-2)
    assert_same_grads(rev, ref, rtol=5e-2, atol=5e-2)


def test_only_the_run_output_is_saved() -> None:
    torch.manual_seed(0)
    seq = make_run(half=2, blocks=4).train()
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = seq(x)
    assert len(saved) == 1 and saved[0].data_ptr() == y.data_ptr()


def test_store_activations_and_no_grad_paths() -> None:
    seq = make_run(half=2, blocks=1)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert seq(x).grad_fn is None
    seq.store_activations = True
    assert type(seq(x).grad_fn).__name__ == "CatBackward0"
    seq.stream_dtype = torch.float64
    assert type(seq(x).grad_fn).__name__ == "ToCopyBackward0"  # fp64 streams, output back in fp32
    with torch.no_grad():
        assert seq(x).dtype == torch.float32  # without grad the streams keep the input dtype
    seq.store_activations = False
    assert type(seq(x).grad_fn).__name__ == "_ReversibleRunFunctionBackward"
    seq.eval()  # eval mode, grad on (tracing, export): plain ops, no custom Function
    assert type(seq(x).grad_fn).__name__ == "CatBackward0"


def test_errors_name_the_offending_shape() -> None:
    seq = make_run(half=2, blocks=1)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\)"):
        seq(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"even freq and time"):
        seq(torch.randn(2, 4, 8, 7))
