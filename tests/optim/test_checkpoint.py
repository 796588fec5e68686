"""state_dict round trips, validation, torch.optim export/import, devices."""
from __future__ import annotations

import copy
import io

import pytest
import torch

from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit
from sv_toolkit.optim.codebook import largest_half_gap

SIZES = (5000, 4097, 300)


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(n, generator=g) * 0.1) for n in SIZES]


def _grads(params, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=g) for p in params]


def _trained(cls, **kw):
    params = _params()
    opt = cls(params, **kw)
    for i in range(3):
        for p, g in zip(params, _grads(params, i)):
            p.grad = g
        opt.step()
    return params, opt


@pytest.mark.parametrize("cls,kw", [(Adam8bit, dict(lr=1e-2)), (AdamW8bit, dict(lr=1e-2)),
                                    (SGD8bit, dict(lr=0.1, momentum=0.9))])
def test_round_trip_gives_identical_codes_and_next_step(cls, kw) -> None:
    params, opt = _trained(cls, **kw)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    sd = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert sd["sv_toolkit_8bit"]["format_version"] == 1
    first = sd["state"][0]
    codes_key = [k for k in first if k.endswith("_codes")][0]
    assert first[codes_key].dtype == torch.uint8 and first["block_size"] == 256
    assert first[codes_key.replace("codes", "absmax")].dtype == torch.float32
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    clone = cls(twins, **kw)
    clone.load_state_dict(sd)
    for p, q in zip(params, twins):
        for k, v in opt.state[p].items():
            assert torch.equal(clone.state[q][k], v) if torch.is_tensor(v) else clone.state[q][k] == v
    grads = _grads(params, 7)
    for p, q, g in zip(params, twins, grads):
        p.grad, q.grad = g.clone(), g.clone()
    opt.step()
    clone.step()
    for p, q in zip(params, twins):
        assert torch.equal(p, q)
        for k, v in opt.state[p].items():
            assert torch.equal(clone.state[q][k], v) if torch.is_tensor(v) else clone.state[q][k] == v


def test_load_validates_version_class_and_shapes() -> None:
    params, opt = _trained(Adam8bit)
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["sv_toolkit_8bit"]["format_version"] = 99
    with pytest.raises(ValueError, match="format_version=99"):
        Adam8bit(params).load_state_dict(bad)
    with pytest.raises(ValueError, match="Adam8bit"):
        SGD8bit(params, momentum=0.9).load_state_dict(sd)
    bad = copy.deepcopy(sd)
    bad["state"][0]["exp_avg_codes"] = bad["state"][0]["exp_avg_codes"][:-1]
    with pytest.raises(ValueError, match="exp_avg_codes.*5000"):
        Adam8bit(params).load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"][0]["exp_avg_absmax"] = bad["state"][0]["exp_avg_absmax"][:-1]
    with pytest.raises(ValueError, match="exp_avg_absmax.*20"):
        Adam8bit(params).load_state_dict(bad)
    bad = copy.deepcopy(sd)
    bad["state"][2]["exp_avg"] = torch.zeros(7)
    with pytest.raises(ValueError, match="shape"):
        Adam8bit(params).load_state_dict(bad)


def test_other_block_size_is_requantised_with_a_warning() -> None:
    params, opt = _trained(Adam8bit, block_size=128)
    other = Adam8bit(params, block_size=256)
    with pytest.warns(RuntimeWarning, match="block size 128 to 256"):
        other.load_state_dict(opt.state_dict())
    s = other.state[params[0]]
    assert s["block_size"] == 256 and s["exp_avg_absmax"].numel() == 20
    before = opt.torch_state_dict()["state"][0]["exp_avg"]
    after = other.torch_state_dict()["state"][0]["exp_avg"]
    assert float((after - before).abs().max()) <= float(before.abs().max()) * largest_half_gap(True) * 1.001


@pytest.mark.parametrize("cls,torch_cls,kw", [(Adam8bit, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.01)),
                                              (AdamW8bit, torch.optim.AdamW, dict(lr=1e-2)),
                                              (SGD8bit, torch.optim.SGD, dict(lr=0.1, momentum=0.9))])
def test_export_loads_into_torch_and_takes_the_same_step(cls, torch_cls, kw) -> None:
    params, opt = _trained(cls, **kw)
    exported = opt.torch_state_dict()
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    ref = torch_cls(twins, **kw)
    ref.load_state_dict(exported)
    for p, q, g in zip(params, twins, _grads(params, 9)):
        p.grad, q.grad = g.clone(), g.clone()
    opt.step()
    ref.step()  # torch from the dequantised states == our step (which also starts from them)
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # and a torch.optim state_dict loads into the 8-bit optimizer (quantised on the way in)
    back = cls([torch.nn.Parameter(p.detach().clone()) for p in params], **kw)
    back.load_state_dict(ref.state_dict())
    assert back.uses_8bit_state(back.param_groups[0]["params"][0])
    assert "sv_toolkit_8bit" not in exported


@pytest.mark.gpu
def test_checkpoint_moves_between_cpu_and_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    params, opt = _trained(Adam8bit, lr=1e-2)
    cuda_params = [torch.nn.Parameter(p.detach().cuda()) for p in params]
    on_gpu = Adam8bit(cuda_params, lr=1e-2)
    on_gpu.load_state_dict(opt.state_dict())
    s = on_gpu.state[cuda_params[0]]
    assert s["exp_avg_codes"].is_cuda and s["exp_avg_absmax"].dtype == torch.float32
    for p, q, g in zip(params, cuda_params, _grads(params, 5)):
        p.grad, q.grad = g.clone(), g.cuda()
    opt.step()
    on_gpu.step()
    for p, q in zip(params, cuda_params):
        torch.testing.assert_close(p, q.cpu(), atol=1e-6, rtol=0)
    back = Adam8bit(params, lr=1e-2)
    back.load_state_dict(on_gpu.state_dict())
    assert not back.state[params[0]]["exp_avg_codes"].is_cuda
