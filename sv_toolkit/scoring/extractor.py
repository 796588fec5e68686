"""Loading a trained embedding extractor from a model file (``model_avg.pt`` or a checkpoint of the train stage)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from sv_toolkit.errors import ModelFileError
from sv_toolkit.model_file import ModelHeader, load_model_file
from sv_toolkit.models import build_model

BUILDER = "sv_toolkit.models.build_model"


def build_from_config(model_config: Mapping[str, Any], source: str = "model_config") -> nn.Module:
    """The model described by a saved model config (``_target_: sv_toolkit.models.build_model`` plus its kwargs)."""
    target = model_config.get("_target_")
    if target != BUILDER:
        raise ModelFileError(f"{source}: _target_ is {target!r}; only {BUILDER} configs can be rebuilt here")
    try:
        return build_model(**{k: v for k, v in model_config.items() if k != "_target_"})
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{source}: its model config cannot be built by this sv_toolkit ({err})") from err


def load_extractor(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelHeader]:
    """(model in eval mode on ``device``, the file's header) from a model file (``model_avg.pt`` or a checkpoint).

    The header says how the model is fed (``header.fbank_settings()``). Raises ModelFileError naming the file
    when it is not a model file or its weights do not fit its model config.
    """
    path = Path(checkpoint)
    header, state = load_model_file(path)
    model = build_from_config(header.model_config, source=str(path))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ModelFileError(f"{path}: the model weights do not fit its model config ({err})") from err
    return model.eval().to(device), header


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (identifies the checkpoint partial embeddings were made with)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
