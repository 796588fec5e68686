"""Optional ``torch.compile``d 8-bit chunk update (``compile=True``).

The code-book look-ups of the decoder stay eager (``index_select``: Inductor's CPU code for indirect
loads measured 3-7x slower than it); everything after them is compiled once per (optimizer class, block
size, workspace size, device) into two functions that write only into the workspace's buffers:

* update: block scales times decoded values, the optimizer's fp32 math, new states and the update
  direction in one loop;
* quantise: new block absmax, normalisation and the key-bucket encode of blockwise.py.

Writing into the caller's buffers matters: a functional version that returned fresh multi-megabyte
tensors (or kept the new states in temporaries) paid page faults at every call and was slower than eager.
The encode is the integer one of :meth:`BlockwiseCodec.round_to_codes_` (the code is ``(key + E) >> 16``);
the fp32 math may differ from eager in the last bit (fused multiply-adds), so a code can differ where a
value lies within an ulp of a decision threshold.
"""

from __future__ import annotations

from typing import Callable

import torch

from sv_toolkit.optim.blockwise import _HUGE, _TINY

FusedMath = Callable[[torch.Tensor, list[torch.Tensor], torch.Tensor], tuple[list[torch.Tensor], torch.Tensor]]
ChunkKernel = Callable[..., None]


def block_absmax(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Per-block max |x|, clamped to [tiny, max] of fp32 as in :meth:`BlockwiseCodec.block_absmax_`."""
    return x.view(-1, block_size).abs().amax(dim=1).clamp(_TINY, _HUGE)


def encode(x: torch.Tensor, absmax: torch.Tensor, table: torch.Tensor, block_size: int,
           signed: bool) -> torch.Tensor:
    """Functional nearest-code rounding of ``x`` / block ``absmax`` with the key-bucket table (blockwise.py)."""
    key = (x.view(-1, block_size) / absmax[:, None]).view(-1).view(torch.int32)
    if signed:
        key = key ^ (key >> 31)
    return (key + table[(key >> 16).long()]) >> 16


def make_chunk_kernel(math: FusedMath, signed: tuple[bool, ...], block_size: int) -> ChunkKernel:
    """Compiled in-place ``(g, codes, absmax, values, direction, tables, hyper) -> None``.

    On entry, per state: ``values`` (fp32) hold the decoded, still normalised book values and ``absmax``
    the block scales; on return ``values`` hold the new states, ``codes`` (int32) and ``absmax`` their
    quantisation, and ``direction`` the parameter update.
    """

    def update(g: torch.Tensor, absmax: list[torch.Tensor], values: list[torch.Tensor], direction: torch.Tensor,
               hyper: torch.Tensor) -> None:
        states = [(x.view(-1, block_size) * a[:, None]).view(-1) for x, a in zip(values, absmax)]
        new_states, step = math(g, states, hyper)
        direction.copy_(step)
        for new, out in zip(new_states, values):
            out.copy_(new)

    def quantise(codes: list[torch.Tensor], absmax: list[torch.Tensor], values: list[torch.Tensor],
                 tables: list[torch.Tensor]) -> None:
        for c, a, x, table, sg in zip(codes, absmax, values, tables, signed):
            new_absmax = block_absmax(x, block_size)
            c.copy_(encode(x, new_absmax, table, block_size, sg))
            a.copy_(new_absmax)

    update_c = torch.compile(update, dynamic=False, fullgraph=True)
    quantise_c = torch.compile(quantise, dynamic=False, fullgraph=True)

    def kernel(g: torch.Tensor, codes: list[torch.Tensor], absmax: list[torch.Tensor],
               values: list[torch.Tensor], direction: torch.Tensor, tables: list[torch.Tensor],
               hyper: torch.Tensor) -> None:
        update_c(g, absmax, values, direction, hyper)
        quantise_c(codes, absmax, values, tables)

    return kernel


def adam_math(g: torch.Tensor, states: list[torch.Tensor],
              hyper: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """hyper = [beta1, beta2, eps, -lr / bias1, 1 / sqrt(bias2)]."""
    m, v = states
    m = hyper[0] * m + (1.0 - hyper[0]) * g
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
