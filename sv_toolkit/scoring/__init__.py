"""Embedding extraction, cosine scoring, cohort score normalisation (AS-norm / S-norm) and calibration."""
from sv_toolkit.scoring.calibration import (
    LinearCalibration,
    fit_linear_calibration,
    load_calibration,
    sample_training_trials,
    save_calibrations,
)
from sv_toolkit.scoring.cosine import (
    ScoreFile,
    cosine_scores,
    match_scores_to_trials,
    prepare_embeddings,
    read_scores,
    score_trials,
    trial_indices,
    write_scores,
)
from sv_toolkit.scoring.embeddings import (
    extract_embeddings,
    fbank_stats_embeddings,
    load_embedding_arrays,
    load_embeddings,
    save_embeddings,
    speaker_means,
)
from sv_toolkit.scoring.extractor import load_extractor
from sv_toolkit.scoring.norm import cohort_statistics, length_normalise, normalise_scores
from sv_toolkit.scoring.sources import AudioFeatureSource, FeatureSource, StoreFeatureSource

__all__ = [
    "AudioFeatureSource",
    "FeatureSource",
    "LinearCalibration",
    "ScoreFile",
    "StoreFeatureSource",
    "cohort_statistics",
    "cosine_scores",
    "extract_embeddings",
    "fbank_stats_embeddings",
    "fit_linear_calibration",
    "length_normalise",
    "load_calibration",
    "load_embedding_arrays",
    "load_embeddings",
    "load_extractor",
    "match_scores_to_trials",
    "normalise_scores",
    "prepare_embeddings",
    "read_scores",
    "sample_training_trials",
    "save_calibrations",
    "save_embeddings",
    "score_trials",
    "speaker_means",
    "trial_indices",
    "write_scores",
]
