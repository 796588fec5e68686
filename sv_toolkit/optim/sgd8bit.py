"""SGD with momentum whose momentum buffer is stored block-wise in 8 bits (signed code book)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from sv_toolkit.optim.base import MIN_8BIT_SIZE, Optimizer8bit, decay_add_
from sv_toolkit.optim.blockwise import DEFAULT_BLOCK_SIZE
from sv_toolkit.optim.chunking import DEFAULT_CHUNK_SIZE
from sv_toolkit.optim.compiled import FusedMath, sgd_math


class SGD8bit(Optimizer8bit):
    """torch.optim.SGD with an 8-bit momentum buffer; momentum, dampening, nesterov and L2 decay as torch.

    ``momentum`` must be > 0 (plain SGD has no state to quantise). On a parameter's first step the buffer
    is the gradient itself, as in torch. Extra keyword options as for :class:`Adam8bit`.
    """

    STATE_SPECS = (("momentum_buffer", True),)
    TORCH_OPTIMIZER = torch.optim.SGD

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, differentiable: bool = False, fused: bool | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE, min_8bit_size: int = MIN_8BIT_SIZE,
                 nonfinite_grad: str = "skip", chunk_size: int = DEFAULT_CHUNK_SIZE, compile: bool = False,
                 backend: str = "torch") -> None:
        if float(lr) < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum <= 0.0:
            raise ValueError(f"SGD8bit needs momentum > 0 (got {momentum}): without momentum SGD keeps no state "
                             f"to quantise; use torch.optim.SGD")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= dampening <= 1.0:
            raise ValueError(f"Invalid dampening value: {dampening} (must be in [0, 1])")
        if nesterov and dampening != 0:
            raise ValueError(f"Nesterov momentum requires zero dampening (got dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults, block_size=block_size, min_8bit_size=min_8bit_size,
                         nonfinite_grad=nonfinite_grad, chunk_size=chunk_size, compile=compile,
                         backend=backend)

    def _bnb_kind(self, group: dict[str, Any]) -> str:
        return "momentum"

    def _fused_math(self, group: dict[str, Any]) -> tuple[Any, FusedMath]:
        return ("sgd", bool(group["nesterov"])), sgd_math(bool(group["nesterov"]))

    def _fused_hyper(self, group: dict[str, Any], step: int, fresh: bool) -> list[float]:
        if fresh:
            return [0.0, 1.0, -group["lr"], group["momentum"]]
        return [group["momentum"], 1.0 - group["dampening"], -group["lr"], group["momentum"]]

    def _update_moments_(self, group: dict[str, Any], grads: list[torch.Tensor],
                         states: dict[str, list[torch.Tensor]], scales: dict[str, list[torch.Tensor]] | None,
                         fresh: bool) -> None:
        bufs = states["momentum_buffer"]
        if fresh:  # torch: the first buffer is the gradient, undampened (the stored buffer is zero here)
            torch._foreach_copy_(bufs, grads)
            return
        decay_add_(bufs, group["momentum"], scales["momentum_buffer"] if scales else None, grads,
                   1.0 - group["dampening"])

    def _apply_update_(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                       states: dict[str, list[torch.Tensor]], step: int, scratch: list[torch.Tensor] | None,
                       split: Callable[[list[torch.Tensor]], list[torch.Tensor]]) -> None:
        bufs = states["momentum_buffer"]
        if group["nesterov"]:
            torch._foreach_add_(grads, bufs, alpha=group["momentum"])  # grads are our own copies
            direction = grads
        else:
            direction = bufs
        torch._foreach_add_(params, split(direction), alpha=-group["lr"])

    def _modifies_grads(self, group: dict[str, Any]) -> bool:
        return bool(group["nesterov"]) or super()._modifies_grads(group)

    def _torch_state_entry(self, state: dict[str, Any], dense: dict[str, torch.Tensor]) -> dict[str, Any]:
        return dict(dense)  # torch.optim.SGD keeps only momentum_buffer
