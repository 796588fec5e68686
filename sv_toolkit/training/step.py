"""One optimizer step over micro-batches: mixed precision, DDP gradient sync, clipping, non-finite guard.

Gradient accumulation: each micro-batch's mean loss is weighted by its share of the step's samples, so the
accumulated gradient is the gradient of the mean loss over the whole step batch, as one large batch would give
up to float rounding. BatchNorm is the exception: in training mode it normalises with the statistics of the
micro-batch it sees, so k micro-batches of B/k are not one batch of B (the same holds for B/k per DDP process,
since plain BatchNorm is not synchronised across processes), and its running statistics are updated once per
micro-batch.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, ContextManager, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sv_toolkit.training.distributed import DistEnv, all_reduce_sum

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``trainer.precision`` (None = fp32, no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision={precision!r}; choose one of {sorted(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            "trainer.precision=fp16 needs a CUDA device (fp16 training depends on GradScaler's loss scaling, "
            "which is CUDA only here); use trainer.precision=bf16 on CPU"
        )
    return PRECISIONS[precision]


def make_grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (dynamic scaling, skips steps with inf / NaN gradients); None otherwise."""
    autocast_dtype(precision, device)
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


class SpeakerNet(nn.Module):
    """Embedding model and classification head as one module, so that one DDP wrapper covers both.

    The model runs under autocast when ``autocast_dtype`` is set; the head always runs in fp32 (the
    margin is applied to cosines, which bf16's 8-bit mantissa would blur).
    """

    def __init__(self, model: nn.Module, head: nn.Module, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model, self.head, self.autocast_dtype = model, head, autocast_dtype

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features, (B,) labels -> (mean loss, logits (B, C))."""
        device_type = feats.device.type
        if self.autocast_dtype is None:
            autocast = contextlib.nullcontext()
        else:
            autocast = torch.autocast(device_type, dtype=self.autocast_dtype)
        with autocast:
            embeddings = self.model(feats)  # (B, D)
        with torch.autocast(device_type, enabled=False):
            return self.head(embeddings.float(), labels)


class NonFiniteError(RuntimeError):
    """The loss or the gradient norm of a step is NaN or Inf (nothing was applied to the weights)."""

    def __init__(self, what: str, value: float) -> None:
        super().__init__(f"{what} is {value}")
        self.what, self.value = what, value


@dataclass(frozen=True)
class StepResult:
    loss: float          # mean over the step's samples of every process
    accuracy: float      # same samples, logits with the margin applied (as wespeaker reports it)
    samples: int         # samples of every process
    grad_norm: float     # L2 norm of all gradients before clipping (after unscaling)
    skipped: bool        # fp16: the scaler skipped the update (inf / NaN gradients)


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    env: DistEnv,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    forward_context: Callable[[], ContextManager[None]] = contextlib.nullcontext,
) -> StepResult:
    """Forward / backward every micro-batch, then one optimizer step. Gradients must be cleared beforehand.

    Raises :class:`NonFiniteError` before touching the weights when the loss (any process) or, without a
    scaler, the gradient norm is not finite; every process sees the same values, so all raise together.
    ``forward_context`` wraps each micro-batch's forward (the memory meter counts saved activations there).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    n_local = sum(int(labels.shape[0]) for _, labels in micro_batches)
    stats = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, samples
    for k, (feats, labels) in enumerate(micro_batches):
        feats = feats.to(device, non_blocking=True)  # (b, T, F)
        labels = labels.to(device, non_blocking=True)  # (b,)
        last = k == len(micro_batches) - 1
        no_sync = isinstance(net, DistributedDataParallel) and not last
        with net.no_sync() if no_sync else contextlib.nullcontext():
            with forward_context():
                loss, logits = net(feats, labels)
            weighted = loss * (labels.shape[0] / n_local)
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
        with torch.no_grad():
            stats[0] += loss.detach().double() * labels.shape[0]
            stats[1] += (logits.argmax(dim=1) == labels).sum()
            stats[2] += labels.shape[0]
    loss_sum, correct, samples = all_reduce_sum(env, stats).tolist()
    mean_loss = loss_sum / samples
    if not math.isfinite(mean_loss):
        raise NonFiniteError("the loss", mean_loss)
    if scaler is not None:
        scaler.unscale_(optimizer)
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if grad_clip > 0:
        torch.nn.utils.clip_grads_with_norm_(params, grad_clip, norm)
    grad_norm = float(norm)
    skipped = False
    if scaler is not None:
        skipped = not math.isfinite(grad_norm)
        scaler.step(optimizer)  # skips the update itself on inf / NaN gradients
        scaler.update()
    elif not math.isfinite(grad_norm):
        raise NonFiniteError("the gradient norm", grad_norm)
    else:
        optimizer.step()
    return StepResult(mean_loss, correct / samples, int(samples), grad_norm, skipped)
