"""Naive references for the quantisation tests (kept out of the library on purpose)."""
from __future__ import annotations

import torch

from sv_toolkit.optim.codebook import dynamic_codebook


def nearest_code_reference(values: torch.Tensor, signed: bool) -> torch.Tensor:
    """Nearest-code index by brute force over all 256 codes (ties go to the lower index). Slow."""
    book = dynamic_codebook(signed).to(device=values.device, dtype=torch.float64)
    flat = values.detach().reshape(-1).to(torch.float64)
    out = torch.empty(flat.numel(), dtype=torch.uint8, device=values.device)
    for start in range(0, flat.numel(), 1 << 16):
        part = flat[start:start + (1 << 16)]
        # |x - c| is exact in float64 for the two codes around x (fp32 operands of close magnitude),
        # so argmin (first index on ties) is the exact nearest code with ties to the lower index
        out[start:start + part.numel()] = (part[:, None] - book[None, :]).abs().argmin(dim=1).to(torch.uint8)
    return out.reshape(values.shape)
