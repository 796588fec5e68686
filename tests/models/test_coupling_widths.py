"""Inner widths of the coupling branches: multiples of 8, budget carried across stages, DF caps."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from sv_toolkit.models import available_models, build_model
from sv_toolkit.models.reversible import CouplingBlock, ReversibleSequence
from sv_toolkit.models.revnet import (
    CHANNEL_MULTIPLE,
    ParamBudget,
    bottleneck_coupling_branch,
    coupling_inner_width,
    count_params,
    solve_inner_width,
)

REVERSIBLE = [n for n in available_models() if n.startswith(("revnet", "dfrevnet"))]


def stage_widths(model: nn.Module) -> list[tuple[int, int]]:
    """(half stream, inner width of F) per run of identical coupling blocks, in network order."""
    out: list[tuple[int, int]] = []
    for run in (m for m in model.modules() if isinstance(m, ReversibleSequence)):
        for layer in run.layers:
            if isinstance(layer, CouplingBlock):
                first = next(m for m in layer.f.modules() if isinstance(m, nn.Conv2d))
                key = (first.in_channels, first.out_channels)
                if not out or out[-1] != key:
                    out.append(key)
    return out


def meta_model(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):
        return build_model(name, **overrides)


def test_solver_returns_the_closest_multiple() -> None:
    def pair(m: int) -> nn.Module:
        return nn.Linear(10, m, bias=False)  # 10 params per unit of width

    assert solve_inner_width(pair, 253) == 25
    assert solve_inner_width(pair, 253, 8) == 24  # 240 is closer to 253 than 320
    assert solve_inner_width(pair, 290, 8) == 32
    assert solve_inner_width(pair, 3, 8) == 8  # never below one multiple


def test_narrow_branches_keep_the_exact_width() -> None:
    def params(half: int, inner: int) -> int:
        with torch.device("meta"):
            return 2 * count_params(bottleneck_coupling_branch(half, inner))

    assert coupling_inner_width(bottleneck_coupling_branch, 8, params(8, 13)) == 13  # below 24: exact
    assert coupling_inner_width(bottleneck_coupling_branch, 64, params(64, 99)) == 96
    assert coupling_inner_width(bottleneck_coupling_branch, 64, params(64, 99), exact=True) == 99


@pytest.mark.parametrize("name", REVERSIBLE)
def test_full_width_inner_widths_are_multiples_of_8(name: str) -> None:
    """Every stage but the last (which may take an exact width to land the total on the vanilla count)."""
    widths = stage_widths(meta_model(name))
    assert widths
    for half, inner in widths[:-1]:
        assert inner % CHANNEL_MULTIPLE == 0 or inner < 3 * CHANNEL_MULTIPLE, (name, half, inner)


def test_demo_widths_are_not_rounded() -> None:
    """The demo's width-8 RevNet10 keeps the exact solution (8 / 12 / 12 / 9)."""
    assert [inner for _, inner in stage_widths(meta_model("revnet10_ii", base_width=8))] == [8, 12, 12, 9]


def test_budget_carries_what_a_stage_cannot_use() -> None:
    budget = ParamBudget()
    offered = budget.offer(100_000, 3)
    run = budget.build(bottleneck_coupling_branch, 128, 3, offered, max_inner=8)  # capped: far below
    used = sum(count_params(b) for b in run)
    assert budget.carry == offered - used > 50_000
    assert budget.offer(1_000, 1) == 1_000 + budget.carry  # the next stage gets it


@pytest.mark.parametrize("name", [n for n in REVERSIBLE if n.startswith("dfrevnet")])
def test_df_branches_at_most_as_wide_inside_as_the_vanilla_block(name: str) -> None:
    """F and G together <= the vanilla hidden width 4d in every stage; Type I streams are 2d wide."""
    widths = stage_widths(meta_model(name))
    dims = (32, 64, 128, 256)  # vanilla stage widths at w=32
    assert len(widths) == len(dims)
    for (half, inner), dim in zip(widths, dims):
        assert 2 * inner <= 4 * dim, (name, inner, dim)
        if name.endswith("_i"):
            assert half == dim, (name, half, dim)
