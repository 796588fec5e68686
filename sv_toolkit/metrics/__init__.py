"""Verification metrics: EER, normalised minDCF, actDCF and Cllr of calibrated scores, DET curve points."""
from sv_toolkit.metrics.det import DetCurve, det_curve, probit
from sv_toolkit.metrics.llr import (
    bayes_threshold,
    compute_act_dcf,
    compute_cllr,
    compute_min_cllr,
    llr_metrics,
    optimal_llrs,
)
from sv_toolkit.metrics.verification import (
    compute_eer,
    compute_min_dcf,
    error_rates,
    validate_trials,
    verification_metrics,
)

__all__ = [
    "DetCurve",
    "bayes_threshold",
    "compute_act_dcf",
    "compute_cllr",
    "compute_eer",
    "compute_min_cllr",
    "compute_min_dcf",
    "det_curve",
    "error_rates",
    "llr_metrics",
    "optimal_llrs",
    "probit",
    "validate_trials",
    "verification_metrics",
]
