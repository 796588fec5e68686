"""Memory accounting of one training step: weights, gradients, optimizer states and activations.

- activations_saved: bytes of the unique storages autograd saves for backward during the forward pass
  (``torch.autograd.graph.saved_tensors_hooks``), which is what activation-saving methods reduce.
  Tensors a custom autograd Function keeps with ``ctx.save_for_backward`` (the reversible runs' outputs)
  and the inputs ``torch.utils.checkpoint`` keeps go through the same hooks and are counted.
- peak_live: on CPU, the peak of all live tensor storages created during forward + backward + step,
  tracked by a ``TorchDispatchMode`` that adds each new storage's bytes and subtracts them when the storage
  is freed; on CUDA, ``torch.cuda.max_memory_allocated`` over the step. Pre-existing weights are included
  in both.

Per-sample activation bytes (:func:`measure_activation_slope`): the peak at two batch sizes, after a warm-up
step; their difference divided by the batch difference is what each extra sample costs, while everything that
does not depend on the batch (weights, gradients, optimizer states, their transient buffers) cancels.
"""
from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class MemoryReport:
    weights: int
    grads: int
    optimizer_states: int
    activations_saved: int
    peak_live: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def tensor_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of the unique storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor held in the optimizer's per-parameter state (step counters included)."""
    return tensor_bytes([v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)])


class LiveStorageTracker(TorchDispatchMode):
    """Tracks the bytes of tensor storages created inside the mode that are still alive, and their peak.

    ``existing``: tensors already counted in ``baseline`` (weights, buffers, optimizer states); an op
    that returns a view of one of them (``t()``, ``detach()`` of a weight) does not count it again.
    """

    def __init__(self, baseline: int = 0, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live = baseline
        self.peak = baseline
        self._tracked: set[int] = set()
        self._existing = {t.untyped_storage().data_ptr() for t in existing if t.device.type != "meta"}

    def _release(self, key: int, nbytes: int) -> None:
        self._tracked.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = id(st)
                if key in self._tracked or st.nbytes() == 0 or st.data_ptr() in self._existing:
                    continue
                self._tracked.add(key)
                self.live += st.nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(st, self._release, key, st.nbytes())
        return out


def measure_training_step(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    feats: torch.Tensor,
    optimizer: torch.optim.Optimizer | None,
) -> MemoryReport:
    """Run forward (``loss_fn(model(feats))``), backward and an optimizer step, and account their memory.

    Gradients of ``model``'s parameters are cleared before and left set afterwards.
    """
    params = [p for p in model.parameters()] + [p for p in getattr(loss_fn, "parameters", lambda: [])()]
    for p in params:
        p.grad = None
    weights = tensor_bytes(params + list(model.buffers()))
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    cuda = feats.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        tracker = None
    else:
        states = [v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)] if optimizer else []
        tracker = LiveStorageTracker(
            baseline=weights + (optimizer_state_bytes(optimizer) if optimizer else 0),
            existing=params + list(model.buffers()) + states,
        )
        tracker.__enter__()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(model(feats))
        param_storages = {p.untyped_storage().data_ptr() for p in params}
        activations = tensor_bytes([t for t in saved if t.untyped_storage().data_ptr() not in param_storages])
        saved.clear()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        del loss
    finally:
        if tracker is not None:
            tracker.__exit__(None, None, None)
    peak = torch.cuda.max_memory_allocated() if cuda else tracker.peak
    grads = tensor_bytes([p.grad for p in params if p.grad is not None])
    states = optimizer_state_bytes(optimizer) if optimizer is not None else 0
    return MemoryReport(weights, grads, states, activations, int(peak))


@dataclass(frozen=True)
class ActivationSlope:
    """Peak and saved-for-backward bytes at two batch sizes and what one more sample adds to each."""

    batches: tuple[int, int]
    peak_live: tuple[int, int]
    activations_saved: tuple[int, int]
    report: MemoryReport  # the step at the larger batch (weights, grads, optimizer states are exact)

    @property
    def peak_per_sample(self) -> float:
        """Bytes of peak live memory per sample: the activation cost of training."""
        return (self.peak_live[1] - self.peak_live[0]) / (self.batches[1] - self.batches[0])

    @property
    def saved_per_sample(self) -> float:
        """Saved-for-backward bytes per sample."""
        return (self.activations_saved[1] - self.activations_saved[0]) / (self.batches[1] - self.batches[0])

    def total_bytes(self, batch: int) -> float:
        """Weights + gradients + optimizer states + ``batch`` samples' activations (peak slope)."""
        r = self.report
        return r.weights + r.grads + r.optimizer_states + batch * self.peak_per_sample

    def as_dict(self) -> dict[str, object]:
        return {
            "batches": list(self.batches),
            "peak_live": list(self.peak_live),
            "activations_saved": list(self.activations_saved),
            "peak_per_sample": self.peak_per_sample,
            "saved_per_sample": self.saved_per_sample,
        }


def measure_activation_slope(
    model: nn.Module,
    loss_for_batch: Callable[[int], Callable[[torch.Tensor], torch.Tensor]],
    feats_for_batch: Callable[[int], torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    batches: tuple[int, int] = (2, 4),
) -> ActivationSlope:
    """Per-sample activation bytes as the slope of the peak between two batch sizes.

    ``loss_for_batch(b)`` returns the loss function for a batch of ``b`` (labels depend on it) and
    ``feats_for_batch(b)`` the input. A warm-up step at the smaller batch runs first, so that lazily
    created optimizer states and first-step buffers exist in both measured steps and cancel. Pass
    ``optimizer=None`` for activation figures: an optimizer step's transient buffers (weight-sized)
    do not depend on the batch but can exceed small batches' activations and flatten the slope.
    """
    small, large = batches
    if not 0 < small < large:
        raise ValueError(f"batches must be two increasing positive sizes, got {batches}")
    measure_training_step(model, loss_for_batch(small), feats_for_batch(small), optimizer)
    first = measure_training_step(model, loss_for_batch(small), feats_for_batch(small), optimizer)
    second = measure_training_step(model, loss_for_batch(large), feats_for_batch(large), optimizer)
    return ActivationSlope(
        (small, large),
        (first.peak_live, second.peak_live),
        (first.activations_saved, second.activations_saved),
        second,
    )
