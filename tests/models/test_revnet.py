"""RevNets (Type I / II): parameter parity with ResNets, gradients equal to plain autograd, memory."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from sv_toolkit.models import available_models, build_model
from sv_toolkit.models.reversible import ReversibleSequence
from sv_toolkit.training.memory import measure_training_step

REVERSIBLE = [n for n in available_models() if n.startswith(("revnet", "dfrevnet"))]
THIN = dict(base_width=4, embed_dim=8, num_blocks=(2, 2, 2, 2))


def vanilla_name(name: str) -> str:
    return name.rsplit("_", 1)[0].replace("rev", "res")


def count_params_meta(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name).parameters())


def saved_activation_bytes(model: nn.Module, feats: torch.Tensor) -> int:
    """Bytes of the unique non-parameter storages autograd saves during one forward."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(feats)
    return sum(storages.values())


def assert_same_param_grads(model: nn.Module, reference: nn.Module, rtol: float, atol_rel: float) -> None:
    """Elementwise rtol; atol relative to the largest gradient of the whole net, because some
    gradients are exactly zero in exact arithmetic (BN shifts that a later BN cancels) and are
    only rounding noise in both runs."""
    scale = max(float(q.grad.abs().max()) for q in reference.parameters())
    for (pname, p), q in zip(model.named_parameters(), reference.parameters()):
        assert p.grad is not None, f"{pname} got no gradient"
        torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol_rel * scale, msg=pname)


def test_every_vanilla_depth_has_both_types() -> None:
    for name in [n for n in available_models() if n.startswith(("resnet", "dfresnet"))]:
        rev = name.replace("res", "rev")
        assert f"{rev}_i" in REVERSIBLE and f"{rev}_ii" in REVERSIBLE


@pytest.mark.parametrize("name", REVERSIBLE)
def test_param_count_close_to_vanilla(name: str) -> None:
    got, want = count_params_meta(name), count_params_meta(vanilla_name(name))
    # Contract: within 10%; the width solver actually lands within 1%.
    assert abs(got - want) / want < 0.01, f"{name}: {got} params vs {vanilla_name(name)} {want}"


@pytest.mark.parametrize("name", REVERSIBLE)
def test_gradients_and_bn_stats_match_store_activations_fp64(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, **THIN).double().train()
    assert any(isinstance(m, ReversibleSequence) for m in model.modules())
    reference = copy.deepcopy(model)
    reference.store_activations = True
    assert all(m.store_activations for m in reference.modules() if isinstance(m, ReversibleSequence))
    feats = torch.randn(2, 32, 80, dtype=torch.float64)  # DF nets pool T / 16 = 2 frames
    outs, input_grads = [], []
    for net in (model, reference):
        x = feats.clone().requires_grad_(True)
        out = net(x)
        (out * torch.arange(1.0, 9.0, dtype=torch.float64)).sum().backward()
        outs.append(out.detach())
        input_grads.append(x.grad)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(input_grads[0], input_grads[1], rtol=1e-6, atol=1e-12)
    assert_same_param_grads(model, reference, rtol=1e-6, atol_rel=1e-10)
    for (bname, b), c in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-12, msg=f"{name}: buffer {bname}")


def relative_grad_errors(model: nn.Module, reference: nn.Module) -> tuple[float, float]:
    """(global relative L2 error over all parameter gradients, worst per-tensor relative L2 error
    among tensors carrying at least 1e-3 of the global gradient norm)."""
    pairs = [(p.grad.double(), q.grad.double()) for p, q in zip(model.parameters(), reference.parameters())]
    total = sum(float(q.square().sum()) for _, q in pairs) ** 0.5
    diff = sum(float((p - q).square().sum()) for p, q in pairs) ** 0.5
    worst = max(float((p - q).norm() / q.norm()) for p, q in pairs if float(q.norm()) > 1e-3 * total)
    return diff / total, worst


# One thin model per family: Basic / Bottleneck RevNets and DF-RevNets, Type I and II.
FP32_FAMILIES = [
    ("revnet34_i", 8), ("revnet50_i", 8), ("revnet34_ii", 8), ("revnet50_ii", 8),
    ("dfrevnet56_i", 8), ("dfrevnet56_ii", 16),
]


def _fp32_step_pair(name: str, width: int, stream_dtype: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = build_model(name, base_width=width, num_blocks=(2, 2, 3, 2), embed_dim=16, stream_dtype=stream_dtype)
    model.train()
    reference = copy.deepcopy(model)
    reference.store_activations = True
    feats = torch.randn(4, 48, 80)
    for net in (model, reference):
        net(feats).square().sum().backward()
    return model, reference


@pytest.mark.parametrize(("name", "width"), FP32_FAMILIES)
def test_fp64_streams_fp32_gradients_equal_store_activations(name: str, width: int) -> None:
    """``stream_dtype="float64"``: every block input is rebuilt as the forward saw it, so fp32 gradients
    equal plain autograd's up to summation order. Measured: global relative error <= 1e-6, worst
    tensor <= 1.3e-5, elementwise within rtol 1e-4 + 1e-5 of the net's largest gradient."""
    model, reference = _fp32_step_pair(name, width, "float64")
    global_err, worst_err = relative_grad_errors(model, reference)
    assert global_err < 1e-5 and worst_err < 1e-4, (global_err, worst_err)
    assert_same_param_grads(model, reference, rtol=1e-4, atol_rel=1e-5)
    for (bname, b), c in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-6, msg=f"{name}: buffer {bname}")


@pytest.mark.parametrize(("name", "width"), FP32_FAMILIES)
def test_fp32_streams_gradients_bounded(name: str, width: int) -> None:
    """Default fp32 streams (faster, 4 bytes less per element of each run's output): fp32 rounding of
    ``x1 + F(x2)`` is amplified by F and G's Jacobians (conv + train-mode BN: scale invariant, so
    ~1 / |stream|) on the way back. Measured at these thin sizes: global 8e-7 (Type I nets, short runs)
    up to 4.0e-3 (dfrevnet56_ii); worst tensor up to 2.0e-2 (dfrevnet56_ii). The bounds leave 5x margin."""
    model, reference = _fp32_step_pair(name, width, "float32")
    global_err, worst_err = relative_grad_errors(model, reference)
    assert global_err < 2e-2 and worst_err < 0.1, (global_err, worst_err)
    for (bname, b), c in zip(model.named_buffers(), reference.buffers()):  # the forward is plain fp32
        torch.testing.assert_close(b, c, rtol=1e-4, atol=1e-5, msg=f"{name}: buffer {bname}")


@pytest.mark.parametrize("name", ["revnet34_ii", "revnet50_ii"])
def test_type_ii_body_inverse_reconstructs_stem_output(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, base_width=8, num_blocks=(2, 2, 4, 2)).eval()
    with torch.no_grad():
        x = model.stem(torch.randn(2, 1, 80, 32))
        y = model.body(x)
        x_rec = model.body.inverse(y)
    # 10 coupling blocks, two fp32 subtractions each: error <~ 20 * eps * max|y|; allow 4x margin.
    bound = 4 * 20 * torch.finfo(torch.float32).eps * float(y.abs().max())
    assert float((x_rec - x).abs().max()) <= bound


PURE = dict(keep_tail_activations=False)  # every reversible layer recomputed: only the run output kept


def test_type_ii_saved_bytes_flat_in_depth_and_far_below_vanilla() -> None:
    feats = torch.randn(2, 64, 80)
    shallow = saved_activation_bytes(build_model("revnet34_ii", base_width=8, num_blocks=(1, 1, 1, 1), **PURE), feats)
    deep = saved_activation_bytes(build_model("revnet34_ii", base_width=8, num_blocks=(2, 2, 6, 2), **PURE), feats)
    vanilla = saved_activation_bytes(build_model("resnet34", base_width=8, num_blocks=(2, 2, 6, 2)), feats)
    assert shallow == deep
    # Measured 0.39 MB vs 7.2 MB (18x): the checkpointed stem keeps its 1-channel input only.
    assert deep * 12 < vanilla, f"Type II saves {deep} B, vanilla {vanilla} B"


@pytest.mark.parametrize("name", ["revnet50_ii", "revnet101_ii", "revnet293_ii"])
def test_type_ii_saved_bytes_equal_at_full_depth(name: str) -> None:
    """The contract depths (3-4-6-3 / 3-4-23-3 / 10-20-64-3 Bottleneck blocks), thin, default settings
    (kept tail included): the same bytes whatever the depth (measured: identical to the byte)."""
    feats = torch.randn(2, 32, 80)
    reference = saved_activation_bytes(build_model("revnet50_ii", base_width=4), feats)
    assert saved_activation_bytes(build_model(name, base_width=4), feats) == reference


def test_df_type_ii_saved_bytes_flat_in_depth() -> None:
    feats = torch.randn(2, 64, 80)
    shallow = saved_activation_bytes(build_model("dfrevnet56_ii", base_width=16, num_blocks=(1, 1, 1, 1), **PURE), feats)
    deep = saved_activation_bytes(build_model("dfrevnet56_ii", base_width=16, num_blocks=(3, 3, 9, 3), **PURE), feats)
    vanilla = saved_activation_bytes(build_model("dfresnet56", base_width=16, num_blocks=(3, 3, 9, 3)), feats)
    assert shallow == deep
    assert deep * 8 < vanilla, f"Type II saves {deep} B, vanilla {vanilla} B"


def test_type_i_saved_bytes_do_not_grow_with_blocks_per_stage() -> None:
    feats = torch.randn(2, 64, 80)
    short = saved_activation_bytes(build_model("revnet50_i", base_width=8, num_blocks=(2, 2, 2, 2), **PURE), feats)
    long = saved_activation_bytes(build_model("revnet50_i", base_width=8, num_blocks=(3, 4, 6, 3), **PURE), feats)
    vanilla = saved_activation_bytes(build_model("resnet50", base_width=8, num_blocks=(3, 4, 6, 3)), feats)
    assert short == long
    # Measured 15.7 MB vs 32.0 MB: the shape-changing Bottleneck blocks stay ordinary (Type I).
    assert long * 1.8 < vanilla


@pytest.mark.parametrize("name", ["revnet34_ii", "revnet50_i", "dfrevnet56_ii"])
def test_kept_tail_leaves_the_peak_alone(name: str) -> None:
    """The kept tail is budgeted to fit in one full-resolution recompute, which backward holds anyway:
    the peak of live memory over a training step does not grow (measured: equal within 0.5%) while
    that many layers are not recomputed."""
    feats = torch.randn(2, 48, 80)
    peaks, saved = [], []
    for keep in (False, True):
        torch.manual_seed(0)
        model = build_model(name, base_width=8, num_blocks=(2, 2, 4, 3), keep_tail_activations=keep).train()
        report = measure_training_step(model, lambda e: e.square().sum(), feats, None)
        peaks.append(report.peak_live)
        saved.append(report.activations_saved)
    runs = [m for m in model.modules() if isinstance(m, ReversibleSequence)]
    assert runs[-1].stored_tail > 0
    assert saved[1] > saved[0]
    assert peaks[1] <= 1.03 * peaks[0], peaks


def test_store_activations_override_and_attribute() -> None:
    model = build_model("revnet18_i", base_width=4, store_activations=True)
    assert model.store_activations
    model.store_activations = False
    assert not any(m.store_activations for m in model.modules() if isinstance(m, ReversibleSequence))


def test_type_ii_handles_lengths_not_multiple_of_8() -> None:
    model = build_model("revnet10_ii", base_width=4, embed_dim=8)
    out = model(torch.randn(2, 21, 80))
    assert out.shape == (2, 8)
    out.sum().backward()


def test_width_constraints_are_reported() -> None:
    with pytest.raises(ValueError, match="base_width divisible by 4, got 6"):
        build_model("revnet34_ii", base_width=6)
    with pytest.raises(ValueError, match="even base_width, got 5"):
        build_model("revnet34_i", base_width=5)


@pytest.mark.parametrize("name", ["revnet34_ii", "dfrevnet56_i"])
def test_bf16_autocast_gradients_as_good_as_plain_autograd(name: str) -> None:
    """Under bf16 autocast the reversible gradient is as far from the fp32 one as plain autograd's bf16
    gradient is. Measured relative distance to fp32: 0.082 vs 0.082 (revnet34_ii), 0.454 vs 0.453
    (dfrevnet56_i, thin nets are coarse in bf16); streams and outputs stay fp32."""
    torch.manual_seed(0)
    model = build_model(name, base_width=8, num_blocks=(1, 2, 2, 1), embed_dim=16).train()
    plain_bf16 = copy.deepcopy(model)
    plain_bf16.store_activations = True
    plain_fp32 = copy.deepcopy(plain_bf16)
    feats = torch.randn(2, 48, 80)
    for net, bf16 in ((model, True), (plain_bf16, True), (plain_fp32, False)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(feats)
        assert out.dtype == (torch.bfloat16 if bf16 else torch.float32)  # the head's Linear runs in bf16
        out.float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    rev_err, _ = relative_grad_errors(model, plain_fp32)
    plain_err, _ = relative_grad_errors(plain_bf16, plain_fp32)
    assert rev_err < 1.6 * plain_err, (rev_err, plain_err)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("name", ["revnet10_ii", "revnet18_i", "dfrevnet56_ii"])
def test_eval_forward_is_plain_ops_and_traceable(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, base_width=8, num_blocks=(1, 1, 1, 1), embed_dim=16).eval()
    feats = torch.randn(2, 40, 80)
    out = model(feats)  # eval mode, grad enabled: no custom autograd Function in the graph
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        assert "ReversibleRun" not in type(node).__name__
        stack += [n for n, _ in node.next_functions]
    with torch.no_grad():
        traced = torch.jit.trace(model, feats)
        longer = torch.randn(1, 57, 80)  # another length: padding to multiples of 8 / 16 is traced too
        torch.testing.assert_close(traced(longer), model(longer), rtol=1e-5, atol=1e-5)
