"""Acoustic features: Kaldi-compatible fbank and mean normalisation."""
from sv_toolkit.features.fbank import apply_cmn, compute_fbank
from sv_toolkit.features.online import utterance_fbank
from sv_toolkit.features.store import FbankSettings

__all__ = ["FbankSettings", "apply_cmn", "compute_fbank", "utterance_fbank"]
