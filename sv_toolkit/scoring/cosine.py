"""Cosine scoring of trials with optional mean subtraction, and score files."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from sv_toolkit.data.manifests import Trial
from sv_toolkit.utils.io import atomic_path


def score_trials(
    keys: Sequence[str], embeddings: np.ndarray, trials: Sequence[Trial], mean: np.ndarray | None = None
) -> np.ndarray:
    """Cosine similarity of each trial's enrolment and test embeddings, after subtracting ``mean``.

    Raises KeyError naming the first trial utterance without an embedding.
    """
    row = {k: i for i, k in enumerate(keys)}
    missing = next((k for t in trials for k in (t.enroll, t.test) if k not in row), None)
    if missing is not None:
        raise KeyError(f"no embedding for trial utterance {missing!r}; re-run scripts/embed.py for the test set")
    emb = embeddings.astype(np.float64)
    if mean is not None:
        emb = emb - mean
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    enroll = np.fromiter((row[t.enroll] for t in trials), dtype=np.int64, count=len(trials))
    test = np.fromiter((row[t.test] for t in trials), dtype=np.int64, count=len(trials))
    return np.einsum("ij,ij->i", emb[enroll], emb[test])


def write_scores(path: str | os.PathLike, trials: Sequence[Trial], scores: np.ndarray) -> None:
    """Write ``enroll test score label`` lines atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for t, s in zip(trials, scores):
            f.write(f"{t.enroll} {t.test} {s:.6f} {t.label}\n")
