"""DF-RevNets: reversible DF-ResNets, Type I and Type II (``dfrevnet{56,110,179,233}_{i,ii}``).

Type I (``_i``)
    Every DF-ResNet block already preserves its shape, so each stage becomes one run of coupling
    blocks (one autograd Function per stage); the four stride-2 downsampling convolutions stay ordinary
    and store their inputs. They produce streams twice the vanilla width (2d: 64 / 128 / 256 / 512 at
    w=32), from stage 2 on as two groups (each stream downsampled by its own half of the conv, twice
    the vanilla conv's parameters), and a 1x1 conv + BN + ReLU projection 16w -> 8w restores the vanilla
    head. So F and G see d channels each, as the vanilla block does, and can be parameter-matched
    without being wider inside than it (below). F and G are inverted bottlenecks
    (1x1 d -> m, depthwise 3x3 m, 1x1 m -> d, BN after each, ReLU after the first two).

Type II (``_ii``)
    The downsampling convolutions are replaced by :class:`SpaceToDepth` (channels x4 each time), so
    the whole body after the stem is one reversible run. With four downsamplings the stream grows by
    4**4 = 256, so the stem produces only ``c0 = 2 * max(1, w // 16)`` channels (4 at w=32): streams
    16, 64, 256, 1024 at stages 1-4 (vanilla: 32, 64, 128, 256), then a 1x1 conv + BN + ReLU projection
    1024 -> 8w restores the vanilla head. The stem is the only full-resolution layer (as in the
    vanilla net, where the first downsampling comes before stage 1), so the narrow stem does not
    starve any coupling block. The (B, 1, F, T) image is zero-padded to multiples of 16 on both axes
    (same ceil(T/16) output frames as the vanilla strided convs).

Inner widths (both types): the couplings of a stage get the parameters of the vanilla stage they replace
(with its downsampling convolution, less what this net's own downsampling costs; the projection is charged
to stage 4), what a stage cannot use passes on to the next (:class:`~sv_toolkit.models.revnet.ParamBudget`),
and F and G are together at most as wide inside as the vanilla block (m <= 2d). The reason is time: a DF
block's step time goes to the depthwise conv, BatchNorm and ReLU passes over its hidden maps, not to its
1x1 MACs, and parameters grow with (input width x m). Couplings on the vanilla width d (halves of d/2)
would need m ~ 4d each, the whole vanilla hidden width in each of F and G, to match the parameters:
twice the elementwise work before the backward repeats it. Measured with scripts/benchmark_memory.py
(2-core CPU, batch 2, 1 thread, training-step CPU time / DF-ResNet's): uncapped, dfrevnet56_i 1.95x and
dfrevnet56_ii 1.68x; Type I on d-wide streams with only stages 1-2 capped 1.52x (56) and 1.89x (233
layers, 63 blocks in stage 3); the design here is in docs/benchmarks.md.
Widths at w=32: dfrevnet56_i m = 40 / 104 / 240 / 376 on halves 32 / 64 / 128 / 256; dfrevnet56_ii
64 / 128 / 256 / 288 on halves 8 / 32 / 128 / 512 (stage 4 takes what the caps left); parameter counts
within 0.5% of the DF-ResNets.
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
from sv_toolkit.models.resnet import make_stem
from sv_toolkit.models.reversible import InvertibleLayer, ReversibleSequence, SpaceToDepth
from sv_toolkit.models.revnet import (
    REV_TYPES,
    ParamBudget,
    ReversibleEmbeddingNet,
    count_params,
    projection_layer,
)


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
            self.stem = make_stem(widths[0])
            self.projection = projection_layer(2 * widths[-1], widths[-1])
            layers: list[nn.Module] = []
            budget = ParamBudget()
            for i, n in enumerate(blocks):
                dim, last = widths[i + 1], i == len(blocks) - 1
                # Streams 2d wide; from stage 2 on each stream is downsampled by its own half of the conv.
                downsampling = downsampling_layer(2 * widths[i] if i else widths[0], 2 * dim, 2 if i else 1)
                layers.append(downsampling)
                target = n * _vanilla_block_params(dim) + _vanilla_downsampling_params(widths[i], dim)
                target -= count_params(downsampling) + (count_params(self.projection) if last else 0)
                offered = budget.offer(target, n)
                run = budget.build(inverted_coupling_branch, 2 * dim, n, offered, DF_EXPANSION * dim // 2, last)
                layers.append(ReversibleSequence(run, input_pixels=4.0 ** -(i + 1)))
            self.body: nn.Module = nn.Sequential(*layers)
        else:
            stream = type_ii_stem_width(base_width)
            self.stem = make_stem(stream)
            stream_out = stream * 4**NUM_DOWNSAMPLINGS
            self.projection = projection_layer(stream_out, widths[-1])
            run_layers: list[InvertibleLayer] = []
            budget = ParamBudget()
            for i, n in enumerate(blocks):
                dim = widths[i + 1]
                target = n * _vanilla_block_params(dim) + _vanilla_downsampling_params(widths[i], dim)
                if i == len(blocks) - 1:
                    target = max(target - count_params(self.projection), n)
                stream *= 4
                run_layers.append(SpaceToDepth())
                offered = budget.offer(target, n)
                run_layers += budget.build(
                    inverted_coupling_branch, stream, n, offered, DF_EXPANSION * dim // 2, i == len(blocks) - 1
                )
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
