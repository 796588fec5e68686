"""Vanilla ResNet speaker-embedding extractor, equivalent to wespeaker's ``ResNet`` (two_emb_layer=False).

(B, T, F) fbank -> (B, 1, F, T) image -> stem Conv3x3(1 -> w) + BN + ReLU (no max-pool) -> four stages of
widths w, 2w, 4w, 8w (x4 output channels for Bottleneck blocks), strides 1, 2, 2, 2 on both axes, with a
1x1 conv + BN shortcut whenever the shape changes -> TSTP -> Linear(embed_dim).

The residual branches are built by :func:`basic_branch` / :func:`bottleneck_branch` so that the
reversible variants (``revnet.py``) reuse exactly the same layer recipe at other widths.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn

from sv_toolkit.models.checkpointing import StageCheckpointing
from sv_toolkit.models.pooling import EmbeddingHead, downsampled_size, fbank_to_image
from sv_toolkit.models.registry import check_num_blocks, register_model

BLOCK_EXPANSION = {"basic": 1, "bottleneck": 4}
STAGE_STRIDES = (1, 2, 2, 2)

# name -> (block type, blocks per stage)
RESNET_CONFIGS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    221: ("bottleneck", (6, 16, 48, 3)),
    293: ("bottleneck", (10, 20, 64, 3)),
}


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Bias-free Conv2d (same padding) followed by BatchNorm2d."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]


def basic_branch(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """conv3x3(stride) + BN + ReLU + conv3x3 + BN (the residual branch of a BasicBlock)."""
    return nn.Sequential(
        *conv_bn(in_ch, out_ch, 3, stride), nn.ReLU(), *conv_bn(out_ch, out_ch, 3)
    )


def bottleneck_branch(in_ch: int, mid_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """conv1x1 + BN + ReLU + conv3x3(stride) + BN + ReLU + conv1x1 + BN (a Bottleneck's branch)."""
    return nn.Sequential(
        *conv_bn(in_ch, mid_ch, 1), nn.ReLU(),
        *conv_bn(mid_ch, mid_ch, 3, stride), nn.ReLU(),
        *conv_bn(mid_ch, out_ch, 1),
    )


def make_stem(width: int) -> nn.Sequential:
    """Conv3x3(1 -> width) + BN + ReLU at full resolution."""
    return nn.Sequential(*conv_bn(1, width, 3), nn.ReLU())


class ResidualBlock(nn.Module):
    """relu(branch(x) + shortcut(x)), with a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, block: str, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        out_ch = planes * BLOCK_EXPANSION[block]
        if block == "basic":
            self.branch = basic_branch(in_ch, out_ch, stride)
        else:
            self.branch = bottleneck_branch(in_ch, planes, out_ch, stride)
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))
        else:
            self.shortcut = nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, F, T) -> (B, C_out, F / stride, T / stride)
        return self.relu(self.branch(x) + self.shortcut(x))


class ResNet(StageCheckpointing, nn.Module):
    """wespeaker-equivalent ResNet: (B, T, feat_dim) -> (B, embed_dim)."""

    def __init__(
        self,
        block: str,
        num_blocks: Sequence[int],
        feat_dim: int = 80,
        embed_dim: int = 256,
        base_width: int = 32,
    ) -> None:
        super().__init__()
        if block not in BLOCK_EXPANSION:
            raise ValueError(f"block must be one of {sorted(BLOCK_EXPANSION)}, got {block!r}")
        blocks = check_num_blocks(num_blocks)
        self.name = f"resnet({block}, {blocks})"
        self.feat_dim = feat_dim
        self.stem = make_stem(base_width)
        stages: list[nn.Module] = []
        in_ch = base_width
        for i, (n, stride) in enumerate(zip(blocks, STAGE_STRIDES)):
            planes = base_width * 2**i
            layers = []
            for j in range(n):
                layers.append(ResidualBlock(block, in_ch, planes, stride if j == 0 else 1))
                in_ch = planes * BLOCK_EXPANSION[block]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = EmbeddingHead(in_ch, downsampled_size(feat_dim, 3), embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = fbank_to_image(feats, self.feat_dim)  # (B, 1, F, T)
        x = self.run_stages(self.stages, self.stem(x))  # (B, 8w * expansion, F / 8, T / 8)
        return self.head(x)  # (B, embed_dim)


def build_resnet(
    depth: int,
    *,
    feat_dim: int = 80,
    embed_dim: int = 256,
    base_width: int = 32,
    num_blocks: Sequence[int] | None = None,
) -> ResNet:
    """Build ``resnet{depth}``; ``num_blocks`` overrides the blocks per stage (thin test variants)."""
    block, default_blocks = RESNET_CONFIGS[depth]
    return ResNet(block, num_blocks or default_blocks, feat_dim, embed_dim, base_width)


for _depth in RESNET_CONFIGS:
    register_model(f"resnet{_depth}", partial(build_resnet, _depth))
