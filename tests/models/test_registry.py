"""Registry contract: names, overrides, error messages, and forward shapes of every model."""

from __future__ import annotations

import pytest
import torch

from sv_toolkit.models import available_models, build_model

RESNET_DEPTHS = (34, 50, 101, 152, 221, 293)
DF_DEPTHS = (56, 110, 179, 233)
CONTRACT_NAMES = (
    [f"resnet{d}" for d in RESNET_DEPTHS]
    + [f"revnet{d}_{t}" for d in RESNET_DEPTHS for t in ("i", "ii")]
    + [f"dfresnet{d}" for d in DF_DEPTHS]
    + [f"dfrevnet{d}_{t}" for d in DF_DEPTHS for t in ("i", "ii")]
)


def test_contract_names_registered() -> None:
    names = available_models()
    assert names == sorted(names)
    missing = [n for n in CONTRACT_NAMES if n not in names]
    assert not missing, f"missing contract names: {missing}"


def test_unknown_name_lists_available() -> None:
    with pytest.raises(ValueError, match="resnet34") as err:
        build_model("resnet35")
    assert "resnet35" in str(err.value)


def test_unknown_override_is_named() -> None:
    with pytest.raises(TypeError, match="widht"):
        build_model("resnet10", widht=4)


def test_bad_input_shape_names_it() -> None:
    model = build_model("resnet10", base_width=4)
    with pytest.raises(ValueError, match=r"\(2, 40, 64\)"):
        model(torch.randn(2, 40, 64))


@pytest.mark.parametrize("name", available_models())
def test_every_model_builds_thin_and_embeds(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, base_width=4, embed_dim=16, num_blocks=(1, 1, 2, 1))
    assert model.name == name
    out = model(torch.randn(2, 24, 80))  # 24 frames: >= 2 pooled frames after 3 or 4 halvings
    assert out.shape == (2, 16)
    assert torch.isfinite(out).all()
