"""ResNet matches wespeaker's parameter counts and basic behaviour."""

from __future__ import annotations

import pytest
import torch

from sv_toolkit.models import build_model

# REFERENCE.md section 2 (wespeaker, 80-dim fbank, 256-dim embedding), in millions.
WESPEAKER_PARAMS_M = {
    "resnet34": 6.63,
    "resnet50": 11.13,
    "resnet101": 15.89,
    "resnet152": 19.81,
    "resnet221": 23.79,
    "resnet293": 28.62,
}


def count_params_meta(name: str, **overrides: object) -> int:
    """Parameter count built on the meta device (no allocation, no init cost)."""
    with torch.device("meta"):
        model = build_model(name, **overrides)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(WESPEAKER_PARAMS_M))
def test_param_count_matches_wespeaker(name: str) -> None:
    got = count_params_meta(name) / 1e6
    want = WESPEAKER_PARAMS_M[name]
    assert abs(got - want) / want < 0.005, f"{name}: {got:.3f}M params, wespeaker {want}M"


def test_defaults_and_overrides() -> None:
    model = build_model("resnet10", base_width=4, embed_dim=32, feat_dim=40)
    assert model(torch.randn(3, 20, 40)).shape == (3, 32)
    # embedding layer sees 2 * (8 * w) channels * (feat_dim / 8) freq bins
    assert model.head.embedding.in_features == 2 * 32 * 5


def test_time_invariant_length_handling() -> None:
    model = build_model("resnet18", base_width=4).eval()
    for frames in (16, 17, 63):
        assert model(torch.randn(1, frames, 80)).shape == (1, 256)


def test_too_short_input_is_rejected() -> None:
    model = build_model("resnet10", base_width=4)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model(torch.randn(2, 8, 80))
