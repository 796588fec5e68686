"""Small reversible runs shared by the CPU and CUDA reversible-core tests (imported by file name:
pytest puts this directory on sys.path)."""

from __future__ import annotations

import torch
import torch.nn as nn

from sv_toolkit.models.reversible import CouplingBlock, ReversibleSequence, SpaceToDepth


def branch(channels: int, dropout: float = 0.0, kernel: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),  # bias before BN has
        nn.BatchNorm2d(channels),  # an exactly-zero gradient: only rounding noise to compare
        nn.ReLU(),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Conv2d(channels, channels, 1))
    return nn.Sequential(*layers)


def make_run(
    half: int = 2, dropout: float = 0.0, blocks: int = 2, stream_dtype: torch.dtype | None = None
) -> ReversibleSequence:
    """Couplings on `half`-channel streams, a space-to-depth, then couplings on 4 * half."""
    layers = [CouplingBlock(branch(half, dropout), branch(half, dropout)) for _ in range(blocks)]
    layers.append(SpaceToDepth())
    layers += [CouplingBlock(branch(4 * half, dropout), branch(4 * half, dropout)) for _ in range(blocks)]
    return ReversibleSequence(layers, stream_dtype=stream_dtype)


def run_step(seq: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = seq(x)
    (y.square() * torch.linspace(0.5, 1.5, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), x.grad
