"""Temporal statistics pooling (TSTP) and the embedding head shared by every model.

TSTP follows wespeaker's ``pooling_layers.TSTP``: the (B, C, F, T) frame-level map is pooled over time
into the per-(channel, freq) mean and standard deviation, flattened channel-major and concatenated
(mean first). The standard deviation is ``sqrt(var + 1e-8)`` with the *unbiased* variance
(``torch.var``'s default, correction=1), exactly as wespeaker computes it, so a checkpoint trained
here pools identically to the reference recipe. The unbiased estimate needs at least two frames
after downsampling; fewer raises a ``ValueError`` instead of silently producing NaN.
"""

from __future__ import annotations

import torch
import torch.nn as nn

TSTP_EPS = 1e-8


class TSTP(nn.Module):
    """Mean and standard deviation over time of a (B, C, F, T) or (B, D, T) map -> (B, 2 * C * F)."""

    def __init__(self, eps: float = TSTP_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 2:
            raise ValueError(
                f"TSTP needs at least 2 frames after downsampling, got input of shape {tuple(x.shape)}; "
                "use longer segments"
            )
        mean = x.mean(dim=-1).flatten(start_dim=1)  # (B, C*F)
        std = torch.sqrt(torch.var(x, dim=-1) + self.eps).flatten(start_dim=1)  # (B, C*F)
        return torch.cat((mean, std), dim=1)  # (B, 2*C*F)


class EmbeddingHead(nn.Module):
    """TSTP followed by one Linear layer (wespeaker's ``two_emb_layer=False``)."""

    def __init__(self, channels: int, freq: int, embed_dim: int) -> None:
        super().__init__()
        self.pool = TSTP()
        self.embedding = nn.Linear(2 * channels * freq, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, F, T)
        return self.embedding(self.pool(x))  # (B, embed_dim)


def downsampled_size(size: int, num_halvings: int) -> int:
    """Size after ``num_halvings`` stride-2 3x3 convolutions with padding 1 (ceil(size / 2) each)."""
    for _ in range(num_halvings):
        size = (size + 1) // 2
    return size


def fbank_to_image(feats: torch.Tensor, feat_dim: int) -> torch.Tensor:
    """Check a (B, T, feat_dim) fbank batch and return it as a one-channel (B, 1, F, T) image."""
    if feats.dim() != 3 or feats.shape[-1] != feat_dim:
        raise ValueError(
            f"expected fbank features of shape (B, T, {feat_dim}), got {tuple(feats.shape)}"
        )
    return feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
