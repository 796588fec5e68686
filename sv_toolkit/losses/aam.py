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
    """Raises the head's margin from ``initial`` to ``final`` between two epochs (exponential ramp, as wespeaker).

    Before ``start_epoch`` the margin is ``initial``; from ``end_epoch`` on it is ``final``; in between
    margin = initial + (final - initial) * (1 - 1e-3 ** progress) / (1 - 1e-3).
    """

    def __init__(self, head: nn.Module, initial: float, final: float, start_epoch: float, end_epoch: float) -> None:
        if end_epoch < start_epoch:
            raise ValueError(f"margin end_epoch ({end_epoch}) is before start_epoch ({start_epoch})")
        self.head, self.initial, self.final = head, initial, final
        self.start_epoch, self.end_epoch = start_epoch, end_epoch

    def margin_at(self, epoch: float) -> float:
        if epoch < self.start_epoch:
            return self.initial
        if epoch >= self.end_epoch:
            return self.final
        progress = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        return self.initial + (self.final - self.initial) * (1.0 - 1e-3**progress) / (1.0 - 1e-3)

    def step(self, epoch: float) -> float:
        """Set the head's margin for the (fractional) epoch and return it."""
        margin = self.margin_at(epoch)
        self.head.update_margin(margin)
        return margin
