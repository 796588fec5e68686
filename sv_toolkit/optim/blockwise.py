"""Vectorised block-wise quantisation to and from the dynamic-tree code books.

A state tensor is cut into blocks of ``block_size`` elements (the last one may be ragged); each block keeps
one fp32 absmax and its values are divided by it and rounded to the nearest code of the book.

Both directions avoid a search over the code book:

* encode: the top 16 bits of the normalised fp32 value index a 65,536-entry int32 table. Each bucket (a
  narrow range of floats) contains at most one decision threshold, so the code is the bucket's lower
  code plus one when the value's low 16 bits pass the threshold; the table entry folds both into
  ``(low + entry) >> 17``: exact nearest-code rounding with one gather and a few int32 ops, no search.
* decode: two uint8 codes read as one 16-bit index pick a pre-built pair of fp32 values from a 65,536-entry
  table, then each block is multiplied by its absmax: one gather per two elements.
"""

from __future__ import annotations

import functools

import torch

from sv_toolkit.optim.codebook import code_midpoints, dynamic_codebook, zero_code

DEFAULT_BLOCK_SIZE = 256
_TINY = torch.finfo(torch.float32).tiny  # absmax floor: an all-zero block stores this, never 0


def _round_down_f32(values: torch.Tensor) -> torch.Tensor:
    """Largest fp32 not above each float64 value."""
    f32 = values.to(torch.float32)
    above = f32.to(torch.float64) > values
    return torch.where(above, torch.nextafter(f32, torch.full_like(f32, -float("inf"))), f32)


@functools.lru_cache(maxsize=8)
def _encode_table_cpu(signed: bool) -> torch.Tensor:
    """One int32 entry per 16-bit bucket of fp32 bit patterns (65,536 signed, 32,768 unsigned).

    The key of a value is its int32 bits, complemented when negative (``bits ^ (bits >> 31)``): within a
    bucket (values sharing their top 16 bits) the key's low 16 bits ``low`` grow with the value. A bucket
    holds at most one decision threshold, so the nearest code is ``C + (low >= K)``, ``C`` being the code of
    the bucket's lowest value and ``K`` (1..65536) the first ``low`` above the threshold. The entry
    ``E = (C + 1) * 2**17 - K`` turns that into ``(low + E) >> 17``: the sum falls below the next multiple
    of 2**17 exactly when ``low < K``.
    """
    book = dynamic_codebook(signed).to(torch.float64)
    mids = code_midpoints(signed)
    top = torch.arange(65536 if signed else 32768, dtype=torch.int64)
    negative = top >= 32768
    first_bits = (top << 16) - (negative.to(torch.int64) << 32)  # int32 values of the bucket's bit range
    last_bits = first_bits + 0xFFFF

    def value_of(bits: torch.Tensor) -> torch.Tensor:
        vals = bits.to(torch.int32).view(torch.float32).to(torch.float64)
        vals = torch.nan_to_num(vals, nan=0.0, posinf=1.0, neginf=-1.0)
        return vals.clamp(float(book[0]), float(book[-1]))

    def key_of(bits: torch.Tensor) -> torch.Tensor:
        return torch.where(bits < 0, -bits - 1, bits)

    lowest_bits = torch.where(negative, last_bits, first_bits)
    highest_bits = torch.where(negative, first_bits, last_bits)
    # nearest code = number of thresholds strictly below the value (a tie goes to the lower code)
    c_lo = torch.searchsorted(mids, value_of(lowest_bits), side="left")
    c_hi = torch.searchsorted(mids, value_of(highest_bits), side="left")
    if int((c_hi - c_lo).max()) > 1:
        raise AssertionError("an encode bucket spans two thresholds; the 16-bit table is too coarse")
    split = c_hi > c_lo
    thr = _round_down_f32(mids[c_lo.clamp(max=mids.numel() - 1)])  # x > mid  <=>  x > thr for fp32 x
    first_upper = key_of(thr.view(torch.int32).to(torch.int64)) + 1 - key_of(lowest_bits)
    if not bool(((first_upper >= 1) & (first_upper <= 0xFFFF) | ~split).all()):
        raise AssertionError("encode threshold fell outside its bucket")
    first_upper = torch.where(split, first_upper, torch.full_like(first_upper, 1 << 16))  # never reached
    return (((c_lo + 1) << 17) - first_upper).to(torch.int32)


@functools.lru_cache(maxsize=8)
def _decode_table_cpu(signed: bool) -> torch.Tensor:
    """For every 16-bit pattern of two stored codes, their two fp32 values packed as one int64."""
    book = dynamic_codebook(signed)
    byte_pairs = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.uint8).reshape(-1, 2)
    values = book[byte_pairs.long()].contiguous()  # (65536, 2) in memory order of the two codes
    return values.view(torch.int64).reshape(-1)


class BlockwiseCodec:
    """Encode / decode kernels for one code book on one device, working in caller-owned buffers."""

    def __init__(self, signed: bool, device: torch.device | str = "cpu") -> None:
        self.signed = signed
        self.device = torch.device(device)
        self.zero_code = zero_code(signed)
        self.book = dynamic_codebook(signed, self.device)
        self.encode_table = _encode_table_cpu(signed).to(self.device)
        self.decode_table = _decode_table_cpu(signed).to(self.device)

    def encode_(self, x: torch.Tensor, codes: torch.Tensor, absmax: torch.Tensor,
                block_size: int, scratch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Quantise ``x`` (n,) fp32, n a multiple of block_size, into ``codes`` (n,) and ``absmax`` (n/bs,).

        ``x`` is overwritten (it is divided by its block absmax). ``scratch`` is two int32 (n,) buffers.
        """
        n = x.numel()
        blocks = x.view(n // block_size, block_size)
        if self.signed:
            torch.amax(blocks, dim=1, out=absmax)
            absmax.copy_(torch.maximum(absmax, torch.amin(blocks, dim=1).neg_()))
        else:
            torch.amax(blocks, dim=1, out=absmax)
        absmax.clamp_(min=_TINY)
        blocks.div_(absmax[:, None])
        self.round_to_codes_(x, codes, scratch)

    def round_to_codes_(self, y: torch.Tensor, codes: torch.Tensor,
                        scratch: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Nearest code of each normalised fp32 value of ``y`` (n,), written into ``codes`` (n,) uint8.

        ``y`` is overwritten. ``scratch``: two int32 buffers of at least n elements.
        """
        n = y.numel()
        bits = y.view(torch.int32)
        low, idx = scratch[0][:n], scratch[1][:n]
        torch.bitwise_right_shift(bits, 16, out=idx)
        if self.signed:
            idx.bitwise_and_(0xFFFF)
            torch.bitwise_right_shift(bits, 31, out=low)
            low.bitwise_xor_(bits)  # the key: bits of a negative value complemented
            low.bitwise_and_(0xFFFF)
        else:
            torch.bitwise_and(bits, 0xFFFF, out=low)  # non-negative values: the bits are the key
        entry = bits  # ``y`` is no longer needed: reuse its memory
        torch.index_select(self.encode_table, 0, idx, out=entry)
        entry.add_(low)
        entry.bitwise_right_shift_(17)
        codes.copy_(entry)

    def decode_(self, codes: torch.Tensor, absmax: torch.Tensor, out: torch.Tensor, block_size: int,
                scratch: torch.Tensor) -> None:
        """Dequantise ``codes`` (n,) uint8 with ``absmax`` (n/bs,) into ``out`` (n,) fp32; n even.

        ``scratch`` is an int32 buffer of at least n/2 elements.
        """
        n = codes.numel()
        idx = scratch[: n // 2]
        idx.copy_(codes.view(torch.int16))
        idx.bitwise_and_(0xFFFF)
        torch.index_select(self.decode_table, 0, idx, out=out.view(torch.int64))
        out.view(n // block_size, block_size).mul_(absmax[:, None])


@functools.lru_cache(maxsize=16)
def get_codec(signed: bool, device: torch.device) -> BlockwiseCodec:
    """Cached codec for a code book on a device."""
    return BlockwiseCodec(signed, device)


def _check_block_size(block_size: int) -> None:
    if not isinstance(block_size, int) or block_size < 2 or block_size % 2:
        raise ValueError(f"block_size must be an even integer >= 2, got {block_size!r}")


def num_blocks(numel: int, block_size: int) -> int:
    """Number of blocks (the last one possibly ragged) for a tensor of ``numel`` elements."""
    return -(-numel // block_size)


def quantize_blockwise(x: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE,
                       signed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise ``x`` (any shape) block-wise: returns (codes (numel,) uint8, absmax (blocks,) fp32)."""
    _check_block_size(block_size)
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
    codes = torch.empty(nb * block_size, dtype=torch.uint8, device=x.device)
    absmax = torch.empty(nb, dtype=torch.float32, device=x.device)
    scratch = (torch.empty_like(padded, dtype=torch.int32), torch.empty_like(padded, dtype=torch.int32))
    get_codec(signed, x.device).encode_(padded, codes, absmax, block_size, scratch)
    return codes[:n].clone(), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE,
                         signed: bool = True, shape: torch.Size | tuple[int, ...] | None = None) -> torch.Tensor:
    """Dequantise ``codes`` (numel,) uint8 with ``absmax`` (blocks,) fp32 to fp32, reshaped to ``shape``."""
    _check_block_size(block_size)
    if codes.dtype != torch.uint8:
        raise ValueError(f"codes must be uint8, got {codes.dtype}")
    n, nb = codes.numel(), num_blocks(codes.numel(), block_size)
    if absmax.numel() != nb:
        raise ValueError(f"{n} codes in blocks of {block_size} need {nb} absmax values, got {absmax.numel()}")
    padded = torch.full((nb * block_size,), zero_code(signed), dtype=torch.uint8, device=codes.device)
    padded[:n] = codes.reshape(-1)
    out = torch.empty(nb * block_size, dtype=torch.float32, device=codes.device)
    scratch = torch.empty(nb * block_size // 2, dtype=torch.int32, device=codes.device)
    get_codec(signed, codes.device).decode_(padded, absmax.to(torch.float32), out, block_size, scratch)
    return out[:n].reshape(shape if shape is not None else (n,))


def nearest_code(values: torch.Tensor, signed: bool = True) -> torch.Tensor:
    """Nearest-code index (uint8) of already-normalised fp32 ``values`` in [-1, 1] ([0, 1] unsigned)."""
    flat = values.detach().reshape(-1).to(torch.float32)
    n = flat.numel()
    size = max(n, 1)
    x = torch.zeros(size, dtype=torch.float32, device=values.device)
    x[:n] = flat
    if not signed:
        x.add_(0.0)  # -0.0 -> +0.0
    codes = torch.empty(size, dtype=torch.uint8, device=values.device)
    scratch = (torch.empty(size, dtype=torch.int32, device=values.device),
               torch.empty(size, dtype=torch.int32, device=values.device))
    if not bool(((x >= (-1.0 if signed else 0.0)) & (x <= 1.0)).all()):
        raise ValueError(f"nearest_code needs values in [{-1 if signed else 0}, 1], got range "
                         f"[{float(x.min())}, {float(x.max())}]")
    get_codec(signed, values.device).round_to_codes_(x, codes, scratch)
    return codes[:n].reshape(values.shape)
