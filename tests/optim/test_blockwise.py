"""Block-wise quantisation: exact nearest-code rounding, round-trip bounds, ragged sizes."""
from __future__ import annotations

import pytest
import torch

from sv_toolkit.optim.blockwise import dequantize_blockwise, nearest_code, quantize_blockwise
from sv_toolkit.optim.codebook import code_midpoints, dynamic_codebook, largest_half_gap

from quantisation_reference import nearest_code_reference


def _hard_values(signed: bool, n: int = 60_000) -> torch.Tensor:
    """Values in [-1, 1] ([0, 1] unsigned) where a nearest-code rounding can go wrong.

    Uniform values; values spread over 9 decades; random fp32 bit patterns (every bucket of the encode
    table, subnormals included); the codes; every midpoint between neighbouring codes, its fp32 rounding
    down and up and the fp32 neighbours of those; decade boundaries; zeros (-0.0 too) and the absmax
    edges +-1 and their neighbours; and, for the signed book, all of these negated.
    """
    g = torch.Generator().manual_seed(0)
    uniform = torch.rand(n, generator=g)
    spread = torch.rand(n, generator=g) * torch.pow(10.0, -9.0 * torch.rand(n, generator=g))
    bits = torch.randint(0, 0x3F800001, (n,), generator=g, dtype=torch.int64).to(torch.int32).view(torch.float32)
    book = dynamic_codebook(signed)
    mids64 = code_midpoints(signed)
    mids = mids64.float()
    down = torch.where(mids.double() > mids64, torch.nextafter(mids, torch.zeros_like(mids)), mids)
    up = torch.nextafter(down, torch.ones_like(down))
    near = torch.cat([mids, down, up, torch.nextafter(up, torch.ones_like(up)),
                      torch.nextafter(down, torch.zeros_like(down))])
    decades = torch.tensor([10.0 ** -k for k in range(8)])
    decades = torch.cat([decades, torch.nextafter(decades, torch.zeros(8)), torch.nextafter(decades, torch.ones(8))])
    edges = torch.tensor([0.0, -0.0, 1.0, float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))),
                          1e-45, 1e-40, 1e-38, 1.2e-38])
    values = torch.cat([uniform, spread, bits, book.abs(), near, decades, edges]).clamp(max=1.0)
    if signed:
        values = torch.cat([values, -values])
    return values


@pytest.mark.parametrize("signed", [True, False])
def test_quantiser_equals_brute_force_nearest_code(signed: bool) -> None:
    values = _hard_values(signed)
    assert torch.equal(nearest_code(values, signed), nearest_code_reference(values, signed))


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("size", [1, 255, 256, 257, 4095, 4096, 4097])
def test_round_trip_error_within_half_gap(signed: bool, size: int) -> None:
    g = torch.Generator().manual_seed(size)
    x = torch.randn(size, generator=g) * torch.exp(torch.randn(size, generator=g) * 3)
    if not signed:
        x = x.abs()
    codes, absmax = quantize_blockwise(x, 256, signed)
    assert codes.dtype == torch.uint8 and codes.shape == (size,)
    assert absmax.dtype == torch.float32 and absmax.shape == (-(-size // 256),)
    y = dequantize_blockwise(codes, absmax, 256, signed)
    per_element_absmax = absmax.repeat_interleave(256)[:size]
    bound = per_element_absmax * largest_half_gap(signed) * (1 + 1e-5) + 1e-30
    assert bool(((y - x).abs() <= bound).all())
    # each block's largest magnitude is represented (up to the asymmetric -1 of the signed book)
    blocks_max = torch.stack([x[i:i + 256].abs().max() for i in range(0, size, 256)])
    assert torch.equal(absmax, blocks_max)
    # the codes are the nearest codes of the normalised values
    normalised = x / per_element_absmax
    assert torch.equal(codes, nearest_code_reference(normalised, signed))


def test_other_block_sizes_and_zero_blocks() -> None:
    x = torch.zeros(1000)
    x[700:] = torch.linspace(-3, 3, 300)
    for bs in (2, 64, 2048):
        codes, absmax = quantize_blockwise(x, bs, True)
        y = dequantize_blockwise(codes, absmax, bs, True)
        assert bool((y[:700] == 0).all()), "an all-zero block decodes to exact zeros"
        assert torch.allclose(y, x, atol=3 * largest_half_gap(True) * 1.0001)
        assert bool((absmax > 0).all()), "absmax is floored, never 0 (no 0/0)"


def test_input_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="negative"):
        quantize_blockwise(torch.tensor([1.0, -1.0]), 256, signed=False)
    with pytest.raises(ValueError, match="non-finite"):
        quantize_blockwise(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="block_size"):
        quantize_blockwise(torch.ones(4), 3)
    with pytest.raises(ValueError, match="absmax"):
        dequantize_blockwise(torch.zeros(300, dtype=torch.uint8), torch.ones(1), 256)
