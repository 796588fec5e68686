"""TorchScript and ONNX export of a trained embedding extractor.

The exported graph maps mean-normalised fbank (B, T, num_mel_bins) (dither 0, per-utterance CMN, as
:func:`sv_toolkit.scoring.buckets.prepare_utterance` feeds the model) to embeddings (B, embed_dim), with the
batch and frame axes dynamic. Reversible models are exported with their plain forward (``store_activations``
on: the same layers run as ordinary modules, no custom autograd Function), which is what inference runs
anyway. The export is traced in eval mode (``torch.jit.trace``, which torch 2.14 marks deprecated in favour of
``torch.export`` but still supports; its FutureWarning is silenced here); data-dependent Python checks of the models (such as "at least 2
frames after pooling") are fixed at trace time, so feed at least ``min_frames`` frames.

ONNX export uses torch's TorchScript-based exporter (``dynamo=False``), which needs no extra package; checking
the ONNX file needs ``onnxruntime`` (the optional extra ``sv_toolkit[export]``).
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sv_toolkit.errors import ConfigError, MissingExtraError
from sv_toolkit.models.reversible import set_store_activations
from sv_toolkit.utils.io import atomic_path

FORMATS = ("torchscript", "onnx")


def plain_forward_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose reversible runs (if any) use ordinary modules."""
    plain = copy.deepcopy(model).eval().cpu()
    set_store_activations(plain, True)
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain


def _example(num_mel_bins: int, frames: int) -> torch.Tensor:
    return torch.randn(1, frames, num_mel_bins, generator=torch.Generator().manual_seed(0))  # (1, T, F)


def export_torchscript(model: nn.Module, path: str | os.PathLike, num_mel_bins: int = 80, example_frames: int = 200) -> Path:
    """Trace ``model`` and save it as TorchScript at ``path`` (atomically); load with ``torch.jit.load``."""
    plain = plain_forward_copy(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.10+ marks TorchScript deprecated; it still works
        traced = torch.jit.trace(plain, _example(num_mel_bins, example_frames), check_trace=False)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return Path(path)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, num_mel_bins: int = 80, example_frames: int = 200, opset: int = 17
) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomically): input ``feats`` (batch, frames, bins), output ``embedding``."""
    plain = plain_forward_copy(model)
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is "legacy" in torch 2.9+
        torch.onnx.export(
            plain, (_example(num_mel_bins, example_frames),), str(tmp), dynamo=False, opset_version=opset,
            input_names=["feats"], output_names=["embedding"],
            dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        )
    return Path(path)


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str, num_mel_bins: int = 80) -> Path:
    """Export in ``fmt`` ('torchscript' or 'onnx')."""
    if fmt == "torchscript":
        return export_torchscript(model, path, num_mel_bins)
    if fmt == "onnx":
        return export_onnx(model, path, num_mel_bins)
    raise ConfigError(f"export format {fmt!r} is not one of {FORMATS}")


def run_exported(path: str | os.PathLike, feats: torch.Tensor) -> np.ndarray:
    """Embeddings (B, D) of ``feats`` (B, T, F) from an exported file (.pt / .ts TorchScript, .onnx ONNX)."""
    p = Path(path)
    if p.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingExtraError("running ONNX models needs onnxruntime: pip install 'sv_toolkit[export]'") from err
        session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        return session.run(None, {"feats": feats.numpy().astype(np.float32)})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(p), map_location="cpu")
    with torch.no_grad():
        return module(feats).numpy()
