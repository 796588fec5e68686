"""RevNets: reversible versions of the wespeaker ResNets, Type I and Type II.

Names ``revnet{10,18,34,50,101,152,221,293}_{i,ii}``; same input/output contract as ``resnet*``.

Type I (``_i``)
    Every shape-preserving residual block becomes an additive coupling block; consecutive coupling
    blocks of a stage form one :class:`ReversibleSequence` (one autograd Function). Blocks that change
    the shape (the first block of stages 2-4, and of stage 1 for Bottleneck nets) stay ordinary
    :class:`ResidualBlock` s and store their inputs. F and G take half the channels in and out; their
    inner width ``m`` is chosen so that params(F) + params(G) equals the params of the vanilla block they
    replace: for Basic blocks this gives exactly the vanilla width (m = v: conv3x3 v/2 -> v -> v/2), for
    Bottleneck blocks m ~ 0.78 p (1x1 2p -> m, 3x3 m -> m, 1x1 m -> 2p), rounded to a multiple of 8
    (:func:`coupling_inner_width`; m = 24 / 48 / 96 for p = 32 / 64 / 128) with the rounding error
    passed on to the next stage (:class:`ParamBudget`). Parameter counts land within 0.3% of the
    vanilla nets.

Type II (``_ii``)
    Downsampling is made invertible with :class:`SpaceToDepth` (pixel_unshuffle per stream: freq and
    time halved, channels x4), so the whole body after the stem is ONE reversible run and only the
    network output is kept for backward (saved bytes are flat in depth). Because space-to-depth
    multiplies the channels by 4 where the vanilla net multiplies them by 2, the stream width is
    ``c0 * 4**i`` for stage i, with the stem producing ``c0 = base_width / 2`` channels:

    ============  ===================  ==========================
    stage         vanilla width (w=32)  Type II stream (c0 = 16)
    ============  ===================  ==========================
    1 (F)         32 / 128 (Basic/Bn)   16
    2 (F/2)       64 / 256              64
    3 (F/4)       128 / 512             256
    4 (F/8)       256 / 1024            1024
    ============  ===================  ==========================

    Choices, and why:
      * c0 = w/2 keeps the full-resolution stream at half the vanilla stem width (not a 1-2 channel
        bottleneck) while the last stage ends at 32w, which is exactly the Bottleneck nets' final width,
        so their pooling + Linear head is the vanilla one unchanged. (c0 = w would give 64w = 2048
        channels at the end, and a 10.5M-parameter Linear after pooling.)
      * F and G are FLOP- and parameter-matched to the vanilla stage they replace (including its
        downsampling shortcut): the inner width m of each stage is solved for the parameter budget
        (a multiple of 8, the rounding error passed on to the next stage), and as every conv of a
        stage runs at that stage's resolution, the MACs match too (revnet34_ii 4.55 vs 4.53 GMACs for
        200 frames). Bottleneck nets use bottleneck branches (1x1 c/2 -> m, 3x3 m -> m,
        1x1 m -> c/2). Basic nets use the Basic recipe (3x3 c/2 -> m, 3x3 m -> c/2) wherever m comes
        out at most c (stages 2-4), and the bottleneck recipe on the narrow full-resolution stream of
        stage 1, where two 3x3 convs would need m = 2w: see :func:`type_ii_branch`.
      * Basic nets end at 32w = 4x their vanilla width 8w: a cheap 1x1 conv + BN + ReLU projection
        32w -> 8w (262k params at w=32, charged to stage 4's budget) restores the vanilla head. The
        projection reads the run's output, which is kept anyway, so it adds no stored activation of
        the body's size.
      * Space-to-depth needs even sizes at every downsampling: the (B, 1, F, T) image is zero-padded at
        the end of freq and time to multiples of 8 (the same ceil(T/8) output frames as the vanilla net,
        whose stride-2 convolutions also zero-pad).

    Measured at w=32: see ``tests/models/test_revnet.py`` (all within 1% of the vanilla counts).

Both types: the stem is checkpointed in training (see :class:`ReversibleEmbeddingNet`); the streams are
fp32 by default, ``stream_dtype="float64"`` makes the gradients equal plain autograd's (``reversible.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial

import torch
import torch.nn as nn
import torch.nn.functional as F_

from sv_toolkit.models.checkpointing import checkpointed
from sv_toolkit.models.pooling import EmbeddingHead, downsampled_size, fbank_to_image
from sv_toolkit.models.registry import check_num_blocks, register_model
from sv_toolkit.models.resnet import (
    BLOCK_EXPANSION,
    RESNET_CONFIGS,
    STAGE_STRIDES,
    ResidualBlock,
    bottleneck_branch,
    conv_bn,
    make_stem,
)
from sv_toolkit.models.reversible import (
    CouplingBlock,
    InvertibleLayer,
    ReversibleSequence,
    SpaceToDepth,
    set_store_activations,
)

REV_TYPES = ("i", "ii")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def solve_inner_width(make_branch_pair: Callable[[int], nn.Module], target: int, multiple: int = 1) -> int:
    """Inner width m (a positive multiple of ``multiple``) whose params(make_branch_pair(m)) is closest
    to ``target``.

    ``make_branch_pair(m)`` must have a parameter count increasing in m; candidates are built on the
    meta device, so no memory is allocated.
    """

    def params(k: int) -> int:
        with torch.device("meta"):
            return count_params(make_branch_pair(k * multiple))

    lo, hi = 1, 2
    while params(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params(mid) < target else (lo, mid)
    return multiple * (lo if abs(params(lo) - target) <= abs(params(hi) - target) else hi)


def projection_layer(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU from a reversible body's wider output to the vanilla head's width."""
    return nn.Sequential(*conv_bn(in_ch, out_ch, 1), nn.ReLU())


BranchFactory = Callable[[int, int], nn.Module]  # (half channels, inner width) -> F or G


def basic_coupling_branch(half: int, inner: int) -> nn.Sequential:
    """conv3x3(half -> inner) + BN + ReLU + conv3x3(inner -> half) + BN."""
    return nn.Sequential(*conv_bn(half, inner, 3), nn.ReLU(), *conv_bn(inner, half, 3))


def bottleneck_coupling_branch(half: int, inner: int) -> nn.Sequential:
    """conv1x1(half -> inner) + BN + ReLU + conv3x3(inner) + BN + ReLU + conv1x1(inner -> half) + BN."""
    return bottleneck_branch(half, inner, half)


COUPLING_BRANCHES: dict[str, BranchFactory] = {
    "basic": basic_coupling_branch,
    "bottleneck": bottleneck_coupling_branch,
}


CHANNEL_MULTIPLE = 8


def coupling_stage(
    make_branch: BranchFactory,
    channels: int,
    count: int,
    target_params: int,
    max_inner: int | None = None,
    exact: bool = False,
) -> list[CouplingBlock]:
    """``count`` coupling blocks on a ``channels``-wide stream, together worth ``target_params``.

    F and G are ``make_branch(channels // 2, inner)`` with the inner width solved for the budget
    (:func:`coupling_inner_width`; ``exact``: any width, not rounded) and capped at ``max_inner``.
    """
    if channels % 2:
        raise ValueError(f"a coupling stream needs an even channel count, got {channels}")
    half = channels // 2
    inner = coupling_inner_width(make_branch, half, round(target_params / count), exact)
    inner = inner if max_inner is None else min(inner, max_inner)
    return [CouplingBlock(make_branch(half, inner), make_branch(half, inner)) for _ in range(count)]


@lru_cache(maxsize=None)
def coupling_inner_width(make_branch: BranchFactory, half: int, target_params: int, exact: bool = False) -> int:
    """Inner width of F and G (``make_branch(half, m)`` each) whose pair is worth ``target_params``.

    A multiple of :data:`CHANNEL_MULTIPLE` (8) once the exact solution is at least 24 (unless ``exact``):
    the vectorised CPU / GPU convolution kernels work on blocks of 8 or 16 channels; with the exact
    widths (25 / 50 / 99 / 198) Type I RevNet101 took 1.57x its ResNet101's training step, rounded 1.38x
    (2-core CPU, batch 2, docs/benchmarks.md). Narrower branches (the demo widths) keep the exact
    solution, which rounding would move by more than a sixth. :class:`ParamBudget` passes the rounding
    error on to the next stage.
    """

    def pair(inner: int) -> nn.Module:
        return nn.ModuleList([make_branch(half, inner), make_branch(half, inner)])

    width = solve_inner_width(pair, target_params)
    if exact or width < 3 * CHANNEL_MULTIPLE:
        return width
    return solve_inner_width(pair, target_params, CHANNEL_MULTIPLE)


class ParamBudget:
    """Parameter budget of a net's coupling stages, spent stage by stage: what one stage cannot use
    (inner widths rounded to multiples of 8, or capped) is offered to the next, so that the whole net
    lands on its vanilla twin's count. The last stage takes an exact width if the rounded one would
    leave the couplings more than ``tolerance`` (1%) off their total."""

    def __init__(self, tolerance: float = 0.01) -> None:
        self.tolerance = tolerance
        self.carry = 0
        self.total = 0

    def offer(self, target: int, count: int) -> int:
        """A stage's budget: its own ``target`` plus what earlier stages left (at least 1 per block)."""
        self.total += target
        return max(target + self.carry, count)

    def build(
        self,
        make_branch: BranchFactory,
        channels: int,
        count: int,
        offered: int,
        max_inner: int | None = None,
        last: bool = False,
    ) -> list[CouplingBlock]:
        """:func:`coupling_stage` for the ``offered`` budget; records what it left for the next stage.
        The rounded candidate of the last stage is sized on the meta device, so only the stage kept is
        allocated."""
        exact = False
        if last:
            with torch.device("meta"):
                rounded = coupling_stage(make_branch, channels, count, offered, max_inner)
            exact = abs(offered - sum(count_params(b) for b in rounded)) > self.tolerance * self.total
        run = coupling_stage(make_branch, channels, count, offered, max_inner, exact)
        self.carry = offered - sum(count_params(b) for b in run)
        return run


@lru_cache(maxsize=None)
def _vanilla_params(block: str, in_ch: int, planes: int, stride: int) -> int:
    with torch.device("meta"):
        return count_params(ResidualBlock(block, in_ch, planes, stride))


STREAM_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def stream_dtype_from_name(name: str) -> torch.dtype:
    """``"float32"`` / ``"float64"`` -> torch dtype, with an error naming the accepted values."""
    if name not in STREAM_DTYPES:
        raise ValueError(f"stream_dtype must be one of {sorted(STREAM_DTYPES)}, got {name!r}")
    return STREAM_DTYPES[name]


class ReversibleEmbeddingNet(nn.Module):
    """Shared skeleton of RevNet and DF-RevNet: fbank image -> pad -> stem -> body -> projection -> head.

    Subclasses build ``stem``, ``body``, ``projection`` and ``head`` (each ReversibleSequence with its
    ``input_pixels``) and set ``pad_to`` (the image is zero-padded at the end of freq and time to a
    multiple of it; 1 = no padding), then call ``_finish(...)`` once the reversible runs exist.

    In training the stem is checkpointed (only its 1-channel input is kept; conv + BN + ReLU are
    recomputed in backward with BatchNorm statistics frozen): otherwise its full-resolution output and
    BN input would be the largest activations the whole net keeps.
    """

    def __init__(self, rev_type: str, feat_dim: int) -> None:
        super().__init__()
        if rev_type not in REV_TYPES:
            raise ValueError(f"rev_type must be one of {REV_TYPES}, got {rev_type!r}")
        self.rev_type = rev_type
        self.feat_dim = feat_dim
        self.pad_to = 1

    def _finish(self, store_activations: bool, stream_dtype: str, keep_tail_activations: bool) -> None:
        self.store_activations = store_activations
        self.stream_dtype = stream_dtype_from_name(stream_dtype)
        self.keep_tail_activations = keep_tail_activations

    @property
    def keep_tail_activations(self) -> bool:
        """True: the last run's trailing low-resolution layers keep their activations (ordinary
        autograd), as many as fit in the activations of the largest reversible branch (F or G). The
        backward holds one such branch's recompute anyway, so the peak stays flat in depth and within
        4% (measured per 200-frame sample, with / without: revnet34_ii 17.7 / 17.7 MiB, dfrevnet56_ii
        7.4 / 7.7), and those layers are not recomputed (revnet34_ii: the last 4 of its 19 layers;
        ``False``: none kept)."""
        return self._keep_tail

    @keep_tail_activations.setter
    def keep_tail_activations(self, value: bool) -> None:
        self._keep_tail = bool(value)
        runs = [m for m in self.modules() if isinstance(m, ReversibleSequence)]
        budget = max(max(run.activation_footprints()) for run in runs)  # one branch of one block
        tail, used = 0, 0.0
        for cost in reversed(runs[-1].activation_footprints()[1:]):  # the first layer stays reversible
            if used + 2 * cost > budget:  # a kept block keeps both its branches
                break
            used += 2 * cost
            tail += 1
        runs[-1].stored_tail = tail if self._keep_tail else 0

    @property
    def store_activations(self) -> bool:
        """True: ordinary autograd through the reversible runs (reference mode, more memory)."""
        return self._store_activations

    @store_activations.setter
    def store_activations(self, value: bool) -> None:
        self._store_activations = bool(value)
        set_store_activations(self, self._store_activations)

    @property
    def stream_dtype(self) -> torch.dtype:
        """dtype of the two streams in training (float64: gradients as exact as plain autograd's, at
        10-20% more step time on CPU)."""
        return self._stream_dtype

    @stream_dtype.setter
    def stream_dtype(self, value: torch.dtype) -> None:
        self._stream_dtype = value
        for module in self.modules():
            if isinstance(module, ReversibleSequence):
                module.stream_dtype = value

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = fbank_to_image(feats, self.feat_dim)  # (B, 1, F, T)
        if self.pad_to > 1:
            pad_f = -x.shape[-2] % self.pad_to
            pad_t = -x.shape[-1] % self.pad_to
            x = F_.pad(x, (0, pad_t, 0, pad_f))  # (B, 1, F', T'), multiples of pad_to
        x = checkpointed(self.stem, x)  # (B, C, F', T')
        x = self.body(x)  # (B, C', F' / 2**k, T' / 2**k) after k downsamplings
        return self.head(self.projection(x))  # (B, embed_dim)


class RevNet(ReversibleEmbeddingNet):
    """Reversible ResNet (Type I or II): (B, T, feat_dim) -> (B, embed_dim)."""

    def __init__(
        self,
        block: str,
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
        if block not in BLOCK_EXPANSION:
            raise ValueError(f"block must be one of {sorted(BLOCK_EXPANSION)}, got {block!r}")
        blocks = check_num_blocks(num_blocks)
        self.name = f"revnet({block}, {blocks}, type {rev_type})"
        final_width = base_width * 8 * BLOCK_EXPANSION[block]
        if rev_type == "i":
            if base_width % 2:
                raise ValueError(f"Type I RevNets need an even base_width, got {base_width}")
            self.stem = make_stem(base_width)
            self.body = self._type_i_body(block, blocks, base_width)
            self.projection: nn.Module = nn.Identity()
        else:
            if base_width % 4:
                raise ValueError(f"Type II RevNets need base_width divisible by 4, got {base_width}")
            stream = base_width // 2
            self.stem = make_stem(stream)
            stream_out = stream * 4**3
            self.projection = (
                nn.Identity()
                if stream_out == final_width
                else projection_layer(stream_out, final_width)
            )
            self.body = self._type_ii_body(block, blocks, base_width, stream, count_params(self.projection))
            self.pad_to = 8
        self.head = EmbeddingHead(final_width, downsampled_size(feat_dim, 3), embed_dim)
        self._finish(store_activations, stream_dtype, keep_tail_activations)

    @staticmethod
    def _type_i_body(block: str, blocks: tuple[int, ...], width: int) -> nn.Sequential:
        # Per stage: (planes, in_ch, out_ch, first block ordinary?, coupling count). Only a stage's first
        # block can change the shape; the shape-preserving rest become couplings.
        plan, in_ch = [], width
        for i, (n, stride) in enumerate(zip(blocks, STAGE_STRIDES)):
            planes = width * 2**i
            out_ch = planes * BLOCK_EXPANSION[block]
            ordinary = stride != 1 or in_ch != out_ch
            plan.append((planes, in_ch, out_ch, ordinary, n - ordinary))
            in_ch = out_ch
        last = max(i for i, stage in enumerate(plan) if stage[-1])
        layers: list[nn.Module] = []
        budget = ParamBudget()
        for i, (planes, in_ch, out_ch, ordinary, couplings) in enumerate(plan):
            if ordinary:
                layers.append(ResidualBlock(block, in_ch, planes, STAGE_STRIDES[i]))
            if couplings:
                offered = budget.offer(couplings * _vanilla_params(block, out_ch, planes, 1), couplings)
                run = budget.build(COUPLING_BRANCHES[block], out_ch, couplings, offered, last=i == last)
                layers.append(ReversibleSequence(run, input_pixels=4.0**-i))
        return nn.Sequential(*layers)

    @staticmethod
    def _type_ii_body(
        block: str, blocks: tuple[int, ...], width: int, stream: int, projection_params: int
    ) -> ReversibleSequence:
        layers: list[InvertibleLayer] = []
        budget = ParamBudget()
        in_ch = width
        for i, (n, stride) in enumerate(zip(blocks, STAGE_STRIDES)):
            planes = width * 2**i
            target = 0
            for j in range(n):
                target += _vanilla_params(block, in_ch, planes, stride if j == 0 else 1)
                in_ch = planes * BLOCK_EXPANSION[block]
            if i == len(blocks) - 1:
                target = max(target - projection_params, n)
            if stride != 1:
                layers.append(SpaceToDepth())
                stream *= 4
            offered = budget.offer(target, n)
            branch = type_ii_branch(block, stream, n, offered)
            layers += budget.build(branch, stream, n, offered, last=i == len(blocks) - 1)
        return ReversibleSequence(layers)


def type_ii_branch(block: str, stream: int, count: int, target_params: int) -> BranchFactory:
    """F / G recipe of a Type II stage: two 3x3 convs (the Basic block's recipe) where their inner width
    comes out at most twice the half stream, else the 1x1-3x3-1x1 bottleneck.

    Both are parameter- and FLOP-matched to the vanilla stage; the choice is about CPU / GPU efficiency:
    the two-conv branch has half the BatchNorm / ReLU passes, but on the narrow full-resolution stream
    of stage 1 (half = w/4) it would need an inner width of 2w, four times the stream.
    Measured per block, forward + backward, relative to the vanilla block (w=32, batch 2, 1 thread):
    stage 1: bottleneck 1.47, two-conv 1.82; stages 2-4: bottleneck 1.33 / 1.24 / 1.17, two-conv
    1.11 / 1.11 / 1.10.
    """
    if block == "bottleneck":
        return bottleneck_coupling_branch
    half = stream // 2
    inner = coupling_inner_width(basic_coupling_branch, half, round(target_params / count))
    return basic_coupling_branch if inner <= 2 * half else bottleneck_coupling_branch

def build_revnet(
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
) -> RevNet:
    """Build ``revnet{depth}_{rev_type}``; ``num_blocks`` overrides the blocks per stage."""
    block, default_blocks = RESNET_CONFIGS[depth]
    return RevNet(
        block,
        num_blocks or default_blocks,
        rev_type,
        feat_dim,
        embed_dim,
        base_width,
        store_activations,
        stream_dtype,
        keep_tail_activations,
    )


for _depth in RESNET_CONFIGS:
    for _rev_type in REV_TYPES:
        register_model(f"revnet{_depth}_{_rev_type}", partial(build_revnet, _depth, _rev_type))
