"""The 8-bit optimizers inside a training loop: AMP GradScaler, checkpoint resume, nn.Module parameters."""
from __future__ import annotations

import io

import pytest
import torch

from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit

FACTORIES = {
    "adam8bit": lambda ps: Adam8bit(ps, lr=1e-2, weight_decay=1e-3),
    "adamw8bit": lambda ps: AdamW8bit(ps, lr=1e-2),
    "sgd8bit": lambda ps: SGD8bit(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
}


def _model(seed: int = 0, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(seed)  # first layer's weight (8192 elements) gets 8-bit states, the rest fp32
    return torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4)).to(device)


def _batch(step: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(16, 32, generator=g).to(device), torch.randint(0, 4, (16,), generator=g).to(device)


def _loss(model: torch.nn.Module, step: int, device: str = "cpu") -> torch.Tensor:
    x, y = _batch(step, device)
    return torch.nn.functional.cross_entropy(model(x), y)


def _snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    tensors = [p.detach().clone() for p in model.parameters()]
    for state in opt.state.values():
        tensors += [v.clone() for k, v in sorted(state.items()) if torch.is_tensor(v)]
    return tensors


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_grad_scaler_on_cpu_matches_unscaled_training_and_skips_overflow(name: str) -> None:
    plain, scaled = _model(), _model()
    opt_plain, opt_scaled = FACTORIES[name](plain.parameters()), FACTORIES[name](scaled.parameters())
    assert opt_scaled.uses_8bit_state(scaled[0].weight)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    for step in range(4):
        opt_plain.zero_grad()
        _loss(plain, step).backward()
        opt_plain.step()
        opt_scaled.zero_grad()
        scaler.scale(_loss(scaled, step)).backward()
        scaler.unscale_(opt_scaled)  # what a loop with gradient clipping does
        scaler.step(opt_scaled)
        scaler.update()
    # scaling by a power of two and unscaling is exact: the same trajectory, bit for bit
    for a, b in zip(_snapshot(plain, opt_plain), _snapshot(scaled, opt_scaled)):
        assert torch.equal(a, b)
    # an overflowing step: GradScaler skips optimizer.step() and lowers the scale
    before = _snapshot(scaled, opt_scaled)
    opt_scaled.zero_grad()
    scaler.scale(_loss(scaled, 9) * float("inf")).backward()
    scaler.step(opt_scaled)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 11
    assert opt_scaled.skipped_steps == 0, "GradScaler, not our non-finite policy, handled the overflow"
    for a, b in zip(before, _snapshot(scaled, opt_scaled)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_resume_from_checkpoint_is_bit_exact(name: str, tmp_path) -> None:
    model = _model()
    opt = FACTORIES[name](model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, path)
    for step in range(3, 7):  # the uninterrupted run
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
    ckpt = torch.load(path, weights_only=True)
    resumed = _model(seed=5)  # other initial weights: everything must come from the checkpoint
    resumed.load_state_dict(ckpt["model"])
    opt2 = FACTORIES[name](resumed.parameters())
    opt2.load_state_dict(ckpt["opt"])
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(ckpt["sched"])
    for step in range(3, 7):
        opt2.zero_grad()
        _loss(resumed, step).backward()
        opt2.step()
        sched2.step()
    for a, b in zip(_snapshot(model, opt), _snapshot(resumed, opt2)):
        assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_fp16_autocast_with_grad_scaler_on_cuda(name: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = _model(device="cuda")
    opt = FACTORIES[name](model.parameters())
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 16)
    first = None
    for step in range(30):
        opt.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = _loss(model, step % 4, "cuda")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        first = float(loss) if first is None else first
    assert float(loss) < first, "training on 4 repeated batches lowers the loss"
    state = opt.state[model[0].weight]
    codes = [k for k in state if k.endswith("_codes")]
    assert codes and all(state[k].is_cuda and state[k].dtype == torch.uint8 for k in codes)
    assert all(state[k.replace("_codes", "_absmax")].dtype == torch.float32 for k in codes)
    buffer = io.BytesIO()  # a CUDA checkpoint loads on CPU
    torch.save(opt.state_dict(), buffer)
    cpu_model = _model()
    cpu_model.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    cpu_opt = FACTORIES[name](cpu_model.parameters())
    cpu_opt.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert not cpu_opt.state[cpu_model[0].weight][codes[0]].is_cuda
