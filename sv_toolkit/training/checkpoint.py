"""Checkpoints: atomic save, keep-last-N rotation, and weight averaging of the last N."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from sv_toolkit.utils.io import atomic_path

_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt$")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename: a killed run never leaves a truncated checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist; train the model first (scripts/train.py)")
    return torch.load(p, map_location=map_location, weights_only=False)


def epoch_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``epoch_<n>.pt`` files in ``directory`` sorted by epoch number."""
    d = Path(directory)
    found = [(int(m.group(1)), p) for p in d.glob("epoch_*.pt") if (m := _EPOCH_FILE.search(p.name))]
    return [p for _, p in sorted(found)]


def rotate_checkpoints(directory: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` epoch checkpoints (keep_last <= 0 keeps everything)."""
    if keep_last > 0:
        for p in epoch_checkpoints(directory)[:-keep_last]:
            p.unlink()


def average_model_states(paths: list[Path], key: str = "model") -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``key`` state dicts of ``paths`` (integer buffers taken from the last)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [load_checkpoint(p)[key] for p in paths]
    avg = {}
    for name, last in states[-1].items():
        if last.is_floating_point():
            avg[name] = torch.stack([s[name].float() for s in states]).mean(0).to(last.dtype)
        else:
            avg[name] = last.clone()
    return avg
