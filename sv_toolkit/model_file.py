"""Model files (``model_avg.pt`` and the train stage's checkpoints): self-describing and loaded safely.

A model file is a ``torch.save`` of a dict holding only tensors and plain Python values, so that
``torch.load(weights_only=True)`` reads it and no file can run code while it is loaded. Besides the states
(``model``; checkpoints also ``head``, ``optimizer``, RNG states ...) it holds a header under
:data:`HEADER_KEY`: everything needed to use the model without the training config (:class:`ModelHeader`).

Files written before the header existed (``{"model", "model_config"}`` only) still load, with a warning that
names the feature settings assumed: the defaults, which were the only ones the tools of that time could use.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from sv_toolkit import __version__
from sv_toolkit.errors import InputFileError, MissingFileError, ModelFileError
from sv_toolkit.features.store import FbankSettings
from sv_toolkit.utils.io import atomic_path

HEADER_KEY = "sv_toolkit_model_file"
FORMAT_VERSION = 1  # raise when a reader of this version could misread a newer file


@dataclass(frozen=True)
class ModelHeader:
    """What a model file says about its model: how to build it and which features it expects.

    ``model_config`` is the train stage's ``model`` config (``_target_: sv_toolkit.models.build_model`` and the
    builder's arguments); ``features`` is :meth:`FbankSettings.recipe` of the features it was trained on.
    """

    model_config: dict[str, Any]
    features: dict[str, Any]
    embed_dim: int
    sv_toolkit_version: str = __version__
    format_version: int = FORMAT_VERSION

    @classmethod
    def create(cls, model_config: Mapping[str, Any], settings: FbankSettings) -> "ModelHeader":
        """The header of a model built from ``model_config`` and trained on ``settings`` features."""
        config = dict(model_config)
        if "embed_dim" not in config:
            raise InputFileError(f"model config {config} has no embed_dim")
        return cls(config, settings.recipe(), int(config["embed_dim"]))

    def fbank_settings(self, source: str = "model file") -> FbankSettings:
        """The fbank settings the model expects (its sample rate, mel bins, frame length and shift)."""
        return FbankSettings.from_recipe(self.features, source)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "ModelHeader":
        """Validate a header read from ``source``; a newer format is refused with what to do."""
        if not isinstance(data, Mapping) or "format_version" not in data:
            raise ModelFileError(f"{source}: the {HEADER_KEY!r} entry is not a model-file header")
        version = data["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source} was written by sv_toolkit {data.get('sv_toolkit_version', '?')} in model-file format "
                f"{version}; this is sv_toolkit {__version__}, which reads format {FORMAT_VERSION} and older: "
                "upgrade sv_toolkit"
            )
        missing = [k for k in ("model_config", "features", "embed_dim") if k not in data]
        if missing:
            raise ModelFileError(f"{source}: the model-file header lacks {missing}; the file is damaged")
        header = cls(dict(data["model_config"]), dict(data["features"]), int(data["embed_dim"]),
                     str(data.get("sv_toolkit_version", "?")), version)
        header.fbank_settings(source)  # the feature recipe must be one this version can compute
        return header


def save_model_file(path: str | os.PathLike, state: Mapping[str, Any], header: ModelHeader) -> Path:
    """``torch.save`` ``state`` with ``header`` to a temporary file, then rename (a kill never leaves half a file).

    ``state`` must hold only tensors and plain values (dicts, lists, tuples, numbers, strings, None).
    """
    if HEADER_KEY in state:
        raise ValueError(f"state must not have a {HEADER_KEY!r} entry; pass the header separately")
    with atomic_path(path) as tmp:
        torch.save({HEADER_KEY: header.as_dict(), **state}, tmp)
    return Path(path)


def load_model_file(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[ModelHeader, dict[str, Any]]:
    """(header, states) of a model file, read with ``torch.load(weights_only=True)``.

    Raises :class:`MissingFileError` when there is no file and :class:`ModelFileError` naming it when it is
    not a torch file, holds objects that need unsafe unpickling, or has a newer format.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"model file {p} does not exist; train the model first (scripts/train.py)")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"unsupported global:? (?:global )?(\S+)", str(err), re.IGNORECASE)
        if found is None:  # not written by torch.save (a plain pickle, text...)
            stopped = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
            raise ModelFileError(
                f"{p} is not a readable torch model file ({stopped.group(1) if stopped else err}); give a model_avg.pt "
                "or checkpoint written by scripts/train.py"
            ) from err
        raise ModelFileError(
            f"{p} needs unsafe unpickling: it holds {found.group(1)}, which "
            "torch.load(weights_only=True) refuses to load (such a file can run code). sv_toolkit reads only files "
            "of tensors and plain values, like the model_avg.pt and checkpoints/*.pt the train stage writes; "
            "checkpoints written before model-file format 1 (numpy RNG states) cannot be resumed: start again "
            "with resume=false, or use their model_avg.pt"
        ) from err
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as err:  # not a zip / truncated / not torch
        raise ModelFileError(f"{p} is not a readable torch model file ({err!r}); give a model_avg.pt or "
                             "checkpoint written by scripts/train.py") from err
    if not isinstance(data, dict) or "model" not in data:
        raise ModelFileError(f"{p} is a torch file but not a model file (no 'model' state); give a model_avg.pt "
                             "or a checkpoint written by scripts/train.py")
    if HEADER_KEY not in data:
        return _legacy_header(data, p), data
    header = ModelHeader.from_dict(data.pop(HEADER_KEY), str(p))
    return header, data


def _legacy_header(data: dict[str, Any], path: Path) -> ModelHeader:
    """A header for a file of before format 1: its model config and the default features, with a warning."""
    if "model_config" not in data:
        raise ModelFileError(f"{path} has no {HEADER_KEY!r} header and no 'model_config'; it was not written by "
                             "scripts/train.py, so the model cannot be rebuilt from it")
    config = dict(data.pop("model_config"))
    settings = FbankSettings(num_mel_bins=int(config.get("feat_dim", 80)))
    warnings.warn(
        f"{path} has no model-file header (written before format {FORMAT_VERSION}): assuming the default features "
        f"{asdict(settings)}, the only ones the tools of that version used. If the model was trained on others, "
        "its embeddings are wrong: retrain it, or re-save it with sv_toolkit.model_file.save_model_file and the "
        "right ModelHeader",
        UserWarning,
        stacklevel=3,
    )
    return ModelHeader(config, settings.recipe(), int(config.get("embed_dim", 0)), "before format 1", 0)
