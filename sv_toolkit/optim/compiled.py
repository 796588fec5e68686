"""Optional ``torch.compile``d 8-bit chunk update: decode -> fp32 math -> encode fused into few kernels.

The eager step (the default) runs a few dozen vectorised torch ops per chunk. With ``compile=True`` the
same arithmetic, written functionally here, is compiled once per (optimizer class, block size, chunk
size, device): Inductor fuses the table look-ups, the moment update and the re-quantisation. The integer
encode is the same as :meth:`BlockwiseCodec.round_to_codes_`; the fp32 math may differ from eager in the
last bit (fused multiply-adds), so codes can differ at exact decision ties only.
"""

from __future__ import annotations

from typing import Callable

import torch

from sv_toolkit.optim.blockwise import _TINY

FusedMath = Callable[[torch.Tensor, list[torch.Tensor], torch.Tensor], tuple[list[torch.Tensor], torch.Tensor]]


def decode(codes: torch.Tensor, absmax: torch.Tensor, book: torch.Tensor, block_size: int) -> torch.Tensor:
    """Functional dequantisation: code book look-up times block absmax. # (n,)"""
    return (book[codes.long()].view(-1, block_size) * absmax[:, None]).view(-1)


def encode(x: torch.Tensor, table: torch.Tensor, block_size: int,
           signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Functional block-wise quantisation with the 16-bit bucket table (see blockwise.py)."""
    blocks = x.view(-1, block_size)
    absmax = blocks.abs().amax(dim=1).clamp_min(_TINY)
    bits = (blocks / absmax[:, None]).view(-1).view(torch.int32)
    if signed:
        idx = (bits >> 16) & 0xFFFF
        low = (bits ^ (bits >> 31)) & 0xFFFF
    else:
        idx = bits >> 16
        low = bits & 0xFFFF
    codes = ((table[idx.long()] + low) >> 17).to(torch.uint8)
    return codes, absmax


def make_chunk_kernel(math: FusedMath, signed: tuple[bool, ...], block_size: int) -> Callable[..., tuple]:
    """Compiled ``(g, codes, absmax, books, tables, hyper) -> (direction, new codes, new absmax)``."""

    def kernel(g: torch.Tensor, codes: list[torch.Tensor], absmax: list[torch.Tensor],
               books: list[torch.Tensor], tables: list[torch.Tensor], hyper: torch.Tensor):
        states = [decode(c, a, b, block_size) for c, a, b in zip(codes, absmax, books)]
        new_states, direction = math(g, states, hyper)
        encoded = [encode(s, t, block_size, sg) for s, t, sg in zip(new_states, tables, signed)]
        return direction, [c for c, _ in encoded], [a for _, a in encoded]

    return torch.compile(kernel, dynamic=False, fullgraph=True)


def adam_math(g: torch.Tensor, states: list[torch.Tensor],
              hyper: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """hyper = [beta1, beta2, eps, -lr / bias1, 1 / sqrt(bias2)]."""
    m, v = states
    m = m + (1.0 - hyper[0]) * (g - m)
    v = hyper[1] * v + (1.0 - hyper[1]) * g * g
    direction = hyper[3] * m / (v.sqrt() * hyper[4] + hyper[2])
    return [m, v], direction


def sgd_math(nesterov: bool) -> FusedMath:
    """hyper = [momentum on the old buffer (0 on the first step), gradient weight, -lr, momentum]."""

    def math(g: torch.Tensor, states: list[torch.Tensor],
             hyper: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        buf = hyper[0] * states[0] + hyper[1] * g
        direction = hyper[2] * (g + hyper[3] * buf if nesterov else buf)
        return [buf], direction

    return math
