"""Learning-rate schedules, stepped once per training step."""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_exponential(
    optimizer: torch.optim.Optimizer, final_lr: float, total_steps: int, warmup_steps: int = 0
) -> LambdaLR:
    """Linear warm-up from 0, then exponential decay from each group's ``lr`` to ``final_lr`` at ``total_steps``.

    Decay runs over the whole schedule as in wespeaker: lr(t) = lr0 * (final/lr0) ** (t / total) * min(1, t / warmup).
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    factors = []
    for group in optimizer.param_groups:
        lr0 = group["lr"]
        if lr0 <= 0 or final_lr <= 0:
            raise ValueError(f"exponential decay needs positive lr and final_lr, got lr={lr0}, final_lr={final_lr}")
        ratio = final_lr / lr0

        def factor(step: int, ratio: float = ratio) -> float:
            warm = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
            return warm * ratio ** (min(step, total_steps) / total_steps)

        factors.append(factor)
    return LambdaLR(optimizer, factors)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, final_lr: float, total_steps: int, warmup_steps: int = 0
) -> LambdaLR:
    """Linear warm-up from 0, then half-cosine from each group's ``lr`` down to ``final_lr`` at ``total_steps``."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    factors = []
    for group in optimizer.param_groups:
        floor = final_lr / group["lr"]

        def factor(step: int, floor: float = floor) -> float:
            if warmup_steps > 0 and step < warmup_steps:
                return step / warmup_steps
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        factors.append(factor)
    return LambdaLR(optimizer, factors)
