"""Gradient checkpointing of the vanilla models, one segment per stage (the classic alternative to reversibility).

``set_gradient_checkpointing(model, True)`` makes a ResNet or DF-ResNet run each stage of its body through
``torch.utils.checkpoint.checkpoint`` (non-reentrant) during training: only stage inputs are kept, and each
stage's forward is recomputed in backward. BatchNorm running statistics are restored around the recompute
(otherwise every checkpointed step would update them twice); the RNG is replayed by torch's checkpoint.
Parameters and state_dict keys are unchanged, so checkpoints load with either setting.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from sv_toolkit.models.reversible import frozen_running_stats


def checkpointed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``; in training with grad enabled, through a non-reentrant checkpoint that keeps only
    ``x`` and recomputes ``module`` in backward with its BatchNorm running statistics frozen."""
    if not (torch.is_grad_enabled() and module.training):
        return module(x)
    return checkpoint(module, x, use_reentrant=False, context_fn=partial(_recompute_contexts, module))


class StageCheckpointing:
    """Mixin for models whose body is an ``nn.Sequential`` of stages; set ``gradient_checkpointing``."""

    gradient_checkpointing: bool = False

    def run_stages(self, stages: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """``stages(x)``, checkpointed per stage when enabled, training and grad is on."""
        if not (self.gradient_checkpointing and torch.is_grad_enabled() and stages.training):
            return stages(x)
        for stage in stages:
            x = checkpointed(stage, x)
        return x


def _recompute_contexts(stage: nn.Module) -> tuple[nullcontext, object]:
    return nullcontext(), frozen_running_stats(stage)


def set_gradient_checkpointing(model: nn.Module, enabled: bool) -> None:
    """Turn per-stage gradient checkpointing on or off for a vanilla ResNet / DF-ResNet.

    Raises ``TypeError`` for models that do not support it (reversible models need no checkpointing:
    their reversible runs already keep no activations).
    """
    if not isinstance(model, StageCheckpointing):
        raise TypeError(
            f"gradient checkpointing is implemented for the vanilla ResNet / DF-ResNet models, not "
            f"{type(model).__name__} ({getattr(model, 'name', '?')}); reversible models keep no activations "
            "of their reversible runs already"
        )
    model.gradient_checkpointing = bool(enabled)
