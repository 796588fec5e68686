"""Adam and AdamW with block-wise 8-bit moments (signed book for exp_avg, unsigned for exp_avg_sq)."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch

from sv_toolkit.optim.base import MIN_8BIT_SIZE, Optimizer8bit, decay_
from sv_toolkit.optim.blockwise import DEFAULT_BLOCK_SIZE
from sv_toolkit.optim.chunking import DEFAULT_CHUNK_SIZE
from sv_toolkit.optim.compiled import FusedMath, adam_math


class Adam8bit(Optimizer8bit):
    """torch.optim.Adam with 8-bit states; ``weight_decay`` is L2 (added to the gradient) like torch's Adam.

    Extra keyword options: ``block_size`` (256), ``min_8bit_size`` (4096: smaller tensors keep fp32
    states), ``nonfinite_grad`` ("skip" or "raise", see :class:`Optimizer8bit`), ``chunk_size`` (elements
    per batched workspace), ``compile`` (torch.compile the 8-bit chunk update) and ``backend`` ("torch",
    or "bitsandbytes" for its fused CUDA kernels). Param groups accept ``block_size``, ``min_8bit_size``
    and ``fp32_states=True``; :meth:`keep_fp32_states` keeps single parameters' states in fp32.
    """

    STATE_SPECS = (("exp_avg", True), ("exp_avg_sq", False))
    TORCH_OPTIMIZER = torch.optim.Adam

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, decoupled_weight_decay: bool = False,
                 block_size: int = DEFAULT_BLOCK_SIZE, min_8bit_size: int = MIN_8BIT_SIZE,
                 nonfinite_grad: str = "skip", chunk_size: int = DEFAULT_CHUNK_SIZE, compile: bool = False,
                 backend: str = "torch") -> None:
        if not 0.0 <= float(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        betas = tuple(float(b) for b in betas)  # type: ignore[assignment]
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if amsgrad:
            raise ValueError(f"{type(self).__name__} does not support amsgrad=True; use torch.optim.Adam for it")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=False, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, block_size=block_size, min_8bit_size=min_8bit_size,
                         nonfinite_grad=nonfinite_grad, chunk_size=chunk_size, compile=compile,
                         backend=backend)

    def _decoupled_decay(self, group: dict[str, Any]) -> bool:
        return bool(group.get("decoupled_weight_decay", False))

    def _bnb_kind(self, group: dict[str, Any]) -> str:
        return "adamw" if self._decoupled_decay(group) else "adam"

    def _fused_math(self, group: dict[str, Any]) -> tuple[Any, FusedMath]:
        return "adam", adam_math

    def _fused_hyper(self, group: dict[str, Any], step: int, fresh: bool) -> list[float]:
        beta1, beta2 = group["betas"]
        return [beta1, beta2, group["eps"], -group["lr"] / (1.0 - beta1 ** step),
                1.0 / math.sqrt(1.0 - beta2 ** step)]

    def _update_moments_(self, group: dict[str, Any], grads: list[torch.Tensor],
                         states: dict[str, list[torch.Tensor]], scales: dict[str, list[torch.Tensor]] | None,
                         fresh: bool) -> None:
        beta1, beta2 = group["betas"]
        exp_avg, exp_avg_sq = states["exp_avg"], states["exp_avg_sq"]
        decay_(exp_avg, beta1, scales["exp_avg"] if scales else None)
        torch._foreach_add_(exp_avg, grads, alpha=1.0 - beta1)
        decay_(exp_avg_sq, beta2, scales["exp_avg_sq"] if scales else None)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2)

    def _apply_update_(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                       states: dict[str, list[torch.Tensor]], step: int, scratch: list[torch.Tensor] | None,
                       split: Callable[[list[torch.Tensor]], list[torch.Tensor]]) -> None:
        # p -= lr / bias1 * m / (sqrt(v) / sqrt(bias2) + eps), written with one pass fewer as
        # p -= (lr * sqrt(bias2) / bias1) * m / (sqrt(v) + eps * sqrt(bias2))
        beta1, beta2 = group["betas"]
        bias1 = 1.0 - beta1 ** step
        bias2_sqrt = math.sqrt(1.0 - beta2 ** step)
        if scratch is None:
            denom = torch._foreach_sqrt(states["exp_avg_sq"])
        else:
            denom = scratch
            for out, v in zip(denom, states["exp_avg_sq"]):
                torch.sqrt(v, out=out)
        torch._foreach_add_(denom, group["eps"] * bias2_sqrt)
        torch._foreach_addcdiv_(params, split(states["exp_avg"]), split(denom), -group["lr"] * bias2_sqrt / bias1)


class AdamW8bit(Adam8bit):
    """torch.optim.AdamW with 8-bit states: decoupled weight decay, ``p *= 1 - lr * weight_decay``."""

    TORCH_OPTIMIZER = torch.optim.AdamW

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach: bool | None = None, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                 min_8bit_size: int = MIN_8BIT_SIZE, nonfinite_grad: str = "skip",
                 chunk_size: int = DEFAULT_CHUNK_SIZE, compile: bool = False, backend: str = "torch") -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True, block_size=block_size,
                         min_8bit_size=min_8bit_size, nonfinite_grad=nonfinite_grad, chunk_size=chunk_size,
                         compile=compile, backend=backend)
