"""Speaker-verification metrics of detection scores: equal error rate, normalised minimum detection cost.

Definitions (REFERENCE.md section 4; NIST SRE evaluation plans, e.g. "NIST 2019 Speaker Recognition Evaluation
Plan", section 3.1; Kaldi ``compute_min_dcf.py``; wespeaker ``wespeaker/utils/score_metrics.py``):

- Operating points: every distinct score is a threshold (accept when ``score >= threshold``), plus the
  threshold above the highest score (reject all). These are exactly the points of
  ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``. Tied scores form one operating point.
- P_miss(t) = fraction of target trials with score < t; P_fa(t) = fraction of non-target trials with score >= t.
- EER: P_miss and P_fa are linearly interpolated between the two consecutive operating points where
  P_miss - P_fa changes sign; the EER is their common value at the crossing (a fraction in [0, 1]).
- DCF(t) = C_miss * P_miss(t) * p_target + C_fa * P_fa(t) * (1 - p_target); the normalised minDCF is
  min_t DCF(t) / min(C_miss * p_target, C_fa * (1 - p_target)), the cost relative to the best trivial system
  (accept all or reject all), so it lies in [0, 1]. C_miss = C_fa = 1; p_target 0.01 (Kaldi, wespeaker, NIST
  SRE 2008-2016 style) and 0.05 (VoxSRC).

:func:`verification_metrics` computes all of them from one sort, which is what 580,000-trial lists need.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sv_toolkit.errors import ConfigError, InputFileError

ArrayLike = np.ndarray | Sequence[float]

DEFAULT_P_TARGETS = (0.01, 0.05)


def validate_trials(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and labels as int64 1-D arrays; ValueError for anything a metric cannot use.

    Checks: equal lengths, at least one trial, finite scores, labels 0 / 1, both classes present.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise InputFileError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size == 0:
        raise InputFileError("no trials: scores and labels are empty")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise InputFileError(f"score {s[bad]} at trial index {bad} is not finite; fix the scoring step that produced it")
    if not np.all((y == 0) | (y == 1)):
        raise InputFileError(f"labels must be 0 (non-target) or 1 (target); found {sorted(set(np.unique(y)) - {0, 1})[:5]}")
    y = y.astype(np.int64)
    n_target = int(y.sum())
    if n_target == 0 or n_target == y.size:
        kind = "no target" if n_target == 0 else "no non-target"
        raise InputFileError(f"the trials have {kind} trials ({y.size} trials): verification metrics need both kinds")
    return s, y


def _operating_points(s: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Within a group of tied scores the order does not matter (only the counts at its end are used), so an
    # unstable sort is fine. ``weights`` count each trial that many times (bootstrap resamples); without them
    # the counts stay integers, so the rates are exact.
    order = np.argsort(-s)
    s_sorted = s[order]
    if weights is None:
        true_pos = np.cumsum(y[order])
        false_pos = np.arange(1, s.size + 1) - true_pos
    else:
        w = weights[order]
        true_pos = np.cumsum(w * y[order])
        false_pos = np.cumsum(w * (1 - y[order]))
    last_of_tie = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s_sorted.size - 1]
    n_target, n_nontarget = true_pos[-1], false_pos[-1]
    p_miss = np.r_[1.0, 1.0 - true_pos[last_of_tie] / n_target]
    p_fa = np.r_[0.0, false_pos[last_of_tie] / n_nontarget]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return p_miss, p_fa, thresholds


def error_rates(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P_miss, P_fa, thresholds) at every distinct threshold, thresholds descending (first is +inf)."""
    return _operating_points(*validate_trials(scores, labels))


def _eer(p_miss: np.ndarray, p_fa: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """(EER, threshold at the crossing) from the operating points of :func:`error_rates`."""
    diff = p_miss - p_fa  # starts at 1, ends at -1, non-increasing
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0:
        return float(p_fa[i]), float(thresholds[i])
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1)
    th = thresholds[i] if not np.isfinite(thresholds[i - 1]) else thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1])
    return float(p_fa[i - 1] + t * (p_fa[i] - p_fa[i - 1])), float(th)


def _min_dcf(
    p_miss: np.ndarray, p_fa: np.ndarray, thresholds: np.ndarray, p_target: float, c_miss: float, c_fa: float
) -> tuple[float, float]:
    if not 0.0 < p_target < 1.0:
        raise ConfigError(f"p_target must be in (0, 1), got {p_target}")
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    i = int(np.argmin(dcf))
    return float(dcf[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(thresholds[i])


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Equal error rate as a fraction in [0, 1] (labels: 1 = target, 0 = non-target)."""
    return _eer(*error_rates(scores, labels))[0]


def compute_min_dcf(
    scores: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised minimum detection cost at prior ``p_target`` (see the module docstring)."""
    if not 0.0 < p_target < 1.0:
        raise ConfigError(f"p_target must be in (0, 1), got {p_target}")
    return _min_dcf(*error_rates(scores, labels), p_target, c_miss, c_fa)[0]


def verification_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    p_targets: Sequence[float] = DEFAULT_P_TARGETS,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> dict[str, float]:
    """EER and normalised minDCF at each of ``p_targets`` from one sort of the scores.

    Keys: ``num_trials``, ``num_target``, ``eer``, ``eer_threshold`` (score at the EER crossing, interpolated)
    and, per prior p, ``min_dcf_<p>`` and ``min_dcf_<p>_threshold`` (the threshold achieving it), with ``<p>``
    written as ``f"{p:g}"`` (``min_dcf_0.01``).
    """
    s, y = validate_trials(scores, labels)
    p_miss, p_fa, thresholds = _operating_points(s, y)
    eer, eer_threshold = _eer(p_miss, p_fa, thresholds)
    out: dict[str, float] = {
        "num_trials": int(s.size), "num_target": int(y.sum()), "eer": eer, "eer_threshold": eer_threshold,
    }
    for p in p_targets:
        value, threshold = _min_dcf(p_miss, p_fa, thresholds, p, c_miss, c_fa)
        out[f"min_dcf_{p:g}"] = value
        out[f"min_dcf_{p:g}_threshold"] = threshold
    return out
