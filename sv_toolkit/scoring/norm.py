"""Score normalisation against a cohort: adaptive S-norm (AS-norm) and S-norm.

Cohort (REFERENCE.md section 4; wespeaker ``tools/vector_mean.py`` + ``wespeaker/bin/score_norm.py``): one
vector per training speaker, the mean of that speaker's utterance embeddings; the training-set mean is
subtracted from cohort and trial embeddings alike and all are length-normalised, so cohort scores are cosine
similarities like the trial scores.

For an embedding x, its cohort statistics are the mean mu_x and the standard deviation sd_x (population, ddof
0, as wespeaker's ``np.std``) of its N highest cosine scores against the cohort (AS-norm, N = ``top_n``,
default 300; Matejka et al., "Analysis of score normalization in multilingual speaker recognition",
Interspeech 2017) or of all of them (S-norm). A trial (e, t) with raw score s gets
    0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t).

Cohort statistics are computed block by block (``block_size`` rows of x at a time: one (block, C) matrix
product and ``torch.topk``), so memory stays at block_size x C scores whatever the number of embeddings.
"""
from __future__ import annotations

import numpy as np
import torch

from sv_toolkit.errors import ConfigError, InputFileError


def length_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); an all-zero row stays zero."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cohort_statistics(
    embeddings: np.ndarray,
    cohort: np.ndarray,
    top_n: int | None,
    block_size: int = 1024,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sd), each (N,), of the top-``top_n`` cosine scores of each row against the cohort (all if None).

    Both inputs must already be length-normalised, (N, D) and (C, D). ``exclude`` (N,) names, per row, one
    cohort row to leave out (the row's own speaker, for training embeddings), or -1 for none; it reduces the
    cohort available to that row by one.
    """
    if embeddings.ndim != 2 or cohort.ndim != 2 or embeddings.shape[1] != cohort.shape[1]:
        raise InputFileError(f"embeddings {embeddings.shape} and cohort {cohort.shape} must be (N, D) and (C, D)")
    available = cohort.shape[0] - (1 if exclude is not None else 0)
    k = available if top_n is None else int(top_n)
    if not 2 <= k <= available:
        raise ConfigError(
            f"top_n={top_n} needs 2 <= top_n <= {available} (the cohort has {cohort.shape[0]} speakers"
            f"{', one left out per row' if exclude is not None else ''}); lower scoring.norm.top_n"
        )
    if block_size < 1:
        raise ConfigError(f"block_size must be positive, got {block_size}")
    c = torch.from_numpy(np.ascontiguousarray(cohort, dtype=np.float64))  # (C, D)
    x_all = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float64))  # (N, D)
    mu = torch.empty(x_all.shape[0], dtype=torch.float64)
    sd = torch.empty(x_all.shape[0], dtype=torch.float64)
    ex = None if exclude is None else torch.from_numpy(np.asarray(exclude, dtype=np.int64))
    for start in range(0, x_all.shape[0], block_size):
        stop = min(start + block_size, x_all.shape[0])
        scores = x_all[start:stop] @ c.T  # (block, C)
        if ex is not None:
            rows = torch.nonzero(ex[start:stop] >= 0).squeeze(1)
            scores[rows, ex[start:stop][rows]] = -torch.inf
        if top_n is None:  # S-norm: every cohort score that is not excluded
            valid = torch.isfinite(scores)
            count = valid.sum(dim=1)
            scores = torch.where(valid, scores, 0.0)
            mean = scores.sum(dim=1) / count
            mu[start:stop] = mean
            sd[start:stop] = (torch.where(valid, (scores - mean[:, None]) ** 2, 0.0).sum(dim=1) / count).sqrt()
        else:
            top = torch.topk(scores, k, dim=1, sorted=False).values  # (block, k)
            mu[start:stop] = top.mean(dim=1)
            sd[start:stop] = top.std(dim=1, correction=0)
    if bool((sd <= 0).any()):
        raise InputFileError("a cohort score standard deviation is 0 (identical cohort vectors?); check the cohort file")
    return mu.numpy(), sd.numpy()


def symmetric_norm(
    raw: np.ndarray,
    enroll: np.ndarray,
    test: np.ndarray,
    mu: np.ndarray,
    sd: np.ndarray,
) -> np.ndarray:
    """0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t) for trials (raw[i], enroll[i], test[i]); rows index mu / sd."""
    return 0.5 * ((raw - mu[enroll]) / sd[enroll] + (raw - mu[test]) / sd[test])


def normalise_scores(
    raw: np.ndarray,
    embeddings: np.ndarray,
    enroll: np.ndarray,
    test: np.ndarray,
    cohort: np.ndarray,
    top_n: int | None,
    block_size: int = 1024,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """AS-norm (``top_n``) or S-norm (``top_n=None``) of raw trial scores.

    ``embeddings`` (N, D) and ``cohort`` (C, D) are length-normalised; ``enroll`` / ``test`` (T,) index the rows
    of ``embeddings`` used by each trial; cohort statistics are computed only for rows some trial uses.
    """
    used, inverse = np.unique(np.concatenate([enroll, test]), return_inverse=True)
    mu, sd = cohort_statistics(
        embeddings[used], cohort, top_n, block_size, None if exclude is None else np.asarray(exclude)[used]
    )
    return symmetric_norm(raw, inverse[: enroll.size], inverse[enroll.size :], mu, sd)
