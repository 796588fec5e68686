"""Dynamic-tree code books for 8-bit block-wise quantisation.

Dettmers et al., "8-bit Optimizers via Block-wise Quantization" (see ../shared/REFERENCE.md section 6).
A dynamic-tree code spends its bits on a sign (signed book only), a decade exponent 10^-k for
k = 0..6 and a linear fraction inside the decade: decade k holds 2^(6-k) fractions in the signed
book and 2^(7-k) in the unsigned one, placed at the centres of equal bins over [0.1, 1]. Adding 0 and
1.0 gives exactly 256 values in [-1, 1] (signed) or [0, 1] (unsigned).

Codes are stored as the value's index in the sorted book, so an 8-bit state is a uint8 tensor and the
book maps it back to a float.
"""

from __future__ import annotations

import functools

import torch

NUM_CODES = 256
NUM_DECADES = 7  # 1e-6 .. 1e0


def _positive_values(signed: bool) -> list[float]:
    """Positive non-unit values of the book, in float64, smallest decade first."""
    values: list[float] = []
    for decade in range(NUM_DECADES):
        count = 2 ** decade if signed else 2 ** (decade + 1)
        scale = 10.0 ** (decade - (NUM_DECADES - 1))
        for j in range(count):
            values.append(scale * (0.1 + 0.9 * (j + 0.5) / count))
    return values


@functools.lru_cache(maxsize=2)
def _codebook64(signed: bool) -> torch.Tensor:
    positive = _positive_values(signed)
    values = positive + [0.0, 1.0]
    if signed:
        values += [-v for v in positive]
    book = torch.tensor(sorted(values), dtype=torch.float64)
    # Round to fp32 once: the fp32 book is the definition every kernel and test uses.
    book = book.to(torch.float32).to(torch.float64)
    if book.numel() != NUM_CODES or torch.unique(book).numel() != NUM_CODES:
        raise AssertionError(f"dynamic code book (signed={signed}) has {book.numel()} values, not 256 unique")
    return book


def dynamic_codebook(signed: bool, device: torch.device | str | None = None) -> torch.Tensor:
    """The 256 sorted fp32 values of the signed or unsigned dynamic-tree code book. # (256,)"""
    return _codebook64(signed).to(dtype=torch.float32, device=device)


def zero_code(signed: bool) -> int:
    """Index of 0.0 in the sorted book (the code of an all-zero state)."""
    return int(torch.nonzero(_codebook64(signed) == 0.0)[0, 0])


def code_midpoints(signed: bool) -> torch.Tensor:
    """The 255 float64 midpoints between neighbouring codes: the nearest-code decision thresholds."""
    book = _codebook64(signed)
    return (book[:-1] + book[1:]) / 2.0


def largest_half_gap(signed: bool) -> float:
    """Largest distance from a value in the book's range to its nearest code (half the widest gap)."""
    book = _codebook64(signed)
    return float((book[1:] - book[:-1]).max() / 2.0)
