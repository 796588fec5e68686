"""Optional backend: bitsandbytes' fused CUDA kernels on our 8-bit state layout (``backend="bitsandbytes"``).

Our codes are indices into the same dynamic-tree books bitsandbytes uses (equal to within 1 fp32 ulp), so
its kernel can update our states in place; we pass our own books as its ``qmap`` so dequantisation is
identical. Semantics stay ours: maximize and L2 weight decay are applied to the gradient here, and
AdamW's decoupled decay has already been applied by the optimizer, so the kernel always gets
weight_decay=0 (bitsandbytes' Adam kernel would apply decay decoupled, turning Adam into AdamW). bitsandbytes' momentum kernel has neither dampening nor nesterov: those are refused.
Only for CUDA tensors and block size 256 (the kernel's block size).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

BNB_BLOCK_SIZE = 256


def check_bitsandbytes_backend(block_size: int) -> None:
    """Raise a clear error unless CUDA, bitsandbytes and block size 256 are all there."""
    if not torch.cuda.is_available():
        raise ValueError("backend='bitsandbytes' needs a CUDA device; use backend='torch' on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("backend='bitsandbytes' needs the bitsandbytes package (pip install bitsandbytes)")
    if block_size != BNB_BLOCK_SIZE:
        raise ValueError(f"backend='bitsandbytes' needs block_size={BNB_BLOCK_SIZE}, got {block_size}")


def bnb_update_(kind: str, group: dict[str, Any], p: torch.Tensor, grad: torch.Tensor,
                state: dict[str, Any], names: tuple[str, ...], books: list[torch.Tensor], step: int) -> None:
    """One bitsandbytes 8-bit block-wise update of parameter ``p`` (kind: "adam", "adamw" or "momentum")."""
    import bitsandbytes.functional as bnbf

    g = grad.contiguous()
    if group.get("maximize", False):
        g = -g
    if group["weight_decay"] != 0 and kind != "adamw":
        g = g + group["weight_decay"] * p
    codes = [state[f"{n}_codes"] for n in names]
    absmax = [state[f"{n}_absmax"] for n in names]
    if kind == "momentum":
        if group["dampening"] != 0 or group["nesterov"]:
            raise ValueError("backend='bitsandbytes' supports neither dampening nor nesterov for SGD8bit")
        beta1, beta2, eps = group["momentum"], 0.0, 0.0
    else:
        (beta1, beta2), eps = group["betas"], group["eps"]
    bnbf.optimizer_update_8bit_blockwise(
        "momentum" if kind == "momentum" else "adam", g, p, codes[0], codes[1] if len(codes) > 1 else None,
        beta1, beta2, 0.0, 0.0, eps, step, group["lr"], books[0], books[1] if len(books) > 1 else None,
        absmax[0], absmax[1] if len(absmax) > 1 else None, weight_decay=0.0)
