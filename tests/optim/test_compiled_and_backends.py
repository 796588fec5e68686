"""The optional torch.compile'd step and the bitsandbytes backend."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from sv_toolkit.optim import Adam8bit, SGD8bit


CASES = [(Adam8bit, dict(lr=1e-2, weight_decay=0.01)), (SGD8bit, dict(lr=0.1, momentum=0.9, nesterov=True))]


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw", CASES)
def test_compiled_step_matches_eager(cls, kw) -> None:
    _compare_compiled_with_eager(cls, kw, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("cls,kw", CASES)
def test_compiled_step_matches_eager_on_cuda(cls, kw) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    _compare_compiled_with_eager(cls, kw, "cuda")


def _compare_compiled_with_eager(cls, kw, device: str) -> None:
    g = torch.Generator().manual_seed(0)
    sizes = (20000, 4097, 100)
    eager_params = [torch.nn.Parameter((torch.randn(n, generator=g) * 0.1).to(device)) for n in sizes]
    comp_params = [torch.nn.Parameter(p.detach().clone()) for p in eager_params]
    eager = cls(eager_params, chunk_size=1 << 14, **kw)
    compiled = cls(comp_params, chunk_size=1 << 14, compile=True, **kw)
    for step in range(3):
        for p, q in zip(eager_params, comp_params):
            p.grad = torch.randn(p.shape, generator=g).to(device)
            q.grad = p.grad.clone()
        eager.step()
        compiled.step()
    for p, q in zip(eager_params, comp_params):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    for key, value in eager.state[eager_params[0]].items():
        if key.endswith("_codes"):
            mismatch = (compiled.state[comp_params[0]][key] != value).float().mean().item()
            assert mismatch < 1e-3, f"{key}: {mismatch:.2%} of codes differ"


@pytest.mark.gpu
def test_bitsandbytes_backend_matches_torch_backend() -> None:
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("needs CUDA and bitsandbytes")
    g = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(8192, generator=g).cuda() * 0.1)]
    theirs = [torch.nn.Parameter(ours[0].detach().clone())]
    a = Adam8bit(ours, lr=1e-3, weight_decay=0.01)
    b = Adam8bit(theirs, lr=1e-3, weight_decay=0.01, backend="bitsandbytes")
    for _ in range(5):
        grad = torch.randn(8192, generator=g).cuda()
        ours[0].grad, theirs[0].grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-4, rtol=0)
    codes_a, codes_b = a.state[ours[0]]["exp_avg_codes"], b.state[theirs[0]]["exp_avg_codes"]
    assert (codes_a.int() - codes_b.int()).abs().max() <= 1


def test_bitsandbytes_backend_refused_clearly_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the backend is allowed here")
    with pytest.raises(ValueError, match="CUDA"):
        SGD8bit([torch.nn.Parameter(torch.zeros(3))], momentum=0.9, backend="bitsandbytes")


@pytest.mark.parametrize("name", ["sgd8bit", "adam8bit", "adamw8bit"])
def test_hydra_configs_instantiate(repo_root, name: str) -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(repo_root / "conf" / "optim" / f"{name}.yaml")
    factory = instantiate(cfg)
    p = torch.nn.Parameter(torch.randn(5000))
    opt = factory(params=[{"params": [p]}])
    p.grad = torch.randn_like(p)
    opt.step()
    assert type(opt).__name__.lower() == name and opt.uses_8bit_state(p)
