"""Embedding extraction from whole utterances (length buckets, resumable), the fbank-statistics baseline, and
embedding files.

Embedding file format (``.npz``, numpy's zip of arrays, read with ``np.load``):

- ``keys``: (N,) unicode strings, the utterance keys (or speaker ids, for a cohort file);
- ``embeddings``: (N, D) float32, row i belongs to ``keys[i]``;
- ``speakers`` (optional): (N,) unicode strings, the speaker of each row (training embeddings);
- ``counts`` (optional): (N,) int64, how many utterances were averaged into each row (cohort files).

npz needs nothing beyond numpy; safetensors would add a dependency for no gain at these sizes (the
embeddings of VoxCeleb1's 153,516 utterances are 157 MB) and cannot hold the string keys.

Resumable extraction keeps finished batches in ``<resume_dir>/part_<n>.npz`` (same format, each written
atomically) beside ``<resume_dir>/fingerprint.json``; a killed run started again with the same fingerprint
skips every utterance already in a part.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from sv_toolkit.errors import InputFileError, MissingFileError
from sv_toolkit.scoring.buckets import BucketDataset, plan_batches
from sv_toolkit.scoring.sources import FeatureSource
from sv_toolkit.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


def save_embeddings(
    path: str | os.PathLike,
    keys: list[str],
    embeddings: np.ndarray,
    speakers: list[str] | None = None,
    counts: np.ndarray | None = None,
) -> None:
    """Write an embedding file (format in the module docstring) atomically."""
    if len(keys) != embeddings.shape[0]:
        raise ValueError(f"{len(keys)} keys but {embeddings.shape[0]} embeddings")
    arrays: dict[str, np.ndarray] = {"keys": np.asarray(keys, dtype=str), "embeddings": embeddings.astype(np.float32)}
    if speakers is not None:
        arrays["speakers"] = np.asarray(speakers, dtype=str)
    if counts is not None:
        arrays["counts"] = np.asarray(counts, dtype=np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_embedding_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an embedding file; FileNotFoundError / ValueError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"embedding file {p} does not exist; run scripts/embed.py first")
    with np.load(p) as data:
        arrays = {k: data[k] for k in data.files}
    if "keys" not in arrays or "embeddings" not in arrays:
        raise InputFileError(f"{p} lacks 'keys' or 'embeddings'; it was not written by save_embeddings")
    return arrays


def load_embeddings(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """(keys, (N, D) embeddings) of an embedding file."""
    arrays = load_embedding_arrays(path)
    return [str(k) for k in arrays["keys"]], arrays["embeddings"]


def speaker_means(embeddings: np.ndarray, speakers: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-speaker mean embeddings: (sorted speaker ids, (S, D) means, (S,) utterance counts)."""
    ids, inverse, counts = np.unique(np.asarray(speakers, dtype=str), return_inverse=True, return_counts=True)
    sums = np.zeros((ids.size, embeddings.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, embeddings)
    return [str(s) for s in ids], (sums / counts[:, None]).astype(np.float32), counts


def fbank_stats_embeddings(source: FeatureSource, progress: bool = False) -> np.ndarray:
    """Untrained baseline: per-utterance mean and standard deviation of the raw fbank, (N, 2 * bins)."""
    out = np.empty((len(source), 2 * source.num_mel_bins), dtype=np.float32)
    for i in tqdm(range(len(source)), desc="fbank stats", disable=not progress):
        feats = np.asarray(source.features(i), dtype=np.float64)
        out[i] = np.concatenate([feats.mean(axis=0), feats.std(axis=0)])
    return out


def _load_parts(resume_dir: Path, fingerprint: dict[str, Any], keys: list[str]) -> tuple[dict[int, np.ndarray], int]:
    """Rows already extracted by an earlier run: ({utterance index: embedding}, number of part files)."""
    fingerprint = json.loads(json.dumps(fingerprint))  # compare as JSON values (tuples become lists)
    fp_file = resume_dir / "fingerprint.json"
    if fp_file.exists():
        earlier = json.loads(fp_file.read_text())
        if earlier != fingerprint:
            raise InputFileError(
                f"{resume_dir} holds partial embeddings made with other settings ({earlier} != {fingerprint}); "
                "delete that folder (or run with overwrite=true) to start afresh"
            )
    else:
        resume_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(fp_file, fingerprint)
    row = {k: i for i, k in enumerate(keys)}
    done: dict[int, np.ndarray] = {}
    parts = sorted(resume_dir.glob("part_*.npz"))
    for part in parts:
        part_keys, part_emb = load_embeddings(part)
        for k, e in zip(part_keys, part_emb):
            if k not in row:
                raise InputFileError(f"{part} has an embedding for {k!r}, which is not being extracted; delete {resume_dir}")
            done[row[k]] = e
    return done, len(parts)


@torch.inference_mode()
def extract_embeddings(
    model: nn.Module,
    source: FeatureSource,
    device: torch.device,
    max_batch_frames: int = 12000,
    max_batch_size: int = 64,
    max_crop: float = 0.0,
    min_frames: int = 20,
    num_workers: int = 0,
    resume_dir: str | os.PathLike | None = None,
    fingerprint: dict[str, Any] | None = None,
    flush_every: int = 2000,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings (N, D) float32 of every utterance of ``source``, in key order, each from its whole length.

    Utterances are batched pad-free (:mod:`sv_toolkit.scoring.buckets`: ``max_crop`` is the largest fraction of
    an utterance's frames that may be cropped to share a batch, 0 = equal lengths only); those shorter than
    ``min_frames`` are repeated up to it. ``num_workers`` > 0 computes features in DataLoader worker processes
    (worth it for an :class:`~sv_toolkit.scoring.sources.AudioFeatureSource`). With ``resume_dir``, finished
    rows are kept there every ``flush_every`` utterances and an interrupted run continues where it stopped;
    ``fingerprint`` (JSON-serialisable) identifies the model and settings, and a mismatch raises.
    """
    n = len(source)
    done: dict[int, np.ndarray] = {}
    next_part = 0
    if resume_dir is not None:
        resume_dir = Path(resume_dir)
        fp = {"num_utterances": n, "max_crop": max_crop, "min_frames": min_frames, **(fingerprint or {})}
        done, next_part = _load_parts(resume_dir, fp, source.keys)
        if done:
            log.info("resuming: %d of %d embeddings already in %s", len(done), n, resume_dir)
    todo = np.array([i for i in range(n) if i not in done], dtype=np.int64)
    batches = plan_batches(source.num_frames()[todo], max_batch_frames, max_batch_size, max_crop, min_frames)
    for b in batches:
        b.indices[:] = todo[b.indices]  # plan indices are positions in todo; map back to utterance indices
    loader = DataLoader(BucketDataset(source, batches, min_frames), batch_size=None, shuffle=False, num_workers=num_workers)
    model.eval().to(device)
    pending: dict[int, np.ndarray] = {}

    def flush() -> None:
        nonlocal next_part
        if resume_dir is None or not pending:
            return
        idx = sorted(pending)
        save_embeddings(resume_dir / f"part_{next_part:05d}.npz", [source.keys[i] for i in idx], np.stack([pending[i] for i in idx]))
        next_part += 1
        done.update(pending)
        pending.clear()

    bar = tqdm(total=n, initial=len(done), desc=f"embed {getattr(source, 'name', '')}", disable=not progress)
    for indices, feats in loader:
        emb = model(feats.to(device)).float().cpu().numpy()  # (B, D)
        for i, e in zip(indices.tolist(), emb):
            pending[i] = e
        bar.update(len(indices))
        if len(pending) >= flush_every:
            flush()
    bar.close()
    flush()
    done.update(pending)
    if len(done) != n:
        raise RuntimeError(f"extracted {len(done)} of {n} embeddings; this is a bug")
    return np.stack([done[i] for i in range(n)]).astype(np.float32)
