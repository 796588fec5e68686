"""SGD8bit / Adam8bit / AdamW8bit: one-step equality with an fp32 reference, training parity, policies."""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit
from sv_toolkit.optim.blockwise import dequantize_blockwise, quantize_blockwise
from sv_toolkit.optim.codebook import largest_half_gap

SIZES = (5000, 4097, 300, 70000)  # 8-bit, ragged 8-bit, fp32 (small), split across chunks


def _params(seed: int = 0, dtype: torch.dtype = torch.float32,
            sizes: tuple[int, ...] = SIZES) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter((torch.randn(n, generator=g) * 0.1).to(dtype)) for n in sizes]


def _set_grads(params: list[torch.Tensor], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=g) * torch.exp(torch.randn(p.shape, generator=g))).to(p.dtype)


def _dense(opt: torch.optim.Optimizer, p: torch.Tensor, name: str, signed: bool) -> torch.Tensor:
    s = opt.state[p]
    if f"{name}_codes" in s:
        return dequantize_blockwise(s[f"{name}_codes"], s[f"{name}_absmax"], s["block_size"], signed)
    return s[name].reshape(-1).clone()


def _state_matches(opt, p, name, signed, expected: torch.Tensor) -> None:
    s = opt.state[p]
    if f"{name}_codes" in s:
        codes, _ = quantize_blockwise(expected, s["block_size"], signed)
        mismatch = (codes != s[f"{name}_codes"]).float().mean().item()
        assert mismatch < 1e-3, f"{name}: {mismatch:.2%} codes differ from quantising the reference"
        bound = expected.abs().max() * largest_half_gap(signed) * 1.001
        assert float((_dense(opt, p, name, signed) - expected).abs().max()) <= bound
    else:
        torch.testing.assert_close(s[name].reshape(-1), expected, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("cls,wd", [(Adam8bit, 0.0), (Adam8bit, 0.1), (AdamW8bit, 0.1)])
def test_adam_step_equals_fp32_reference_on_dequantised_states(cls, wd) -> None:
    _check_adam_step(cls, wd, _params())


def test_every_size_takes_the_reference_step_in_8_bits() -> None:
    """Sizes around one block and around min_8bit_size, all of them 8-bit here (min_8bit_size=1)."""
    params = _params(sizes=(1, 255, 256, 257, 4095, 4096, 4097))
    _check_adam_step(Adam8bit, 0.0, params, min_8bit_size=1)
    params = _params(sizes=(1, 255, 256, 257, 4095, 4096, 4097))
    _check_sgd_steps(params, dict(nesterov=True), min_8bit_size=1)


def _check_adam_step(cls, wd: float, params: list[torch.nn.Parameter], **kw) -> None:
    lr, (b1, b2), eps = 1e-2, (0.9, 0.99), 1e-8
    opt = cls(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, chunk_size=1 << 15, **kw)
    if kw.get("min_8bit_size") == 1:
        assert all(opt.uses_8bit_state(p) for p in params)
    for i in range(3):
        _set_grads(params, i)
        opt.step()
    _set_grads(params, 99)
    before = [(p.detach().clone(), _dense(opt, p, "exp_avg", True), _dense(opt, p, "exp_avg_sq", False))
              for p in params]
    opt.step()
    t = 4
    for p, (p0, m0, v0) in zip(params, before):
        g = p.grad.reshape(-1).clone()
        p0 = p0.reshape(-1)
        if cls is AdamW8bit:
            p0 = p0 * (1 - lr * wd)
        elif wd:
            g = g + wd * p0
        m1 = b1 * m0 + (1 - b1) * g
        v1 = b2 * v0 + (1 - b2) * g * g
        p1 = p0 - lr / (1 - b1 ** t) * m1 / (v1.sqrt() / math.sqrt(1 - b2 ** t) + eps)
        torch.testing.assert_close(p.detach().reshape(-1), p1, atol=1e-6, rtol=0)
        _state_matches(opt, p, "exp_avg", True, m1)
        _state_matches(opt, p, "exp_avg_sq", False, v1)


@pytest.mark.parametrize("kw", [dict(), dict(nesterov=True), dict(dampening=0.3), dict(weight_decay=0.01)])
def test_sgd_step_equals_fp32_reference_on_dequantised_states(kw) -> None:
    _check_sgd_steps(_params(), kw)


def _check_sgd_steps(params: list[torch.nn.Parameter], kw: dict, **options) -> None:
    lr, mom = 0.05, 0.9
    opt = SGD8bit(params, lr=lr, momentum=mom, chunk_size=1 << 15, **kw, **options)
    _set_grads(params, 0)
    first = [p.detach().clone() for p in params]
    opt.step()
    for p, p0 in zip(params, first):  # first step: the buffer is the (decayed) gradient, undampened
        g = p.grad + kw.get("weight_decay", 0.0) * p0
        d = g + mom * g if kw.get("nesterov") else g
        torch.testing.assert_close(p.detach(), p0 - lr * d, atol=1e-6, rtol=0)
    _set_grads(params, 1)
    before = [(p.detach().clone().reshape(-1), _dense(opt, p, "momentum_buffer", True)) for p in params]
    opt.step()
    for p, (p0, b0) in zip(params, before):
        g = p.grad.reshape(-1) + kw.get("weight_decay", 0.0) * p0
        b1 = mom * b0 + (1 - kw.get("dampening", 0.0)) * g
        d = g + mom * b1 if kw.get("nesterov") else b1
        torch.testing.assert_close(p.detach().reshape(-1), p0 - lr * d, atol=1e-6, rtol=0)
        _state_matches(opt, p, "momentum_buffer", True, b1)


def _train(opt_factory, seed: int, steps: int = 300) -> float:
    """Final full-batch loss of a 16-256-4 MLP (first layer 8-bit) fitting a random teacher."""
    torch.manual_seed(seed)
    x = torch.randn(256, 16)
    teacher = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    y = teacher(x).argmax(1).detach()
    model = torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))
    opt = opt_factory(model.parameters())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on a shared machine
    try:
        for _ in range(steps):
            idx = torch.randint(0, 256, (32,))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(model(x), y))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_toy_training_matches_torch(name: str) -> None:
    if name == "adam":
        ref, ours = (lambda ps: torch.optim.Adam(ps, lr=3e-3)), (lambda ps: Adam8bit(ps, lr=3e-3))
    else:
        ref = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)  # noqa: E731
        ours = lambda ps: SGD8bit(ps, lr=0.1, momentum=0.9, nesterov=True)  # noqa: E731
    seeds = (0, 1, 2)
    torch_losses = [_train(ref, s) for s in seeds]
    our_losses = [_train(ours, s) for s in seeds]
    mean_t = sum(torch_losses) / 3
    mean_o = sum(our_losses) / 3
    spread = max(torch_losses) - min(torch_losses)
    assert mean_t < 0.5, f"the toy task should be learnt (torch loss {mean_t:.3f})"
    assert abs(mean_o - mean_t) <= max(0.1 * mean_t, spread), (torch_losses, our_losses)


def test_small_tensors_and_overrides_keep_fp32_states() -> None:
    big, small, other = (torch.nn.Parameter(torch.randn(n)) for n in (4096, 4095, 8192))
    opt = Adam8bit([big, small, other], min_8bit_size=4096)
    opt.keep_fp32_states(other)
    for p in (big, small, other):
        p.grad = torch.ones_like(p)
    opt.step()
    assert opt.uses_8bit_state(big) and not opt.uses_8bit_state(small) and not opt.uses_8bit_state(other)
    assert opt.state[small]["exp_avg"].dtype == torch.float32
    group_opt = SGD8bit([{"params": [big], "fp32_states": True}], momentum=0.9)
    big.grad = torch.ones_like(big)
    group_opt.step()
    assert "momentum_buffer" in group_opt.state[big]
    opt.keep_fp32_states(big)  # converts existing 8-bit states
    assert "exp_avg" in opt.state[big] and "exp_avg_codes" not in opt.state[big]


def test_state_bytes_per_parameter() -> None:
    p = torch.nn.Parameter(torch.randn(256 * 64))
    p.grad = torch.randn_like(p)
    adam, sgd = Adam8bit([p]), SGD8bit([p], momentum=0.9)
    adam.step()
    sgd.step()
    assert adam.state_nbytes() / p.numel() == 2 + 8 / 256
    assert sgd.state_nbytes() / p.numel() == 1 + 4 / 256


def test_bf16_parameters_keep_fp32_absmax_and_train() -> None:
    params = _params(dtype=torch.bfloat16)
    opt = Adam8bit(params, lr=1e-2)
    _set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    opt.step()
    for p, p0 in zip(params, before):
        assert p.dtype == torch.bfloat16 and not torch.equal(p, p0)
    s = opt.state[params[0]]
    assert s["exp_avg_absmax"].dtype == torch.float32 and s["exp_avg_sq_absmax"].dtype == torch.float32
    assert opt.state[params[2]]["exp_avg"].dtype == torch.float32
    clone = Adam8bit(params, lr=1e-2)
    clone.load_state_dict(opt.state_dict())
    assert clone.state[params[0]]["exp_avg_absmax"].dtype == torch.float32
    assert torch.equal(clone.state[params[0]]["exp_avg_absmax"], s["exp_avg_absmax"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_gradient_skip_policy(bad: float) -> None:
    params = _params()
    opt = Adam8bit(params, lr=1e-2)
    _set_grads(params, 0)
    opt.step()
    snapshot = [(p.detach().clone(), {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()})
                for p in params]
    _set_grads(params, 1)
    params[3].grad[123] = bad
    with pytest.warns(RuntimeWarning, match="non-finite gradient.*positions \\[3\\]"):
        opt.step()
    assert opt.skipped_steps == 1
    for p, (p0, s0) in zip(params, snapshot):
        assert torch.equal(p, p0)
        for k, v in s0.items():
            assert torch.equal(opt.state[p][k], v) if torch.is_tensor(v) else opt.state[p][k] == v
    params[3].grad[123] = 0.0
    opt.step()  # a finite step goes through
    assert not torch.equal(params[3], snapshot[3][0])


def test_huge_finite_gradients_are_not_taken_for_non_finite() -> None:
    p = torch.nn.Parameter(torch.zeros(5000))
    opt = SGD8bit([p], lr=1e-40, momentum=0.9, nonfinite_grad="raise")
    p.grad = torch.full_like(p, 3e38)  # finite, but their sum overflows fp32
    opt.step()
    assert opt.skipped_steps == 0 and bool((p < 0).all())


def test_nonfinite_gradient_raise_policy() -> None:
    p = torch.nn.Parameter(torch.randn(5000))
    opt = SGD8bit([p], momentum=0.9, nonfinite_grad="raise")
    p.grad = torch.ones_like(p)
    p.grad[0] = float("nan")
    with pytest.raises(FloatingPointError, match="positions \\[0\\]"):
        opt.step()
    with pytest.raises(ValueError, match="nonfinite_grad"):
        SGD8bit([p], momentum=0.9, nonfinite_grad="ignore")


def test_signatures_follow_torch_and_options_are_validated() -> None:
    for ours, theirs in ((SGD8bit, torch.optim.SGD), (Adam8bit, torch.optim.Adam), (AdamW8bit, torch.optim.AdamW)):
        ours_params = inspect.signature(ours.__init__).parameters
        for name, param in inspect.signature(theirs.__init__).parameters.items():
            assert name in ours_params, f"{ours.__name__} lacks torch's argument {name!r}"
            assert ours_params[name].kind == param.kind, name
            if name not in ("lr", "params"):
                assert ours_params[name].default == param.default, name
    p = [torch.nn.Parameter(torch.randn(10))]
    with pytest.raises(ValueError, match="momentum > 0"):
        SGD8bit(p, lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD8bit(p, lr=0.1, momentum=0.9, nesterov=True, dampening=0.1)
    with pytest.raises(ValueError, match="amsgrad"):
        Adam8bit(p, amsgrad=True)
    with pytest.raises(ValueError, match="block_size"):
        Adam8bit(p, block_size=255)
    with pytest.raises(ValueError, match="bitsandbytes|CUDA"):
        Adam8bit(p, backend="bitsandbytes")
    with pytest.raises(ValueError, match="block_size must be an even integer"):
        Adam8bit([{"params": p, "block_size": 63}])
    with pytest.raises(ValueError, match="chunk_size"):
        SGD8bit(p, momentum=0.9, chunk_size=128)
    with pytest.raises(ValueError, match="fp32_states"):
        SGD8bit([{"params": p, "fp32_states": "yes"}], momentum=0.9)


def test_lr_scheduler_and_param_groups() -> None:
    a, b = torch.nn.Parameter(torch.randn(5000)), torch.nn.Parameter(torch.randn(5000))
    opt = AdamW8bit([{"params": [a]}, {"params": [b], "lr": 0.0, "weight_decay": 0.0}], lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    b0 = b.detach().clone()
    for _ in range(2):
        a.grad, b.grad = torch.randn_like(a), torch.randn_like(b)
        opt.step()
        sched.step()
    assert torch.equal(b, b0), "lr 0 and no decay: the second group does not move"
    assert opt.param_groups[0]["lr"] == pytest.approx(2.5e-3)
