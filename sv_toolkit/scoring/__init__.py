"""Embedding extraction and trial scoring."""
from sv_toolkit.scoring.cosine import score_trials, write_scores
from sv_toolkit.scoring.embeddings import (
    extract_embeddings,
    fbank_stats_embeddings,
    load_embeddings,
    save_embeddings,
)

__all__ = [
    "extract_embeddings",
    "fbank_stats_embeddings",
    "load_embeddings",
    "save_embeddings",
    "score_trials",
    "write_scores",
]
