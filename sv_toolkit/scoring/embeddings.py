"""Embedding extraction from whole utterances, the fbank-statistics baseline, and embedding files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sv_toolkit.data.dataset import crop_or_repeat
from sv_toolkit.features.store import FeatureStore
from sv_toolkit.utils.io import atomic_path


@torch.inference_mode()
def extract_embeddings(
    model: nn.Module, store: FeatureStore, device: torch.device, progress: bool = True, min_frames: int = 20
) -> np.ndarray:
    """Embeddings (N, D) of every utterance of ``store`` in order, each from its whole length after CMN.

    Utterances shorter than ``min_frames`` are repeated up to that length (the network needs a few frames).
    """
    model.eval().to(device)
    out = []
    for i in tqdm(range(len(store)), desc=f"embed {store.path.name}", disable=not progress):
        feats = store.by_index(i)  # (T, F)
        if feats.shape[0] < min_frames:
            feats = crop_or_repeat(feats, min_frames, start=0)
        feats = torch.from_numpy(np.array(feats))
        feats = feats - feats.mean(dim=0, keepdim=True)
        out.append(model(feats.unsqueeze(0).to(device)).float().cpu())
    return torch.cat(out).numpy()


def fbank_stats_embeddings(store: FeatureStore) -> np.ndarray:
    """Untrained baseline: per-utterance mean and standard deviation of the fbank, (N, 2 * bins)."""
    out = np.empty((len(store), 2 * store.feats.shape[1]), dtype=np.float32)
    for i in range(len(store)):
        feats = np.asarray(store.by_index(i), dtype=np.float64)
        out[i] = np.concatenate([feats.mean(axis=0), feats.std(axis=0)])
    return out


def save_embeddings(path: str | os.PathLike, keys: list[str], embeddings: np.ndarray) -> None:
    """Write ``keys`` and (N, D) ``embeddings`` to an .npz file atomically."""
    if len(keys) != embeddings.shape[0]:
        raise ValueError(f"{len(keys)} keys but {embeddings.shape[0]} embeddings")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.asarray(keys), embeddings=embeddings.astype(np.float32))


def load_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read an .npz written by :func:`save_embeddings`: (keys, (N, D) embeddings)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"embedding file {p} does not exist; run scripts/embed.py first")
    with np.load(p) as data:
        return [str(k) for k in data["keys"]], data["embeddings"]
