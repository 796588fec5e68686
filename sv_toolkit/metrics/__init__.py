"""Verification metrics: EER and normalised minDCF."""
from sv_toolkit.metrics.verification import compute_eer, compute_min_dcf, error_rates

__all__ = ["compute_eer", "compute_min_dcf", "error_rates"]
