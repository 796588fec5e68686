"""DF-RevNets: reversible DF-ResNets, Type I and Type II (``dfrevnet{56,110,179,233}_{i,ii}``).

Type I (``_i``)
    Every DF-ResNet block already preserves its shape, so each stage becomes one run of coupling
    blocks (one autograd Function per stage); the four stride-2 downsampling convolutions stay ordinary
    and store their inputs. F and G are inverted bottlenecks on half the channels
    (1x1 d/2 -> m, depthwise 3x3 m, 1x1 m -> d/2, BN after each, ReLU after the first two) with m solved
    so that F + G have the parameters of the vanilla block (m ~ 4d: the vanilla expansion).

Type II (``_ii``)
    The downsampling convolutions are replaced by :class:`SpaceToDepth` (channels x4 each time), so
    the whole body after the stem is one reversible run. With four downsamplings the stream grows by
    4**4 = 256, so the stem produces only ``c0 = 2 * max(1, w // 16)`` channels (4 at w=32): streams
    16, 64, 256, 1024 at stages 1-4 (vanilla: 32, 64, 128, 256), then a 1x1 conv + BN + ReLU projection
    1024 -> 8w restores the vanilla head. The stem is the only full-resolution layer (as in the
    vanilla net, where the first downsampling comes before stage 1), so the narrow stem does not
    starve any coupling block. F and G are inverted-bottleneck-style branches whose inner width is
    solved per stage so that the stage's couplings cost what the vanilla stage AND its downsampling
    convolution cost (minus the projection, charged to stage 4), capped at the vanilla hidden width
    4d: on the narrow stage-1 stream (half = 8) the budget alone would ask for 224 hidden channels
    at F/2 where the vanilla net has 128, and that recompute would set the training peak (measured
    23.7 MiB per 200-frame sample uncapped); the cap costs 0.6% of the parameters (4.02M vs 4.05M)
    and 8% of the MACs. The (B, 1, F, T) image is zero-padded
    to multiples of 16 on both axes (same ceil(T/16) output frames as the vanilla strided convs).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, partial

import torch
import torch.nn as nn

from sv_toolkit.models.dfresnet import (
    DF_CONFIGS,
    DF_EXPANSION,
    NUM_DOWNSAMPLINGS,
    InvertedBottleneckBlock,
    df_widths,
    downsampling_layer,
    inverted_bottleneck_branch,
)
from sv_toolkit.models.pooling import EmbeddingHead, downsampled_size
from sv_toolkit.models.registry import check_num_blocks, register_model
from sv_toolkit.models.resnet import conv_bn, make_stem
from sv_toolkit.models.reversible import InvertibleLayer, ReversibleSequence, SpaceToDepth
from sv_toolkit.models.revnet import REV_TYPES, ReversibleEmbeddingNet, count_params, coupling_stage


def inverted_coupling_branch(half: int, inner: int) -> nn.Sequential:
    """1x1 half -> inner, depthwise 3x3 inner, 1x1 inner -> half (BN after each, ReLU after two)."""
    return inverted_bottleneck_branch(half, inner, half)


@lru_cache(maxsize=None)
def _vanilla_block_params(dim: int) -> int:
    with torch.device("meta"):
        return count_params(InvertedBottleneckBlock(dim))


@lru_cache(maxsize=None)
def _vanilla_downsampling_params(in_ch: int, out_ch: int) -> int:
    with torch.device("meta"):
        return count_params(downsampling_layer(in_ch, out_ch))


def type_ii_stem_width(base_width: int) -> int:
    """Stem channels of a Type II DF-RevNet: 2 * max(1, w // 16) (4 at w=32)."""
    return 2 * max(1, base_width // 16)


class DFRevNet(ReversibleEmbeddingNet):
    """Reversible DF-ResNet (Type I or II): (B, T, feat_dim) -> (B, embed_dim)."""

    def __init__(
        self,
        num_blocks: Sequence[int],
        rev_type: str,
        feat_dim: int = 80,
        embed_dim: int = 256,
        base_width: int = 32,
        store_activations: bool = False,
        stream_dtype: str = "float32",
        keep_tail_activations: bool = True,
    ) -> None:
        super().__init__(rev_type, feat_dim)
        blocks = check_num_blocks(num_blocks)
        self.name = f"dfrevnet({blocks}, type {rev_type})"
        widths = df_widths(base_width)
        if rev_type == "i":
            if base_width % 2:
                raise ValueError(f"Type I DF-RevNets need an even base_width, got {base_width}")
            self.stem = make_stem(widths[0])
            layers: list[nn.Module] = []
            for i, n in enumerate(blocks):
                dim = widths[i + 1]
                layers.append(downsampling_layer(widths[i], dim))
                run = coupling_stage(inverted_coupling_branch, dim, n, n * _vanilla_block_params(dim))
                layers.append(ReversibleSequence(run, input_pixels=4.0 ** -(i + 1)))
            self.body: nn.Module = nn.Sequential(*layers)
            self.projection: nn.Module = nn.Identity()
        else:
            stream = type_ii_stem_width(base_width)
            self.stem = make_stem(stream)
            stream_out = stream * 4**NUM_DOWNSAMPLINGS
            self.projection = nn.Sequential(*conv_bn(stream_out, widths[-1], 1), nn.ReLU())
            run_layers: list[InvertibleLayer] = []
            for i, n in enumerate(blocks):
                dim = widths[i + 1]
                target = n * _vanilla_block_params(dim) + _vanilla_downsampling_params(widths[i], dim)
                if i == len(blocks) - 1:
                    target = max(target - count_params(self.projection), n)
                stream *= 4
                run_layers.append(SpaceToDepth())
                # Capped at the vanilla hidden width: on the narrow early streams (half = 8 at stage 1)
                # the parameter budget alone would ask for 224 > 128 hidden channels at F/2.
                run_layers += coupling_stage(inverted_coupling_branch, stream, n, target, DF_EXPANSION * dim)
            self.body = ReversibleSequence(run_layers)
            self.pad_to = 2**NUM_DOWNSAMPLINGS
        self.head = EmbeddingHead(widths[-1], downsampled_size(feat_dim, NUM_DOWNSAMPLINGS), embed_dim)
        self._finish(store_activations, stream_dtype, keep_tail_activations)


def build_dfrevnet(
    depth: int,
    rev_type: str,
    *,
    feat_dim: int = 80,
    embed_dim: int = 256,
    base_width: int = 32,
    num_blocks: Sequence[int] | None = None,
    store_activations: bool = False,
    stream_dtype: str = "float32",
    keep_tail_activations: bool = True,
) -> DFRevNet:
    """Build ``dfrevnet{depth}_{rev_type}``; ``num_blocks`` overrides the blocks per stage."""
    return DFRevNet(
        num_blocks or DF_CONFIGS[depth],
        rev_type,
        feat_dim,
        embed_dim,
        base_width,
        store_activations,
        stream_dtype,
        keep_tail_activations,
    )


for _depth in DF_CONFIGS:
    for _rev_type in REV_TYPES:
        register_model(f"dfrevnet{_depth}_{_rev_type}", partial(build_dfrevnet, _depth, _rev_type))
