"""Vectorised block-wise quantisation to and from the dynamic-tree code books.

A state tensor is cut into blocks of ``block_size`` elements (the last one may be ragged); each block keeps
one fp32 absmax and its values are divided by it and rounded to the nearest code of the book (a value
exactly half-way between two codes goes to the lower one).

Both directions avoid a search over the code book:

* encode: the value's fp32 bits, complemented when negative, form a "key" that grows with the value. The
  key's top 16 bits pick a bucket of a 32,768-entry int32 table; a bucket (a narrow range of floats) holds
  at most one decision threshold, so the nearest code is the bucket's lowest code ``C`` plus one when the
  key passes the threshold. The entry ``E`` folds both into one addition: ``key + E`` equals
  ``C * 2**16 + r`` with ``r`` in [0, 2**16) below the threshold and in [2**16, 2**17) above it, so the
  code is ``(key + E) >> 16``: two shifts, one gather and one add per element (two more ops for the sign
  of the signed book), exact nearest-code rounding. (A uint8 view of the sum's byte 2 would save the
  last shift, but copying a strided byte view costs more than shift + contiguous narrowing copy.)
* decode: the code indexes the 256-value book directly (one gather from a 1 KB table).
"""

from __future__ import annotations

import functools
import torch

from sv_toolkit.optim.codebook import code_midpoints, dynamic_codebook, zero_code

DEFAULT_BLOCK_SIZE = 256
_TINY = torch.finfo(torch.float32).tiny  # absmax floor: an all-zero block stores this, never 0
_HUGE = torch.finfo(torch.float32).max   # absmax ceiling: an overflowed state saturates instead of 0/0 = NaN
_NEGATIVE_KEYS = 1 << 30  # signed book: keys at or above this are negative values (|value| <= 1 always)


def _round_down_f32(values: torch.Tensor) -> torch.Tensor:
    """Largest fp32 not above each float64 value."""
    f32 = values.to(torch.float32)
    above = f32.to(torch.float64) > values
    return torch.where(above, torch.nextafter(f32, torch.full_like(f32, -float("inf"))), f32)


def _key_of_bits(bits: torch.Tensor) -> torch.Tensor:
    """The ordering key of int32 float bits: unchanged when non-negative, complemented when negative."""
    return torch.where(bits < 0, ~bits, bits)


@functools.lru_cache(maxsize=4)
def _encode_table_cpu(signed: bool) -> torch.Tensor:
    """The 32,768 int32 entries ``E[t]``, t = key >> 16, such that ``(key + E[t]) >> 16`` is the code.

    Signed book: key = bits ^ (bits >> 31); keys of values in [-1, 1] are below 2**30 when the value is
    non-negative and at or above it when negative (-0.0 included). Unsigned book: key = bits, every key a
    non-negative value (``+inf`` saturates to the top code). Within a bucket the low 16 bits of the key grow
    with the value; the nearest code is ``C + (low >= K)``, ``C`` being the code of the bucket's lowest value
    and ``K`` (1..65536, 65536 when no threshold falls inside) the first ``low`` above the threshold, so
    ``E = (C + 1) * 2**16 - K - t * 2**16`` makes ``key + E = low + (C + 1) * 2**16 - K``.
    """
    book = dynamic_codebook(signed).to(torch.float64)
    mids = code_midpoints(signed)
    t = torch.arange(32768, dtype=torch.int64)
    first_key = t << 16

    def value_of(key: torch.Tensor) -> torch.Tensor:
        negative = key >= _NEGATIVE_KEYS if signed else torch.zeros_like(key, dtype=torch.bool)
        bits = torch.where(negative, ~key, key).to(torch.int32)
        vals = bits.view(torch.float32).to(torch.float64)
        return torch.nan_to_num(vals, nan=0.0).clamp(float(book[0]), float(book[-1]))

    # nearest code = number of thresholds strictly below the value (a tie goes to the lower code)
    c_lo = torch.searchsorted(mids, value_of(first_key), side="left")
    c_hi = torch.searchsorted(mids, value_of(first_key + 0xFFFF), side="left")
    if int((c_hi - c_lo).max()) > 1:
        raise AssertionError("an encode bucket spans two thresholds; the 16-bit table is too coarse")
    split = c_hi > c_lo
    thr = _round_down_f32(mids[c_lo.clamp(max=mids.numel() - 1)])  # x > mid  <=>  x > thr for fp32 x
    first_upper = _key_of_bits(thr.to(torch.float32).view(torch.int32).to(torch.int64)) + 1 - first_key
    if not bool(((first_upper >= 1) & (first_upper <= 0xFFFF) | ~split).all()):
        raise AssertionError("encode threshold fell outside its bucket")
    first_upper = torch.where(split, first_upper, torch.full_like(first_upper, 1 << 16))
    entry = ((c_lo + 1) << 16) - first_upper - first_key
    return entry.to(torch.int32)


class BlockwiseCodec:
    """Encode / decode kernels for one code book on one device, working in caller-owned buffers."""

    def __init__(self, signed: bool, device: torch.device | str = "cpu") -> None:
        self.signed = signed
        self.device = torch.device(device)
        self.zero_code = zero_code(signed)
        self.book = dynamic_codebook(signed, self.device)
        self.encode_table = _encode_table_cpu(signed).to(self.device)

    def block_absmax_(self, x: torch.Tensor, absmax: torch.Tensor, block_size: int,
                      scratch: torch.Tensor) -> None:
        """Per-block max |x| of ``x`` (n,) into ``absmax`` (n/bs,), clamped to [tiny, max] of fp32.

        ``scratch`` is an fp32 buffer of at least n/bs elements (signed book only).
        """
        blocks = x.view(-1, block_size)  # (nb, bs)
        torch.amax(blocks, dim=1, out=absmax)
        if self.signed:
            low = scratch[: absmax.numel()]
            torch.amin(blocks, dim=1, out=low)
            torch.maximum(absmax, low.neg_(), out=absmax)
        absmax.clamp_(min=_TINY, max=_HUGE)

    def round_to_codes_(self, y: torch.Tensor, idx: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """Nearest code of each normalised fp32 value of ``y`` (n,), as int32 values (n,) in ``total``.

        ``idx`` and ``total`` are int32 buffers of >= n elements; ``y`` is overwritten (it becomes the key).
        """
        n = y.numel()
        key = y.view(torch.int32)
        idx, total = idx[:n], total[:n]
        if self.signed:
            torch.bitwise_right_shift(key, 31, out=idx)
            key.bitwise_xor_(idx)  # a negative value's bits complemented
        torch.bitwise_right_shift(key, 16, out=idx)
        torch.index_select(self.encode_table, 0, idx, out=total)
        total.add_(key)
        return total.bitwise_right_shift_(16)

    def encode_(self, x: torch.Tensor, absmax: torch.Tensor, block_size: int,
                scratch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Quantise ``x`` (n,) fp32, n a multiple of block_size: writes ``absmax`` (n/bs,) and returns the codes
        as int32 values (n,) in ``scratch[1]`` (valid until that buffer is reused).

        ``scratch``: two int32 buffers of >= n elements and an fp32 buffer of >= n/bs; ``x`` is overwritten.
        """
        self.block_absmax_(x, absmax, block_size, scratch[2])
        x.view(-1, block_size).div_(absmax[:, None])
        return self.round_to_codes_(x, scratch[0], scratch[1])

    def decode_(self, codes: torch.Tensor, out: torch.Tensor) -> None:
        """Normalised values (book entries) of int32 ``codes`` (n,) into ``out`` (n,) fp32."""
        torch.index_select(self.book, 0, codes, out=out)


@functools.lru_cache(maxsize=16)
def get_codec(signed: bool, device: torch.device) -> BlockwiseCodec:
    """Cached codec for a code book on a device."""
    return BlockwiseCodec(signed, device)


def check_block_size(block_size: int) -> None:
    """Raise unless ``block_size`` is an even integer >= 2."""
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 2 or block_size % 2:
        raise ValueError(f"block_size must be an even integer >= 2, got {block_size!r}")


def num_blocks(numel: int, block_size: int) -> int:
    """Number of blocks (the last one possibly ragged) for a tensor of ``numel`` elements."""
    return -(-numel // block_size)


def quantize_blockwise(x: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE,
                       signed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` (any shape) block-wise: returns (codes (numel,) uint8, absmax (blocks,) fp32)."""
    check_block_size(block_size)
    flat = x.detach().reshape(-1).to(torch.float32)
    if not signed and flat.numel() and bool((flat < 0).any()):
        raise ValueError(f"unsigned quantisation got a negative value ({float(flat.min())}); use signed=True")
    if flat.numel() and not bool(torch.isfinite(flat).all()):
        raise ValueError("quantize_blockwise got a non-finite value; 8-bit states must be finite")
    n, nb = flat.numel(), num_blocks(flat.numel(), block_size)
    padded = torch.zeros(nb * block_size, dtype=torch.float32, device=x.device)
    padded[:n] = flat
    if not signed:
        padded.add_(0.0)  # -0.0 -> +0.0: the unsigned key must be non-negative
    absmax = torch.empty(nb, dtype=torch.float32, device=x.device)
    scratch = (torch.empty_like(padded, dtype=torch.int32), torch.empty_like(padded, dtype=torch.int32),
               torch.empty(nb, dtype=torch.float32, device=x.device))
    codes = get_codec(signed, x.device).encode_(padded, absmax, block_size, scratch)
    return codes[:n].to(torch.uint8), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE,
                         signed: bool = True, shape: torch.Size | tuple[int, ...] | None = None) -> torch.Tensor:
    """Dequantise ``codes`` (numel,) uint8 with ``absmax`` (blocks,) fp32 to fp32, reshaped to ``shape``."""
    check_block_size(block_size)
    if codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8, got {codes.dtype}")
    n, nb = codes.numel(), num_blocks(codes.numel(), block_size)
    if absmax.numel() != nb:
        raise ValueError(f"{n} codes in blocks of {block_size} need {nb} absmax values, got {absmax.numel()}")
    padded = torch.full((nb * block_size,), zero_code(signed), dtype=torch.int32, device=codes.device)
    padded[:n] = codes.reshape(-1)
    out = torch.empty(nb * block_size, dtype=torch.float32, device=codes.device)
    get_codec(signed, codes.device).decode_(padded, out)
    out.view(nb, block_size).mul_(absmax.to(device=out.device, dtype=torch.float32)[:, None])
    return out[:n].reshape(shape if shape is not None else (n,))


def nearest_code(values: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """Nearest-code index (uint8) of already-normalised fp32 ``values`` in [-1, 1] ([0, 1] unsigned)."""
    flat = values.detach().reshape(-1).to(torch.float32)
    low = -1.0 if signed else 0.0
    if flat.numel() and not bool(((flat >= low) & (flat <= 1.0)).all()):
        raise ValueError(f"nearest_code needs values in [{low:g}, 1], got range "
                         f"[{float(flat.min())}, {float(flat.max())}]")
    x = flat.clone()
    if not signed:
        x.add_(0.0)  # -0.0 -> +0.0
    idx, total = (torch.empty(x.numel(), dtype=torch.int32, device=values.device) for _ in range(2))
    return get_codec(signed, values.device).round_to_codes_(x, idx, total).to(torch.uint8).reshape(values.shape)
