"""Speaker-verification metrics: equal error rate and normalised minimum detection cost.

Definitions (REFERENCE.md section 4):
- Error rates are evaluated at every distinct score threshold (accept when score >= threshold), plus the
  threshold above the highest score, exactly the operating points of ``sklearn.metrics.roc_curve`` with
  ``drop_intermediate=False``.
- EER: miss rate (P_miss = 1 - TPR) and false-alarm rate (P_fa = FPR) are linearly interpolated between the two
  operating points where P_miss - P_fa changes sign; the EER is their common value at the crossing.
- minDCF (normalised, NIST SRE / Kaldi / wespeaker): min over thresholds of
  C_miss * P_miss * p_target + C_fa * P_fa * (1 - p_target), divided by min(C_miss * p_target, C_fa * (1 - p_target)).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ArrayLike = np.ndarray | Sequence[float]


def _validate(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in length")
    if s.size == 0:
        raise ValueError("no trials: scores and labels are empty")
    if not np.all(np.isfinite(s)):
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"score {s[bad]} at trial index {bad} is not finite; fix the scoring step that produced it")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0 (non-target) or 1 (target); found {sorted(set(np.unique(y)) - {0, 1})[:5]}")
    y = y.astype(np.int64)
    n_target = int(y.sum())
    if n_target == 0 or n_target == y.size:
        kind = "no target" if n_target == 0 else "no non-target"
        raise ValueError(f"the trials have {kind} trials ({y.size} trials): EER and minDCF need both kinds")
    return s, y


def error_rates(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P_miss, P_fa, thresholds) at every distinct threshold, thresholds descending (first is +inf)."""
    s, y = _validate(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    true_pos = np.cumsum(y_sorted)
    false_pos = np.cumsum(1 - y_sorted)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    n_target, n_nontarget = true_pos[-1], false_pos[-1]
    p_miss = np.r_[1.0, 1.0 - true_pos[last_of_tie] / n_target]
    p_fa = np.r_[0.0, false_pos[last_of_tie] / n_nontarget]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return p_miss, p_fa, thresholds


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Equal error rate as a fraction in [0, 1] (labels: 1 = target, 0 = non-target)."""
    p_miss, p_fa, _ = error_rates(scores, labels)
    diff = p_miss - p_fa  # starts at 1, ends at -1, non-increasing
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0:
        return float(p_fa[i])
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1)
    return float(p_fa[i - 1] + t * (p_fa[i] - p_fa[i - 1]))


def compute_min_dcf(
    scores: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised minimum detection cost at prior ``p_target`` (see the module docstring)."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    p_miss, p_fa, _ = error_rates(scores, labels)
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))
