"""Metrics of calibrated scores (log-likelihood ratios): actual DCF at the Bayes threshold, Cllr, minCllr.

A calibrated score is a natural-log likelihood ratio llr = log p(score | target) / p(score | non-target).

- actDCF (normalised; NIST SRE evaluation plans, e.g. "NIST 2019 Speaker Recognition Evaluation Plan"
  section 3.1, and "NIST 2021 SRE Evaluation Plan" section 3.1): the DCF of the hard decisions made at the
  Bayes threshold theta = log(C_fa * (1 - p_target) / (C_miss * p_target)) (accept when llr >= theta),
  divided by min(C_miss * p_target, C_fa * (1 - p_target)). For well-calibrated LLRs actDCF is close to
  minDCF; the gap is the cost of miscalibration.
- Cllr (N. Brümmer and J. du Preez, "Application-independent evaluation of speaker detection", Computer Speech
  and Language 20(2-3), 2006, eq. 39): Cllr = 1 / (2 log 2) * (mean over targets of log(1 + exp(-llr)) +
  mean over non-targets of log(1 + exp(llr))), in bits; 0 is perfect, 1 is a system that always says
  llr = 0, above 1 is worse than saying nothing.
- minCllr (ibid., section 5.2; BOSARIS toolkit ``opt_loglr``): the Cllr after the optimal monotonic
  re-calibration of the scores, found by pool-adjacent-violators (isotonic regression) on the scores with
  classes weighted equally (prior 0.5); Cllr - minCllr is the calibration loss.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.isotonic import IsotonicRegression

from sv_toolkit.errors import ConfigError
from sv_toolkit.metrics.verification import ArrayLike, validate_trials


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR threshold of the Bayes decision at prior ``p_target``: log(C_fa (1 - p) / (C_miss p))."""
    if not 0.0 < p_target < 1.0:
        raise ConfigError(f"p_target must be in (0, 1), got {p_target}")
    return math.log(c_fa * (1.0 - p_target) / (c_miss * p_target))


def compute_act_dcf(
    llrs: ArrayLike, labels: ArrayLike, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised actual detection cost of the decisions ``llr >= bayes_threshold(p_target)``."""
    s, y = validate_trials(llrs, labels)
    accept = s >= bayes_threshold(p_target, c_miss, c_fa)
    p_miss = float(np.mean(~accept[y == 1]))
    p_fa = float(np.mean(accept[y == 0]))
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return dcf / min(c_miss * p_target, c_fa * (1.0 - p_target))


def _cllr(s: np.ndarray, y: np.ndarray) -> float:
    target_cost = np.logaddexp(0.0, -s[y == 1]).mean()  # log(1 + exp(-llr)), overflow-safe
    nontarget_cost = np.logaddexp(0.0, s[y == 0]).mean()
    return float((target_cost + nontarget_cost) / (2.0 * math.log(2.0)))


def compute_cllr(llrs: ArrayLike, labels: ArrayLike) -> float:
    """Log-likelihood-ratio cost Cllr in bits (Brümmer and du Preez 2006; see the module docstring)."""
    return _cllr(*validate_trials(llrs, labels))


def optimal_llrs(scores: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """The LLRs of the optimal monotonic (PAV) calibration of ``scores`` on these very trials.

    Isotonic regression of the labels on the scores, with each class weighted by 1 / its count, gives the
    posterior at prior 0.5, whose log-odds is the LLR. Posteriors of 0 or 1 become -inf / +inf LLRs.
    """
    s, y = validate_trials(scores, labels)
    n_target = y.sum()
    weights = np.where(y == 1, 1.0 / n_target, 1.0 / (y.size - n_target))
    posterior = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True).fit_transform(s, y, sample_weight=weights)
    with np.errstate(divide="ignore"):
        return np.log(posterior) - np.log1p(-posterior)


def compute_min_cllr(scores: ArrayLike, labels: ArrayLike) -> float:
    """minCllr: the Cllr of :func:`optimal_llrs`, the best any monotonic calibration of ``scores`` can reach."""
    s, y = validate_trials(scores, labels)
    llr = optimal_llrs(s, y)
    # -inf LLRs only occur for non-targets and +inf only for targets (PAV is exact there): zero cost each.
    target_cost = np.where(np.isposinf(llr), 0.0, np.logaddexp(0.0, -llr))[y == 1].mean()
    nontarget_cost = np.where(np.isneginf(llr), 0.0, np.logaddexp(0.0, llr))[y == 0].mean()
    return float((target_cost + nontarget_cost) / (2.0 * math.log(2.0)))


def llr_metrics(
    llrs: ArrayLike, labels: ArrayLike, p_targets: tuple[float, ...] = (0.01, 0.05)
) -> dict[str, float]:
    """``act_dcf_<p>`` for each prior (``f"{p:g}"``), ``cllr`` and ``min_cllr`` of calibrated scores."""
    s, y = validate_trials(llrs, labels)
    out = {f"act_dcf_{p:g}": compute_act_dcf(s, y, p) for p in p_targets}
    out["cllr"] = _cllr(s, y)
    out["min_cllr"] = compute_min_cllr(s, y)
    return out
