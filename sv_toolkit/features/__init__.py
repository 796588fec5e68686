"""Acoustic features: Kaldi-compatible fbank and mean normalisation."""
from sv_toolkit.features.fbank import apply_cmn, compute_fbank

__all__ = ["apply_cmn", "compute_fbank"]
