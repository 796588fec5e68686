"""DF-ResNet: structure and parameter counts against the published figures."""

from __future__ import annotations

import pytest
import torch

from sv_toolkit.models import build_model

# Our counts (80-dim fbank, 256-dim embedding, four stride-2 downsamplings as in REFERENCE.md
# section 2 and wespeaker's Gemini DF-ResNet, which counts 56 + 4 downsampling layers = "60").
MEASURED_M = {"dfresnet56": 4.048, "dfresnet110": 6.532, "dfresnet179": 9.196, "dfresnet233": 11.680}
# Published: DF-ResNet56 4.5M, DF-ResNet233 12.3M (about 7M / 10M for 110 / 179). Our counts are
# 10% / 5% lower; see the dfresnet.py docstring for the likely source of the gap.
PUBLISHED_M = {"dfresnet56": 4.5, "dfresnet110": 7.0, "dfresnet179": 10.0, "dfresnet233": 12.3}


def count_params_meta(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name).parameters())


@pytest.mark.parametrize("name", sorted(MEASURED_M))
def test_param_counts(name: str) -> None:
    got = count_params_meta(name) / 1e6
    assert abs(got - MEASURED_M[name]) < 0.001, f"{name}: {got:.4f}M (architecture changed?)"
    assert abs(got - PUBLISHED_M[name]) / PUBLISHED_M[name] < 0.11


def test_frame_level_shape() -> None:
    model = build_model("dfresnet56", base_width=4, num_blocks=(1, 1, 1, 1))
    x = model.body(model.stem(torch.randn(2, 1, 80, 40)))
    assert x.shape == (2, 32, 5, 3)  # 8w channels, 80 / 16 freq, ceil(40 / 16) frames


def test_blocks_preserve_shape_and_depthwise() -> None:
    model = build_model("dfresnet56", base_width=8, num_blocks=(1, 1, 1, 1))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(convs) == 4 and all(c.groups == c.in_channels for c in convs)
