"""Linear score calibration to log-likelihood ratios by prior-weighted logistic regression.

The calibrated score is llr = scale * score + offset. It is fitted (BOSARIS toolkit ``train_linear_calibration``;
Brümmer and du Preez 2006, section 6) by logistic regression of the trial labels on the scores with the
targets weighted by p / N_target and the non-targets by (1 - p) / N_nontarget, p = ``prior``; the fitted
log posterior odds at that prior are then shifted by -logit(p) to give LLRs. Without regularisation the
result does not depend on p much; p = 0.5 (the default) weights both classes equally.

The training trials come from the training speakers (:func:`sample_training_trials`), never from the test
lists, so the test metrics of the calibrated scores (actDCF, Cllr) are honest.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from sv_toolkit.errors import ConfigError, InputFileError
from sv_toolkit.metrics import validate_trials
from sv_toolkit.utils.io import read_json, write_json_atomic


@dataclass(frozen=True)
class LinearCalibration:
    """llr = scale * score + offset, fitted at ``prior`` on ``num_target`` + ``num_nontarget`` trials."""

    scale: float
    offset: float
    prior: float
    num_target: int
    num_nontarget: int

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(scores, dtype=np.float64) + self.offset



def save_calibrations(path: str | os.PathLike, calibrations: dict[str, LinearCalibration]) -> None:
    """Write named calibrations (e.g. {"cosine": ..., "asnorm": ...}) to a JSON file atomically."""
    write_json_atomic(path, {name: asdict(c) for name, c in calibrations.items()})


def load_calibration(path: str | os.PathLike, name: str = "cosine") -> LinearCalibration:
    """The calibration called ``name`` of a file written by :func:`save_calibrations`."""
    data = read_json(path)
    if name not in data:
        raise InputFileError(f"{path} has no {name!r} calibration; it has {sorted(data)}")
    try:
        return LinearCalibration(**data[name])
    except TypeError as err:
        raise InputFileError(f"{path}: {name!r} is not a calibration written by save_calibrations ({err})") from err


def fit_linear_calibration(scores: np.ndarray, labels: np.ndarray, prior: float = 0.5) -> LinearCalibration:
    """Fit the calibration of the module docstring on (scores, labels) with scikit-learn's LogisticRegression."""
    if not 0.0 < prior < 1.0:
        raise ConfigError(f"calibration prior must be in (0, 1), got {prior}")
    s, y = validate_trials(scores, labels)
    n_target = int(y.sum())
    n_nontarget = y.size - n_target
    # Weights sum to the number of trials so that lbfgs's tolerance means what it usually does.
    weights = np.where(y == 1, prior / n_target, (1.0 - prior) / n_nontarget) * y.size
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000, tol=1e-10)
    model.fit(s[:, None], y, sample_weight=weights)
    scale = float(model.coef_[0, 0])
    offset = float(model.intercept_[0]) - math.log(prior / (1.0 - prior))
    return LinearCalibration(scale, offset, prior, n_target, n_nontarget)


def sample_training_trials(
    speakers: Sequence[str],
    num_target: int,
    num_nontarget: int,
    seed: int = 0,
    sessions: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic trials among training utterances: (enroll, test, labels), indices into ``speakers``.

    Target trials pick a speaker (with probability proportional to its number of utterances) and two different
    utterances of it; with ``sessions`` (one recording-session id per utterance, e.g. the VoxCeleb video) the two
    come from different sessions, and only speakers with two or more sessions give target trials, because test
    trials mostly compare recordings of different sessions. Non-target trials pick two utterances of different
    speakers. Pairs are drawn with replacement; the same ``seed`` gives the same trials.
    """
    if num_target < 1 or num_nontarget < 1:
        raise InputFileError(f"need at least one target and one non-target trial, got {num_target} and {num_nontarget}")
    ids, spk = np.unique(np.asarray(speakers, dtype=str), return_inverse=True)
    if ids.size < 2:
        raise InputFileError(f"calibration trials need at least 2 training speakers, got {ids.size}")
    if sessions is not None and len(sessions) != spk.size:
        raise InputFileError(f"{len(sessions)} session ids for {spk.size} utterances")
    rng = np.random.default_rng(seed)
    counts = np.bincount(spk, minlength=ids.size)
    order = np.argsort(spk, kind="stable")  # utterance rows grouped by speaker
    first = np.r_[0, np.cumsum(counts)[:-1]]  # where each speaker's rows start in ``order``
    if sessions is None:
        eligible = np.flatnonzero(counts >= 2)
        what = "two utterances"
    else:
        sess = np.unique(np.asarray(sessions, dtype=str), return_inverse=True)[1]
        pairs = np.unique(np.stack([spk, sess]), axis=1)  # distinct (speaker, session) pairs
        eligible = np.flatnonzero(np.bincount(pairs[0], minlength=ids.size) >= 2)
        what = "two sessions"
    if eligible.size == 0:
        raise InputFileError(f"no training speaker has {what}: target calibration trials cannot be drawn")
    chosen = rng.choice(eligible, size=num_target, p=counts[eligible] / counts[eligible].sum())
    a = rng.integers(0, counts[chosen])
    b = rng.integers(0, counts[chosen] - 1)
    b += b >= a  # a different utterance of the same speaker
    t_enroll, t_test = order[first[chosen] + a], order[first[chosen] + b]
    if sessions is not None:
        same = sess[t_enroll] == sess[t_test]
        while same.any():  # redraw the test side of same-session pairs (each chosen speaker has another session)
            t_test[same] = order[first[chosen[same]] + rng.integers(0, counts[chosen[same]])]
            same = sess[t_enroll] == sess[t_test]
    n_enroll = rng.integers(0, spk.size, size=num_nontarget)
    n_test = rng.integers(0, spk.size, size=num_nontarget)
    same = spk[n_enroll] == spk[n_test]
    while same.any():  # redraw the test side of same-speaker pairs
        n_test[same] = rng.integers(0, spk.size, size=int(same.sum()))
        same = spk[n_enroll] == spk[n_test]
    enroll = np.concatenate([t_enroll, n_enroll])
    test = np.concatenate([t_test, n_test])
    labels = np.r_[np.ones(num_target, dtype=np.int64), np.zeros(num_nontarget, dtype=np.int64)]
    return enroll, test, labels
