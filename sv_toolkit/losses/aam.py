"""Margin-based softmax heads: AAM-softmax (ArcFace) and plain softmax, with a margin scheduler."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax: logits s * cos(theta + m) for the target class, s * cos(theta) otherwise.

    Where theta + m would pass pi (cos(theta) < cos(pi - m)), the target logit falls back to
    s * (cos(theta) - m * sin(m)) so that it stays monotonic (the ArcFace / wespeaker convention).
    """

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)
        self.margin = margin

    def update_margin(self, margin: float) -> None:
        self.margin = float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) embeddings, (B,) labels -> (loss, logits (B, C))."""
        cosine = F.linear(F.normalize(embeddings.float()), F.normalize(self.weight.float()))  # (B, C)
        m = self.margin
        sine = torch.sqrt((1.0 - cosine.pow(2)).clamp(min=1e-7))
        phi = cosine * math.cos(m) - sine * math.sin(m)
        phi = torch.where(cosine > math.cos(math.pi - m), phi, cosine - math.sin(math.pi - m) * m)
        one_hot = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        logits = self.scale * (one_hot * phi + (1.0 - one_hot) * cosine)
        return F.cross_entropy(logits, labels), logits


class MarginScheduler:
    """wespeaker's margin schedule (``MarginScheduler``, ``increase_type: exp``), evaluated every step.

    Epochs are 1-based as in wespeaker's configs: the margin is ``initial`` until epoch ``start_epoch``
    begins, rises exponentially until epoch ``end_epoch`` begins and is ``final`` from then on. In between, at
    progress p in [0, 1) (training steps since the ramp began over the ramp's steps),
    margin = initial + (final - initial) * (1 - (1e-3 / (1 + 1e-6)) ** p), wespeaker's formula, which reaches
    99.9% of the way before it jumps to ``final``. wespeaker's VoxCeleb ResNet: 0 -> 0.2, epochs 20 to 40.
    """

    def __init__(self, head: nn.Module, initial: float, final: float, start_epoch: float, end_epoch: float) -> None:
        if start_epoch < 1:
            raise ValueError(f"margin start_epoch is 1-based (the first epoch is 1), got {start_epoch}")
        if end_epoch < start_epoch:
            raise ValueError(f"margin end_epoch ({end_epoch}) is before start_epoch ({start_epoch})")
        self.head, self.initial, self.final = head, initial, final
        self.start_epoch, self.end_epoch = start_epoch, end_epoch
        self.margin = initial

    def margin_at(self, epochs_done: float) -> float:
        """Margin after ``epochs_done`` epochs of training (finished epochs plus the fraction of the current)."""
        start, end = self.start_epoch - 1, self.end_epoch - 1
        if epochs_done >= end:
            return self.final
        if epochs_done < start:
            return self.initial
        progress = (epochs_done - start) / (end - start)
        ratio = 1.0 - math.exp(progress * math.log(1e-3 / (1.0 + 1e-6)))
        return self.initial + (self.final - self.initial) * ratio

    def step(self, epochs_done: float) -> float:
        """Set the head's margin for the step that starts after ``epochs_done`` epochs; return it."""
        self.margin = self.margin_at(epochs_done)
        self.head.update_margin(self.margin)
        return self.margin

    def state_dict(self) -> dict[str, float]:
        return {"initial": self.initial, "final": self.final, "start_epoch": self.start_epoch,
                "end_epoch": self.end_epoch, "margin": self.margin}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the current margin (the schedule itself comes from the constructor, i.e. the config)."""
        self.margin = float(state["margin"])
        self.head.update_margin(self.margin)
