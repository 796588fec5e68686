"""Reversible core: invertible layers on a two-stream state and a memory-free autograd Function.

A reversible run is a sequence of :class:`InvertibleLayer` acting on a pair of streams (x1, x2), the two
channel halves of a (B, C, F, T) map:

* :class:`CouplingBlock` — additive coupling ``y1 = x1 + F(x2); y2 = x2 + G(y1)``, inverse
  ``x2 = y2 - G(y1); x1 = y1 - F(x2)``.
* :class:`SpaceToDepth` — invertible downsampling: each stream goes through ``pixel_unshuffle(2)``
  (freq and time halved, channels x4); its inverse is ``pixel_shuffle(2)``.

:class:`ReversibleSequence` runs such a sequence through ONE custom ``torch.autograd.Function`` per run:
forward runs under no_grad and saves only the run's output (with ``ctx.save_for_backward`` so that
``torch.autograd.graph.saved_tensors_hooks`` sees it); backward walks the layers in reverse, rebuilding
each layer's input from its output and recomputing F and G with grad enabled, and returns gradients
for the Function's inputs — the run input AND the parameters of every F and G (memcnn style). No
nested ``.backward()`` is called and nothing is accumulated into ``.grad`` behind autograd's back, so
DistributedDataParallel sees ordinary leaf gradients with or without ``find_unused_parameters``.

Faithfulness to plain autograd (all tested in ``tests/models/test_reversible.py``):

* BatchNorm running statistics (and ``num_batches_tracked``) of F and G are not touched by the
  recompute, so one training step updates them exactly once.
* RNG: when F or G contains randomness (dropout; auto-detected, or forced with ``preserve_rng_state``)
  the CPU (and CUDA, for CUDA tensors) generator state before each F and G call is saved and replayed
  inside ``torch.random.fork_rng`` during recompute, so the global RNG is not disturbed.
* Precision: the streams are held in ``stream_dtype`` (never less than the input dtype; the model
  zoo's default is fp32, as the method prescribes) while F and G compute in their parameters' dtype
  and may run under autocast (the forward's autocast state is re-entered for the recompute). With
  fp32 streams, rounding of ``x1 + F(x2)`` (eps * |y| per block) is amplified by F and G's Jacobians
  on the way back (they begin with conv + train-mode BN, so they are scale invariant and their
  Jacobian grows like 1 / |stream|): measured at init, thin nets, 1e-6 to 8e-3 relative gradient
  error against plain autograd (0.3% / 5% worst tensor for a full-depth ResNet34 Type II body). With
  fp64 streams (``stream_dtype=torch.float64``) each block's input is rebuilt to ~1e-16 relative, so
  its fp32 cast - what F and G see - is the forward's bit for bit and the gradients equal plain
  autograd's up to summation order (<= 1e-6); it costs 10-20% step time on CPU (stream-sized casts
  and fp64 adds) and 4 bytes per element of the run's output, kept as that fp32 output plus an fp32
  residual (hi + lo).
* BatchNorm recompute: running statistics are paused during the recompute by switching
  ``track_running_stats`` off (the module then uses batch statistics without updating its buffers),
  so nothing is cloned or copied back.

``store_activations=True`` (constructor argument and a plain attribute) runs the very same layers
with ordinary autograd: the reference for gradient tests, and a switch to trade memory for speed.
``stored_tail=k`` runs only the last k layers so (after the Function): worth it for cheap
low-resolution layers whose kept activations are smaller than one full-resolution recompute, which
the backward needs anyway; their recompute is saved (the models choose k, see ``revnet.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F_
from torch.autograd.function import once_differentiable

Tensor = torch.Tensor
RngState = tuple[Tensor, Tensor | None]


def _capture_rng(device: torch.device) -> RngState:
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda_state


@contextmanager
def _replayed_rng(state: RngState | None, device: torch.device) -> Iterator[None]:
    """Run the body with the RNG as it was at capture time; restore the current RNG afterwards."""
    if state is None:
        yield
        return
    cpu_state, cuda_state = state
    devices = [device] if cuda_state is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)
        yield


def _tracking_batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]


@contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Restore every BatchNorm running statistic of ``module`` after the body (a recompute) ran.

    Snapshot-and-restore keeps the recompute's ops identical to the forward's, which
    ``torch.utils.checkpoint`` checks; the reversible backward uses :func:`paused_running_stats`.
    """
    buffers = [
        b
        for m in _tracking_batchnorms(module)
        for b in (m.running_mean, m.running_var, m.num_batches_tracked)
        if b is not None
    ]
    with torch.no_grad():
        saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in zip(buffers, saved):
                buf.copy_(value)


@contextmanager
def paused_running_stats(module: nn.Module) -> Iterator[None]:
    """Inside the body, BatchNorms of ``module`` in training mode normalise with batch statistics as
    usual but do not update running_mean / running_var / num_batches_tracked (nothing is copied)."""
    norms = _tracking_batchnorms(module)
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _param_dtype(module: nn.Module) -> torch.dtype | None:
    """dtype of the module's first parameter (the dtype its computations run in), None without any."""
    for p in module.parameters():
        return p.dtype
    return None


def has_randomness(module: nn.Module) -> bool:
    """True when ``module`` contains a dropout layer with p > 0."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in module.modules())


class InvertibleLayer(nn.Module):
    """A layer on two streams that can be inverted and can back-propagate from its output alone."""

    pixel_factor = 1.0  # output pixels per input pixel (freq x time)

    def activation_channels(self) -> int:
        """What plain autograd would keep for this layer, in channels at its input resolution (an
        estimate for budgeting: the BatchNorm widths inside; 0 for reshapes)."""
        return sum(m.num_features for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_recorded(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor, Any]:
        """Forward without graph, returning what the recompute needs to replay it exactly."""
        y1, y2 = self.forward(x1, x2)
        return y1, y2, None

    def backward_step(
        self, y1: Tensor, y2: Tensor, gy1: Tensor, gy2: Tensor, record: Any
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor | None]]:
        """Rebuild (x1, x2) from (y1, y2); return them, their gradients and the parameter gradients."""
        raise NotImplementedError  # pragma: no cover - abstract


def _branch_activation_channels(fn: nn.Module) -> int:
    channels, last_norm = 0, 0
    for m in fn.modules():
        if isinstance(m, nn.Conv2d) and channels == 0:
            channels = m.in_channels
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            channels += m.num_features
            last_norm = m.num_features
        elif isinstance(m, nn.ReLU):
            channels += last_norm
    return channels


class CouplingBlock(InvertibleLayer):
    """Additive coupling: y1 = x1 + F(x2); y2 = x2 + G(y1). F maps x2's shape to x1's, G vice versa.

    F and G see their input cast to their parameters' dtype; the sums stay in the streams' dtype
    (type promotion: an fp64 stream plus an fp32 or bf16 branch output is fp64).
    """

    def __init__(self, f: nn.Module, g: nn.Module, preserve_rng_state: bool | None = None) -> None:
        super().__init__()
        self.f = f
        self.g = g
        self.preserve_rng_state = (
            has_randomness(self) if preserve_rng_state is None else preserve_rng_state
        )

    def activation_channels(self) -> int:
        """Per branch (F and G), the stream half its first conv keeps, every BatchNorm's input and the
        output of a ReLU that follows one; the larger branch counts, as the backward rebuilds and
        releases F and G one after the other."""
        return max(_branch_activation_channels(fn) for fn in (self.f, self.g))

    @staticmethod
    def _branch(fn: nn.Module, x: Tensor) -> Tensor:
        dtype = _param_dtype(fn)
        return fn(x if dtype is None or x.dtype == dtype else x.to(dtype))

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        # x1, x2: (B, C/2, F, T)
        y1 = x1 + self._branch(self.f, x2)
        y2 = x2 + self._branch(self.g, y1)
        return y1, y2

    def inverse(self, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
        x2 = y2 - self._branch(self.g, y1)
        x1 = y1 - self._branch(self.f, x2)
        return x1, x2

    def forward_recorded(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor, Any]:
        rng_f = _capture_rng(x2.device) if self.preserve_rng_state else None
        y1 = x1 + self._branch(self.f, x2)
        rng_g = _capture_rng(y1.device) if self.preserve_rng_state else None
        y2 = x2 + self._branch(self.g, y1)
        return y1, y2, (rng_f, rng_g)

    @staticmethod
    def _recompute_grads(
        fn: nn.Module, inp: Tensor, grad_out: Tensor, rng: RngState | None
    ) -> tuple[Tensor, Tensor | None, list[Tensor | None]]:
        """Recompute fn(inp) with grad; return its value and vector-Jacobian products for inp and params."""
        params = [p for p in fn.parameters() if p.requires_grad]
        dtype = _param_dtype(fn) or inp.dtype
        with torch.enable_grad(), paused_running_stats(fn), _replayed_rng(rng, inp.device):
            leaf = inp.detach().to(dtype).requires_grad_(True)
            out = fn(leaf)
            grads = torch.autograd.grad(
                out, [leaf, *params], grad_out.to(out.dtype), allow_unused=True
            )
        by_param = dict(zip(map(id, params), grads[1:]))
        in_grad = None if grads[0] is None else grads[0].to(grad_out.dtype)
        return out.detach(), in_grad, [by_param.get(id(p)) for p in fn.parameters()]

    def backward_step(
        self, y1: Tensor, y2: Tensor, gy1: Tensor, gy2: Tensor, record: Any
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor | None]]:
        rng_f, rng_g = record
        # y2 = x2 + G(y1): rebuild x2, push gy2 through G into y1 and G's parameters.
        g_out, g_in_grad, g_param_grads = self._recompute_grads(self.g, y1, gy2, rng_g)
        with torch.no_grad():
            x2 = y2 - g_out
            del g_out
            gy1 = gy1 if g_in_grad is None else gy1 + g_in_grad
        # y1 = x1 + F(x2): rebuild x1, push the total gy1 through F into x2 and F's parameters.
        f_out, f_in_grad, f_param_grads = self._recompute_grads(self.f, x2, gy1, rng_f)
        with torch.no_grad():
            x1 = y1 - f_out
            del f_out
            gx2 = gy2 if f_in_grad is None else gy2 + f_in_grad
        return x1, x2, gy1, gx2, f_param_grads + g_param_grads


class SpaceToDepth(InvertibleLayer):
    """Invertible downsampling: each stream (B, C, F, T) -> (B, 4C, F/2, T/2) by pixel_unshuffle(2)."""

    factor = 2
    pixel_factor = 0.25

    def forward(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        freq, time = x1.shape[-2:]
        if freq % self.factor or time % self.factor:
            raise ValueError(
                f"SpaceToDepth needs even freq and time sizes, got {tuple(x1.shape)}; pad the input so "
                "that both are multiples of 2 ** (number of downsamplings)"
            )
        return F_.pixel_unshuffle(x1, self.factor), F_.pixel_unshuffle(x2, self.factor)

    def inverse(self, y1: Tensor, y2: Tensor) -> tuple[Tensor, Tensor]:
        return F_.pixel_shuffle(y1, self.factor), F_.pixel_shuffle(y2, self.factor)

    def backward_step(
        self, y1: Tensor, y2: Tensor, gy1: Tensor, gy2: Tensor, record: Any
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor | None]]:
        x1, x2 = self.inverse(y1, y2)
        gx1, gx2 = self.inverse(gy1, gy2)  # pixel_shuffle is a permutation: its adjoint is its inverse
        return x1, x2, gx1, gx2, []


class _ReversibleRunFunction(torch.autograd.Function):
    """forward(x, layers, stream_dtype, stream_out, *params) -> y; keeps only y. backward rebuilds
    inputs layer by layer. ``stream_out``: return y in the stream dtype (a stored tail follows)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        layers: tuple[InvertibleLayer, ...],
        stream_dtype: torch.dtype,
        stream_out: bool,
        *params: Tensor,
    ) -> Tensor:
        device_type = x.device.type
        ctx.autocast = (
            device_type,
            torch.get_autocast_dtype(device_type),
            torch.is_autocast_enabled(device_type),
        )
        ctx.layers = layers
        x1, x2 = x.to(stream_dtype).chunk(2, dim=1)  # (B, C/2, F, T) each
        records = []
        for layer in layers:
            x1, x2, record = layer.forward_recorded(x1, x2)
            records.append(record)
        ctx.records = records
        y = torch.cat((x1, x2), dim=1)  # (B, C', F', T'), stream dtype
        del x1, x2
        ctx.grad_dtype = x.dtype
        if y.dtype == x.dtype or stream_out:
            ctx.save_for_backward(y)
            return y
        hi = y.to(x.dtype)  # what the rest of the net sees
        lo = (y - hi).to(x.dtype)  # y == hi + lo to ~2**-48 relative (a bf16 lo measured 3e-3 grad error)
        ctx.save_for_backward(hi, lo)
        ctx.stream_dtype = y.dtype
        return hi

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        saved = ctx.saved_tensors
        y = saved[0] if len(saved) == 1 else saved[0].to(ctx.stream_dtype) + saved[1]
        y1, y2 = y.detach().chunk(2, dim=1)
        del y, saved
        g1, g2 = grad_y.to(ctx.grad_dtype).chunk(2, dim=1)  # gradient streams: the input dtype
        device_type, dtype, enabled = ctx.autocast
        param_grads: list[list[Tensor | None]] = []
        with torch.autocast(device_type=device_type, dtype=dtype, enabled=enabled):
            for layer, record in zip(reversed(ctx.layers), reversed(ctx.records)):
                y1, y2, g1, g2, grads = layer.backward_step(y1, y2, g1, g2, record)
                param_grads.append(grads)
        flat = [g for grads in reversed(param_grads) for g in grads]
        grad_x = torch.cat((g1, g2), dim=1) if ctx.needs_input_grad[0] else None
        return (grad_x, None, None, None, *flat)


class ReversibleSequence(nn.Module):
    """A run of invertible layers on a (B, C, F, T) map split into two channel halves.

    In training mode with grad enabled only the run's output is kept for backward, unless
    ``store_activations`` is True, in which case ordinary autograd runs the same layers with the same
    stream dtype, and except the last ``stored_tail`` layers, which always run with ordinary autograd. ``stream_dtype`` (None: the input's) is used in training and is never narrower than
    the input; in eval mode or without grad (evaluation, TorchScript / ONNX export) the streams keep the
    input dtype and the forward is plain tensor ops.
    """

    def __init__(
        self,
        layers: Sequence[InvertibleLayer],
        store_activations: bool = False,
        stream_dtype: torch.dtype | None = None,
        stored_tail: int = 0,
        input_pixels: float = 1.0,
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("ReversibleSequence needs at least one layer, got an empty sequence")
        for layer in layers:
            if not isinstance(layer, InvertibleLayer):
                raise TypeError(f"ReversibleSequence layers must be InvertibleLayer, got {type(layer).__name__}")
        if stream_dtype is not None and not stream_dtype.is_floating_point:
            raise ValueError(f"stream_dtype must be a floating-point dtype, got {stream_dtype}")
        self.layers = nn.ModuleList(layers)
        self.store_activations = store_activations
        self.stream_dtype = stream_dtype
        self.stored_tail = stored_tail
        self.input_pixels = input_pixels  # input resolution relative to the network's largest map

    @property
    def stored_tail(self) -> int:
        """How many trailing layers run with ordinary autograd after the reversible Function."""
        return self._stored_tail

    @stored_tail.setter
    def stored_tail(self, value: int) -> None:
        if not 0 <= value < len(self.layers):
            raise ValueError(
                f"stored_tail must be in [0, {len(self.layers) - 1}] for a run of {len(self.layers)} "
                f"layers (at least one layer stays reversible), got {value}"
            )
        self._stored_tail = value

    def activation_footprints(self) -> list[float]:
        """Per layer, its :meth:`InvertibleLayer.activation_channels` times its input pixels (relative to
        the network's largest map): what keeping its activations would cost, in relative units."""
        pixels, out = self.input_pixels, []
        for layer in self.layers:
            out.append(pixels * layer.activation_channels())
            pixels *= layer.pixel_factor
        return out

    def _check_channels(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] % 2:
            raise ValueError(f"ReversibleSequence expects (B, C, F, T) with even C, got {tuple(x.shape)}")

    @staticmethod
    def _plain(layers: Sequence[InvertibleLayer], x: Tensor) -> Tensor:
        x1, x2 = x.chunk(2, dim=1)
        for layer in layers:
            x1, x2 = layer(x1, x2)
        return torch.cat((x1, x2), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, F, T) -> (B, C', F', T')
        self._check_channels(x)
        params = list(self.parameters())
        needs_graph = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
        if not (needs_graph and self.training):
            return self._plain(self.layers, x)  # evaluation / export: plain tensor ops, input dtype
        stream = x.dtype if self.stream_dtype is None else torch.promote_types(x.dtype, self.stream_dtype)
        if self.store_activations:
            return self._plain(self.layers, x.to(stream)).to(x.dtype)
        split = len(self.layers) - self.stored_tail
        head, tail = tuple(self.layers[:split]), tuple(self.layers[split:])
        params = [p for layer in head for p in layer.parameters()]
        y = _ReversibleRunFunction.apply(x, head, stream, bool(tail), *params)
        return self._plain(tail, y).to(x.dtype) if tail else y  # the tail runs on the streams as well

    def inverse(self, y: Tensor) -> Tensor:
        """Rebuild the run's input from its output (exact up to floating-point rounding)."""
        self._check_channels(y)
        y1, y2 = y.chunk(2, dim=1)
        for layer in reversed(self.layers):
            y1, y2 = layer.inverse(y1, y2)
        return torch.cat((y1, y2), dim=1)


def set_store_activations(model: nn.Module, store: bool) -> None:
    """Flip ``store_activations`` on every ReversibleSequence inside ``model``."""
    for module in model.modules():
        if isinstance(module, ReversibleSequence):
            module.store_activations = store
