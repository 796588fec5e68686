"""Loading a trained embedding extractor from the ``model_avg.pt`` (or epoch) checkpoint of the train stage."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from sv_toolkit.models import build_model
from sv_toolkit.training.checkpoint import load_checkpoint

BUILDER = "sv_toolkit.models.build_model"


def build_from_config(model_config: Mapping[str, Any], source: str = "model_config") -> nn.Module:
    """The model described by a saved model config (``_target_: sv_toolkit.models.build_model`` plus its kwargs)."""
    target = model_config.get("_target_")
    if target != BUILDER:
        raise ValueError(f"{source}: _target_ is {target!r}; only {BUILDER} configs can be rebuilt here")
    return build_model(**{k: v for k, v in model_config.items() if k != "_target_"})


def load_extractor(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, its saved model config) from a train-stage checkpoint.

    Raises ValueError naming the file when it has no ``model`` / ``model_config`` entry.
    """
    path = Path(checkpoint)
    state = load_checkpoint(path)
    missing = [k for k in ("model", "model_config") if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} has no {missing} entry; use the model_avg.pt written by scripts/train.py")
    model = build_from_config(state["model_config"], source=str(path))
    model.load_state_dict(state["model"])
    return model.eval().to(device), dict(state["model_config"])


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (identifies the checkpoint partial embeddings were made with)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
