"""Speaker-level bootstrap intervals of EER and minDCF: how much a figure depends on which test speakers
happen to be in a small trial list.

Trials are not independent (every trial of a speaker shares that speaker's voice), so resampling trials
understates the spread; resampling *speakers* does not (Bolle, Ratha and Pankanti, "Error analysis of
pattern recognition systems: the subsets bootstrap", 2004; Poh and Bengio, 2007). One resample draws the
test speakers with replacement; a speaker drawn m times counts m times: its target trials get weight m, a
non-target trial between speakers drawn m and k times gets weight m x k. Several runs of a system (seeds)
are scored on the same resample and averaged, so the interval is that of the seed-mean figure, and the same
resamples serve every system (paired comparisons).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sv_toolkit.errors import ConfigError, InputFileError
from sv_toolkit.metrics.verification import _eer, _min_dcf, _operating_points, validate_trials


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    resamples: int  # resamples used (those with both target and non-target trials)


def speaker_resamples(num_speakers: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, num_speakers) multiplicities: how often each speaker is drawn in each of n resamples."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_speakers, size=(n, num_speakers))
    return np.stack([np.bincount(d, minlength=num_speakers) for d in draws])


def trial_weights(multiplicity: np.ndarray, enroll_speaker: np.ndarray, test_speaker: np.ndarray,
                  labels: np.ndarray) -> np.ndarray:
    """(n, T) trial weights of n resamples: target trials m, non-target trials m_enroll x m_test."""
    m_e, m_t = multiplicity[:, enroll_speaker], multiplicity[:, test_speaker]
    return np.where(labels[None, :] == 1, m_e, m_e * m_t).astype(np.float64)


def weighted_eer_min_dcf(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                         p_target: float = 0.01) -> tuple[float, float]:
    """EER (fraction) and normalised minDCF of trials counted ``weights`` times each."""
    p_miss, p_fa, thresholds = _operating_points(scores, labels, weights)
    return _eer(p_miss, p_fa, thresholds)[0], _min_dcf(p_miss, p_fa, thresholds, p_target, 1.0, 1.0)[0]


def speaker_replicates(
    scores: np.ndarray,
    labels: np.ndarray,
    enroll_speaker: Sequence[str],
    test_speaker: Sequence[str],
    n: int = 1000,
    seed: int = 0,
    p_target: float = 0.01,
) -> dict[str, np.ndarray]:
    """EER and minDCF(``p_target``) of one run on each of ``n`` speaker resamples: ``{"eer": (n,), "min_dcf":
    (n,)}``, NaN where a resample has no target or no non-target trial. The resamples depend only on the trial
    list's speakers and ``seed``, so replicates of several runs (seeds) of the same trials can be averaged
    later, resample by resample, which is what lets a table grow one run at a time."""
    s, y = validate_trials(scores, labels)
    names = sorted(set(enroll_speaker) | set(test_speaker))
    index = {sp: i for i, sp in enumerate(names)}
    e = np.array([index[sp] for sp in enroll_speaker])
    t = np.array([index[sp] for sp in test_speaker])
    if e.size != y.size or t.size != y.size:
        raise InputFileError(f"{y.size} trials but {e.size} enrolment and {t.size} test speakers")
    weights = trial_weights(speaker_resamples(len(names), n, seed), e, t, y)
    usable = ((weights * y).sum(1) > 0) & ((weights * (1 - y)).sum(1) > 0)
    eers, dcfs = np.full(n, np.nan), np.full(n, np.nan)
    for i in np.flatnonzero(usable):
        eers[i], dcfs[i] = weighted_eer_min_dcf(s, y, weights[i], p_target)
    return {"eer": eers, "min_dcf": dcfs}


def replicate_interval(replicates: Sequence[np.ndarray], level: float = 0.95) -> Interval:
    """Percentile interval of the run-mean over resamples, from each run's replicates of the same resamples."""
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if not replicates:
        raise InputFileError("no runs to bootstrap")
    sizes = {len(r) for r in replicates}
    if len(sizes) != 1:
        raise InputFileError(f"runs have different numbers of bootstrap resamples: {sorted(sizes)}")
    stacked = np.stack([np.asarray(r, dtype=np.float64) for r in replicates])
    usable = ~np.isnan(stacked).any(0)
    mean = stacked[:, usable].mean(0)
    lo, hi = np.percentile(mean, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return Interval(float(lo), float(hi), int(usable.sum()))


def speaker_bootstrap(
    runs: Sequence[np.ndarray],
    labels: np.ndarray,
    enroll_speaker: Sequence[str],
    test_speaker: Sequence[str],
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    p_target: float = 0.01,
) -> dict[str, Interval]:
    """Percentile intervals of the run-mean EER and minDCF(``p_target``) over ``n`` speaker resamples.

    ``runs``: one score array per run (seed) of the same trials; ``labels`` 1 = target; the speakers of each
    trial's enrolment and test side. Returns ``{"eer": Interval, "min_dcf": Interval}``.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    if not runs:
        raise InputFileError("no runs to bootstrap")
    reps = [speaker_replicates(r, labels, enroll_speaker, test_speaker, n, seed, p_target) for r in runs]
    return {k: replicate_interval([r[k] for r in reps], level) for k in ("eer", "min_dcf")}
