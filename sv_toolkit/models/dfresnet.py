"""DF-ResNet (depth-first ResNet, Liu et al., Interspeech 2022 / TASLP 2023) speaker-embedding extractor.

(B, T, F) fbank -> (B, 1, F, T) -> stem Conv3x3(1 -> w) + BN + ReLU -> four times: a separate
downsampling layer Conv3x3(stride 2 on freq and time) + BN, then a stage of inverted-bottleneck blocks
(1x1 d -> 4d + BN + ReLU, depthwise 3x3 + BN + ReLU, 1x1 4d -> d + BN, plus identity, ReLU) ->
TSTP -> Linear(embed_dim). Widths w, w, 2w, 4w, 8w (32, 32, 64, 128, 256 at w=32). No block changes
shape, which is what makes the DF-RevNets easy to build (``dfrevnet.py``).

Parameter counts (80-dim fbank, 256-dim embedding): 4.05M / 6.53M / 9.20M / 11.68M for depths
56 / 110 / 179 / 233. These are wespeaker's Gemini DF-ResNet60 / 114 / 183 (published 4.05 / 6.53 /
9.20M; wespeaker counts the four downsampling layers as depth) and 237. The 4.5M / 12.3M quoted for
the original DF-ResNet56 / 233 come from a variant whose code is not public here; the gap between
those two figures (7.8M) is close to what the extra blocks add here (7.63M), so the difference lies
in the parts every depth shares (stem, pooling, head). Gemini downsamples time only once (time strides
1, 2, 1, 1) where this net halves both axes at every downsampling, as REFERENCE.md describes: same
parameters, but Gemini's stages 1-4 see 2x, 2x, 4x, 8x more frames (and MACs).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn as nn

from sv_toolkit.models.checkpointing import StageCheckpointing
from sv_toolkit.models.pooling import EmbeddingHead, downsampled_size, fbank_to_image
from sv_toolkit.models.registry import check_num_blocks, register_model
from sv_toolkit.models.resnet import conv_bn, make_stem

DF_CONFIGS: dict[int, tuple[int, int, int, int]] = {
    56: (3, 3, 9, 3),
    110: (3, 3, 27, 3),
    179: (3, 8, 45, 3),
    233: (3, 8, 63, 3),
}
DF_EXPANSION = 4
NUM_DOWNSAMPLINGS = 4


def df_widths(base_width: int) -> tuple[int, int, int, int, int]:
    """Stem width followed by the four stage widths: w, w, 2w, 4w, 8w."""
    return (base_width, base_width, 2 * base_width, 4 * base_width, 8 * base_width)


def inverted_bottleneck_branch(in_ch: int, hidden: int, out_ch: int) -> nn.Sequential:
    """1x1 in -> hidden + BN + ReLU, depthwise 3x3 + BN + ReLU, 1x1 hidden -> out + BN."""
    return nn.Sequential(
        *conv_bn(in_ch, hidden, 1), nn.ReLU(),
        *conv_bn(hidden, hidden, 3, groups=hidden), nn.ReLU(),
        *conv_bn(hidden, out_ch, 1),
    )


def downsampling_layer(in_ch: int, out_ch: int, groups: int = 1) -> nn.Sequential:
    """Conv3x3 with stride 2 on freq and time, + BN (no ReLU, as in the reference)."""
    return nn.Sequential(*conv_bn(in_ch, out_ch, 3, stride=2, groups=groups))


class InvertedBottleneckBlock(nn.Module):
    """relu(x + branch(x)) with the d -> 4d -> d inverted bottleneck; shape preserving."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.branch = inverted_bottleneck_branch(dim, DF_EXPANSION * dim, dim)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, d, F, T)
        return self.relu(x + self.branch(x))


class DFResNet(StageCheckpointing, nn.Module):
    """DF-ResNet: (B, T, feat_dim) -> (B, embed_dim)."""

    def __init__(
        self,
        num_blocks: Sequence[int],
        feat_dim: int = 80,
        embed_dim: int = 256,
        base_width: int = 32,
    ) -> None:
        super().__init__()
        blocks = check_num_blocks(num_blocks)
        self.name = f"dfresnet({blocks})"
        self.feat_dim = feat_dim
        widths = df_widths(base_width)
        self.stem = make_stem(widths[0])
        layers: list[nn.Module] = []
        for i, n in enumerate(blocks):
            layers.append(downsampling_layer(widths[i], widths[i + 1]))
            layers.append(nn.Sequential(*[InvertedBottleneckBlock(widths[i + 1]) for _ in range(n)]))
        self.body = nn.Sequential(*layers)
        self.head = EmbeddingHead(widths[-1], downsampled_size(feat_dim, NUM_DOWNSAMPLINGS), embed_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = fbank_to_image(feats, self.feat_dim)  # (B, 1, F, T)
        x = self.run_stages(self.body, self.stem(x))  # (B, 8w, F / 16, T / 16)
        return self.head(x)  # (B, embed_dim)


def build_dfresnet(
    depth: int,
    *,
    feat_dim: int = 80,
    embed_dim: int = 256,
    base_width: int = 32,
    num_blocks: Sequence[int] | None = None,
) -> DFResNet:
    """Build ``dfresnet{depth}``; ``num_blocks`` overrides the blocks per stage."""
    return DFResNet(num_blocks or DF_CONFIGS[depth], feat_dim, embed_dim, base_width)


for _depth in DF_CONFIGS:
    register_model(f"dfresnet{_depth}", partial(build_dfresnet, _depth))
