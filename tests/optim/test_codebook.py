"""Golden values of the dynamic-tree code books."""
from __future__ import annotations

import hashlib

import pytest
import torch

from quantisation_reference import nearest_code_reference
from sv_toolkit.optim.codebook import code_midpoints, dynamic_codebook, largest_half_gap, zero_code

# sha256 of the 256 fp32 values (little-endian bytes), recorded when the books were first built.
# bitsandbytes 0.50.2's create_dynamic_map gives the same values to within 6e-8 (its fp32 linspace).
CHECKSUMS = {
    True: "035c4114538df2a03bbcb4d8a39b9325d26d84a00cf6cf29018d1a6608ab14c4",
    False: "02a9b523750e21348029626da435f2adadb851b687d86349cd20752f9255de26",
}


@pytest.mark.parametrize("signed", [True, False])
def test_book_shape_order_zero_and_max(signed: bool) -> None:
    book = dynamic_codebook(signed)
    assert book.dtype == torch.float32 and book.shape == (256,)
    assert bool((book[1:] > book[:-1]).all()), "sorted and unique"
    assert int((book == 0).sum()) == 1
    assert float(book.max()) == 1.0
    assert float(book[zero_code(signed)]) == 0.0
    assert hashlib.sha256(book.numpy().tobytes()).hexdigest() == CHECKSUMS[signed]


def test_signed_book_structure() -> None:
    book = dynamic_codebook(True).double()
    assert zero_code(True) == 127
    assert book[0] == pytest.approx(-(0.1 + 0.9 * 63.5 / 64), abs=1e-7)  # no -1.0: 1.0 takes the spare code
    positive = book[128:255]  # 127 values below 1.0: decades 1e-6 .. 1e0 with 1, 2, 4, ..., 64 fractions
    assert torch.allclose(-book[:127].flip(0), positive)
    assert positive[0] == pytest.approx(0.55e-6, rel=1e-6)
    decade_sizes = [int(((positive >= 10.0 ** (d - 7)) & (positive < 10.0 ** (d - 6))).sum()) for d in range(7)]
    assert decade_sizes == [1, 2, 4, 8, 16, 32, 64]


def test_unsigned_book_structure() -> None:
    book = dynamic_codebook(False).double()
    assert zero_code(False) == 0 and float(book.min()) == 0.0
    inner = book[1:255]
    decade_sizes = [int(((inner >= 10.0 ** (d - 7)) & (inner < 10.0 ** (d - 6))).sum()) for d in range(7)]
    assert decade_sizes == [2, 4, 8, 16, 32, 64, 128]
    assert inner[0] == pytest.approx(1e-6 * (0.1 + 0.9 * 0.5 / 2), rel=1e-6)


def test_half_gap_and_midpoints() -> None:
    assert largest_half_gap(True) == pytest.approx(0.9 / 128, rel=1e-5)
    assert largest_half_gap(False) == pytest.approx(0.9 / 256, rel=1e-5)
    mids = code_midpoints(True)
    book = dynamic_codebook(True).double()
    assert bool(((mids > book[:-1]) & (mids < book[1:])).all())


def test_reference_nearest_code_ties_go_low() -> None:
    book = dynamic_codebook(True)
    mid = (book[200].double() + book[201].double()) / 2  # exact in float64
    assert int(nearest_code_reference(mid.reshape(1), True)) == 200
    assert int(nearest_code_reference(torch.nextafter(mid, torch.tensor(2.0, dtype=torch.float64)).reshape(1),
                                      True)) == 201
