"""Training-memory report: bytes predicted before training, and the peak measured on a real training step.

Prediction (:func:`predict_training_memory`): one training step is measured with
:func:`sv_toolkit.training.memory.measure_training_step` (``saved_tensors_hooks`` for the activations autograd
keeps; the live-storage tracker on CPU, ``max_memory_allocated`` on CUDA, for the peak) on copies of the model,
head and optimizer, at two small probe batches b1 < b2 (4 and 8) with the configured chunk length and precision,
after an unreported warm-up step, so that the optimizer states exist as they do in steady state. Weights,
gradients and optimizer states do not depend on the batch. Saved activations are affine in it (every activation
is batch x something, plus batch-independent parts such as bf16 copies of the weights). The peak is the maximum
over the step of live bytes, each affine in the batch, so it is convex and piecewise linear in the batch: the
probes must lie on its last piece, where batch-dependent tensors dominate. Below 4 samples they often do not
(measured: RevNet34 Type II at 200 frames peaks at the same 62 MiB above its weights for batches 1 and 2, then
grows 19.3 MiB per sample from 4 on), hence probes of 4 and 8. The two probes give intercept and slope, which are
extrapolated to the micro-batch. Real small steps rather than a meta-device trace, because what the reversible
autograd Function and the conv kernels allocate only shows when they run; the cost is three steps of 4, 4 and 8
samples.

Measurement (:class:`StepMemoryMeter`): the same accounting around one real step of the training loop (with
DDP, autocast, accumulation and clipping as configured).
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from sv_toolkit.training.memory import (LiveStorageTracker, MemoryReport, measure_training_step,
                                        optimizer_state_bytes, tensor_bytes)
from sv_toolkit.training.step import SpeakerNet

PROBE_BATCHES = (4, 8)


@dataclass(frozen=True)
class MemoryPrediction:
    """Predicted bytes of one training step at ``batch`` samples per micro-batch."""

    batch: int
    probe_batches: tuple[int, int]
    weights: int
    grads: int
    optimizer_states: int
    activations_saved: int
    peak_live: int

    def components(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k not in ("batch", "probe_batches")}


class _FixedLabels(nn.Module):
    def __init__(self, net: SpeakerNet, labels: torch.Tensor) -> None:
        super().__init__()
        self.net, self.labels = net, labels

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats, self.labels)[0]


def measure_steady_steps(
    net: SpeakerNet, optimizer_factory: Callable[..., torch.optim.Optimizer], batches: tuple[int, ...],
    chunk_frames: int, feat_dim: int, num_classes: int, device: torch.device,
) -> list[MemoryReport]:
    """Memory of a training step of a copy of ``net`` at each of ``batches`` (random (b, chunk_frames,
    feat_dim) inputs), after one unreported warm-up step that creates the optimizer states."""
    net_copy = copy.deepcopy(net).to(device).train()
    optimizer = optimizer_factory(params=list(net_copy.parameters()))
    g = torch.Generator().manual_seed(0)  # off the global RNG: training does not depend on this report
    reports = []
    for i, batch in enumerate((batches[0], *batches)):
        feats = torch.randn(batch, chunk_frames, feat_dim, generator=g).to(device)  # (B, T, F)
        labels = torch.randint(num_classes, (batch,), generator=g).to(device)
        report = measure_training_step(_FixedLabels(net_copy, labels), lambda loss: loss, feats, optimizer)
        if i > 0:
            reports.append(report)
    del net_copy, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return reports


def predict_training_memory(
    net: SpeakerNet,
    optimizer_factory: Callable[..., torch.optim.Optimizer],
    batch: int,
    chunk_frames: int,
    feat_dim: int,
    num_classes: int,
    device: torch.device,
    probe_batches: tuple[int, int] = PROBE_BATCHES,
) -> MemoryPrediction:
    """Predict one training step's memory at ``batch`` from two probe batches (see the module docstring).

    ``net`` is not modified; run this before moving it to a CUDA device, or the CUDA peak includes it.
    At ``batch <= probe_batches[1]`` the step is measured at ``batch`` itself.
    """
    b1, b2 = probe_batches
    if not 1 <= b1 < b2:
        raise ValueError(f"probe batches must satisfy 1 <= b1 < b2, got {probe_batches}")
    if batch <= b2:
        (r,) = measure_steady_steps(net, optimizer_factory, (batch,), chunk_frames, feat_dim, num_classes, device)
        return MemoryPrediction(batch, (batch, batch), r.weights, r.grads, r.optimizer_states,
                                r.activations_saved, r.peak_live)
    r1, r2 = measure_steady_steps(net, optimizer_factory, (b1, b2), chunk_frames, feat_dim, num_classes, device)

    def extrapolate(v1: int, v2: int) -> int:
        return int(round(v1 + (v2 - v1) * (batch - b1) / (b2 - b1)))

    return MemoryPrediction(
        batch, (b1, b2), r2.weights, r2.grads, r2.optimizer_states,
        extrapolate(r1.activations_saved, r2.activations_saved), extrapolate(r1.peak_live, r2.peak_live),
    )


class StepMemoryMeter:
    """Measures the memory of real training steps; the latest measurement is in ``report``.

    CPU: peak of live tensor storage from a baseline of weights, buffers, optimizer states and (under DDP,
    whose gradient buckets persist between steps) gradients; CUDA: ``max_memory_allocated`` over the step.
    Gradients must have been cleared (set to None) before the measured step.
    """

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 persistent_grads: bool = False) -> None:
        self.net, self.optimizer, self.device = net, optimizer, device
        self.persistent_grads = persistent_grads
        self.report: MemoryReport | None = None
        self._activations = 0

    @contextlib.contextmanager
    def forward(self) -> Iterator[None]:
        """Wrap one micro-batch's forward: counts the bytes autograd saves for its backward."""
        param_storages = {p.untyped_storage().data_ptr() for p in self.net.parameters()}
        saved: list[torch.Tensor] = []

        def pack(t: torch.Tensor) -> torch.Tensor:
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield
        nbytes = tensor_bytes([t for t in saved if t.untyped_storage().data_ptr() not in param_storages])
        saved.clear()  # or the list would keep every saved tensor alive through backward (and count in the peak)
        self._activations = max(self._activations, nbytes)

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        """Wrap one whole training step (pass :meth:`forward` to it for the saved-activation count)."""
        params = list(self.net.parameters())
        weights = tensor_bytes(params + list(self.net.buffers()))
        grads_before = tensor_bytes(params) if self.persistent_grads else 0
        self._activations = 0
        cuda = self.device.type == "cuda"
        tracker = None
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            states = [v for st in self.optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
            existing = params + list(self.net.buffers()) + states + ([p.grad for p in params if p.grad is not None]
                                                                      if self.persistent_grads else [])
            tracker = LiveStorageTracker(weights + optimizer_state_bytes(self.optimizer) + grads_before, existing)
        with tracker if tracker is not None else contextlib.nullcontext():
            yield
        peak = torch.cuda.max_memory_allocated(self.device) if cuda else tracker.peak  # type: ignore[union-attr]
        self.report = MemoryReport(
            weights, tensor_bytes([p.grad for p in params if p.grad is not None]),
            optimizer_state_bytes(self.optimizer), self._activations, int(peak),
        )
