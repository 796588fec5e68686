"""Multi-tensor batching for the 8-bit step: pack many parameters into fixed-size flat workspaces.

The 8-bit update runs on one flat fp32 workspace ("chunk") at a time instead of once per parameter, so a
step costs a few dozen large vectorised ops per chunk whatever the number of tensors, and the transient
fp32 memory is bounded by the chunk size instead of the model size. Every parameter segment starts on a
block boundary of the workspace, so the workspace's blocks are exactly the parameters' blocks; the tail
of a ragged last block is padding that holds zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

DEFAULT_CHUNK_SIZE = 1 << 20  # elements per workspace: about 30 MB of transient buffers


@dataclass(frozen=True)
class Segment:
    """Elements [start, start + length) of parameter ``index`` live at workspace offset ``offset``."""

    index: int
    start: int
    length: int
    offset: int
    whole: bool  # the segment is the whole parameter (start 0, all its elements)


@dataclass
class Chunk:
    """One workspace load: its segments in workspace order and the used length (whole blocks).

    :meth:`finish` precomputes what every step needs, so that a step slices with a few ``torch.split``
    calls instead of one Python slice per segment and buffer.
    """

    segments: list[Segment] = field(default_factory=list)
    used: int = 0
    split_sizes: list[int] = field(default_factory=list)  # segment, padding, segment, padding, ... lengths
    block_counts: list[int] = field(default_factory=list)  # blocks (absmax entries) of each segment
    src_slices: list[slice | None] = field(default_factory=list)  # None: the whole parameter
    src_blocks: list[slice | None] = field(default_factory=list)
    blocks: int = 0

    def finish(self, block_size: int) -> None:
        """Precompute the split sizes and source slices used at every step."""
        self.split_sizes, self.block_counts = [], []
        for seg in self.segments:
            padded = -(-seg.length // block_size) * block_size
            self.split_sizes += [seg.length, padded - seg.length]
            self.block_counts.append(padded // block_size)
        self.src_slices = [None if s.whole else slice(s.start, s.start + s.length) for s in self.segments]
        self.src_blocks = [None if s.whole else slice(s.start // block_size, -(-(s.start + s.length) // block_size))
                           for s in self.segments]
        self.blocks = self.used // block_size

    def segment_views(self, buffer: torch.Tensor) -> list[torch.Tensor]:
        """Views of the segments in a workspace buffer (n >= used elements), in segment order."""
        return list(torch.split(buffer[: self.used], self.split_sizes)[0::2])

    def block_views(self, absmax: torch.Tensor) -> list[torch.Tensor]:
        """Views of the segments' blocks in a workspace absmax buffer, in segment order."""
        return list(torch.split(absmax[: self.blocks], self.block_counts))

    def source_views(self, flats: list[torch.Tensor]) -> list[torch.Tensor]:
        """The segments' elements of flat per-parameter tensors (``flats[segment.index]``)."""
        return [flats[s.index] if sl is None else flats[s.index][sl] for s, sl in zip(self.segments, self.src_slices)]

    def source_block_views(self, absmaxes: list[torch.Tensor]) -> list[torch.Tensor]:
        """The segments' blocks of per-parameter absmax tensors (``absmaxes[segment.index]``)."""
        return [absmaxes[s.index] if sl is None else absmaxes[s.index][sl]
                for s, sl in zip(self.segments, self.src_blocks)]

    def gather_(self, flats: list[torch.Tensor], out: torch.Tensor, padding: Callable[[int], torch.Tensor]) -> None:
        """Copy the segments of ``flats`` into ``out`` (workspace order, casting to its dtype), padding between."""
        parts: list[torch.Tensor] = []
        for view, pad in zip(self.source_views(flats), self.split_sizes[1::2]):
            parts.append(view)
            if pad:
                parts.append(padding(pad))
        torch.cat(parts, out=out[: self.used])


def plan_chunks(numels: list[int], block_size: int, chunk_size: int) -> list[Chunk]:
    """Split parameters of ``numels`` elements into chunks of at most ``chunk_size`` block-aligned elements.

    A parameter larger than a chunk is split at block boundaries; small ones share chunks. When more than
    one chunk is needed, all get about the same length (the compiled step always runs a whole workspace).
    """
    if chunk_size < block_size:
        raise ValueError(f"chunk_size ({chunk_size}) must be at least block_size ({block_size})")
    capacity = chunk_size - chunk_size % block_size
    total = sum(-(-n // block_size) * block_size for n in numels)
    if total > capacity:  # balance: k equal chunks instead of k - 1 full ones and a short remainder
        count = -(-total // capacity)
        capacity = -(-total // (count * block_size)) * block_size
    chunks: list[Chunk] = [Chunk()]
    for index, numel in enumerate(numels):
        start = 0
        while start < numel:
            current = chunks[-1]
            space = capacity - current.used
            if space < block_size:
                chunks.append(Chunk())
                continue
            length = min(numel - start, space)
            current.segments.append(Segment(index, start, length, current.used, length == numel))
            current.used += -(-length // block_size) * block_size
            start += length
    chunks = [c for c in chunks if c.segments]
    for chunk in chunks:
        chunk.finish(block_size)
    return chunks


class Workspace:
    """Reusable flat buffers for one chunk.

    ``grad`` (fp32 gradient), ``update`` (fp32 scratch of the update; int32 scratch of the encoder
    afterwards), per state ``values`` (fp32), ``codes`` (int32: the decoder's index, then the encoder's
    scratch or output) and ``absmax`` (one fp32 per block), and ``low`` (fp32 per block, for signed absmax).
    """

    def __init__(self, size: int, block_size: int, state_names: tuple[str, ...], device: torch.device) -> None:
        self.size, self.block_size, self.device = size, block_size, device
        f32 = dict(dtype=torch.float32, device=device)
        self.grad = torch.zeros(size, **f32)
        self.update = torch.zeros(size, **f32)
        self.values = {name: torch.zeros(size, **f32) for name in state_names}
        self.codes = {name: torch.zeros(size, dtype=torch.int32, device=device) for name in state_names}
        self.absmax = {name: torch.ones(size // block_size, **f32) for name in state_names}
        self.low = torch.zeros(size // block_size, **f32)
        self._pads: dict[tuple[int, torch.dtype, float], torch.Tensor] = {}

    def padding(self, length: int, dtype: torch.dtype, fill: float) -> torch.Tensor:
        """A cached constant tensor of ``length`` elements used to fill block padding."""
        key = (length, dtype, fill)
        if key not in self._pads:
            self._pads[key] = torch.full((length,), fill, dtype=dtype, device=self.device)
        return self._pads[key]

    def nbytes(self) -> int:
        """Bytes held by the workspace buffers."""
        tensors = [self.grad, self.update, self.low, *self.values.values(), *self.codes.values(),
                   *self.absmax.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


def flat_view(tensor: torch.Tensor) -> torch.Tensor:
    """1-D view of a tensor's elements in memory order (contiguous or any dense layout, e.g. channels_last)."""
    if tensor.is_contiguous():
        return tensor.view(-1)
    if _is_dense(tensor):
        return tensor.as_strided((tensor.numel(),), (1,), tensor.storage_offset())
    raise ValueError(f"8-bit optimizer states need a dense tensor; got shape {tuple(tensor.shape)} "
                     f"with strides {tensor.stride()}: make the parameter contiguous")


def _is_dense(tensor: torch.Tensor) -> bool:
    """True when the tensor's elements fill a contiguous memory range without overlap (any dim order)."""
    dims = sorted((s, n) for s, n in zip(tensor.stride(), tensor.shape) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def grad_flat_view(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """1-D view of ``grad`` in the memory order of ``param`` (copies only if their layouts differ)."""
    if grad.stride() != param.stride():
        aligned = torch.empty_like(param, dtype=grad.dtype)
        aligned.copy_(grad)
        grad = aligned
    return flat_view(grad)
