"""Cosine scoring of trials after mean subtraction, and score files (``enroll test score label`` per line)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sv_toolkit.data.manifests import Trial
from sv_toolkit.errors import InputFileError, MissingEntryError, MissingFileError
from sv_toolkit.scoring.norm import length_normalise
from sv_toolkit.utils.io import atomic_path


def trial_indices(keys: Sequence[str], trials: Sequence[Trial], source: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(enroll, test) row indices into ``keys`` of every trial.

    Raises KeyError naming the first trial (and ``source``, e.g. the trial file) whose utterance has no row.
    """
    row = {k: i for i, k in enumerate(keys)}
    for n, t in enumerate(trials, start=1):
        for k in (t.enroll, t.test):
            if k not in row:
                where = f"{source}: trial {n}" if source else f"trial {n}"
                raise MissingEntryError(
                    f"{where} names utterance {k!r}, which has no embedding; re-run scripts/embed.py for the test "
                    "set, or fix the trial list"
                )
    enroll = np.fromiter((row[t.enroll] for t in trials), dtype=np.int64, count=len(trials))
    test = np.fromiter((row[t.test] for t in trials), dtype=np.int64, count=len(trials))
    return enroll, test


def prepare_embeddings(embeddings: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Subtract ``mean`` (the training-set mean embedding) and length-normalise: (N, D) float64."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if mean is not None:
        if mean.shape != (emb.shape[1],):
            raise InputFileError(f"mean embedding of shape {mean.shape} does not match embeddings of dimension {emb.shape[1]}")
        emb = emb - mean
    return length_normalise(emb)


def cosine_scores(normalised: np.ndarray, enroll: np.ndarray, test: np.ndarray, block_size: int = 65536) -> np.ndarray:
    """Dot products of length-normalised rows ``enroll[i]`` and ``test[i]``, (T,), computed in blocks."""
    out = np.empty(enroll.size, dtype=np.float64)
    for start in range(0, enroll.size, block_size):
        e, t = enroll[start : start + block_size], test[start : start + block_size]
        out[start : start + e.size] = np.einsum("ij,ij->i", normalised[e], normalised[t])
    return out


def score_trials(
    keys: Sequence[str], embeddings: np.ndarray, trials: Sequence[Trial], mean: np.ndarray | None = None
) -> np.ndarray:
    """Cosine similarity of each trial's enrolment and test embeddings, after subtracting ``mean``."""
    enroll, test = trial_indices(keys, trials)
    return cosine_scores(prepare_embeddings(embeddings, mean), enroll, test)


def write_scores(path: str | os.PathLike, trials: Sequence[Trial], scores: np.ndarray) -> None:
    """Write ``enroll test score label`` lines atomically."""
    if len(trials) != len(scores):
        raise ValueError(f"{len(trials)} trials but {len(scores)} scores")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.writelines(f"{t.enroll} {t.test} {s:.6f} {t.label}\n" for t, s in zip(trials, scores))


@dataclass(frozen=True)
class ScoreFile:
    """The contents of a score file; ``labels`` is None when the file has no label column."""

    enroll: list[str]
    test: list[str]
    scores: np.ndarray  # (T,) float64
    labels: np.ndarray | None  # (T,) int64


def read_scores(path: str | os.PathLike) -> ScoreFile:
    """Read ``enroll test score [label]`` lines; ValueError naming ``file:line`` for a malformed one."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"score file {p} does not exist")
    enroll, test, scores, labels = [], [], [], []
    width = None
    with open(p) as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if width is None:
                width = len(fields)
            if len(fields) not in (3, 4) or len(fields) != width:
                raise InputFileError(
                    f"{p}:{lineno}: expected 'enroll test score [label]' like the first line ({width} fields), "
                    f"got {line.strip()!r}"
                )
            try:
                scores.append(float(fields[2]))
            except ValueError:
                raise InputFileError(f"{p}:{lineno}: score {fields[2]!r} is not a number") from None
            if width == 4:
                if fields[3] not in ("0", "1"):
                    raise InputFileError(f"{p}:{lineno}: label {fields[3]!r} must be 0 (non-target) or 1 (target)")
                labels.append(int(fields[3]))
            enroll.append(fields[0])
            test.append(fields[1])
    if not scores:
        raise InputFileError(f"score file {p} is empty")
    return ScoreFile(enroll, test, np.asarray(scores), np.asarray(labels, dtype=np.int64) if width == 4 else None)


def match_scores_to_trials(
    scores: ScoreFile, trials: Sequence[Trial], score_path: str = "", trial_path: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) in trial-list order, the labels taken from the trial list.

    Raises KeyError for a trial the score file has no score for, ValueError for a pair scored twice with
    different scores or a label that disagrees with the trial list.
    """
    index: dict[tuple[str, str], int] = {}
    for i, pair in enumerate(zip(scores.enroll, scores.test)):
        j = index.setdefault(pair, i)
        if j != i and scores.scores[j] != scores.scores[i]:
            raise InputFileError(f"{score_path}: trial {pair[0]} {pair[1]} has two different scores (lines {j + 1}, {i + 1})")
    out = np.empty(len(trials), dtype=np.float64)
    labels = np.empty(len(trials), dtype=np.int64)
    for n, t in enumerate(trials):
        i = index.get((t.enroll, t.test))
        if i is None:
            raise MissingEntryError(f"{trial_path}: trial {n + 1} ({t.enroll} {t.test}) has no score in {score_path}")
        if scores.labels is not None and scores.labels[i] != t.label:
            raise InputFileError(
                f"{score_path}: trial {t.enroll} {t.test} has label {scores.labels[i]} but {trial_path} says {t.label}"
            )
        out[n], labels[n] = scores.scores[i], t.label
    return out, labels
