"""Speaker-level bootstrap: weighted metrics agree with repeated trials, intervals cover and shrink."""
from __future__ import annotations

import numpy as np
import pytest

from sv_toolkit.metrics import compute_eer, compute_min_dcf
from sv_toolkit.metrics.bootstrap import speaker_bootstrap, speaker_resamples, trial_weights, weighted_eer_min_dcf


def _trials(num_speakers: int, utts: int, seed: int, separation: float = 2.0):
    """All pairs of ``utts`` utterances of each speaker; scores a noisy function of same / different speaker,
    with a per-speaker offset so that speakers differ in difficulty (what makes trials dependent)."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(0, 0.7, num_speakers)
    spk = np.repeat(np.arange(num_speakers), utts)
    i, j = np.triu_indices(spk.size, 1)
    y = (spk[i] == spk[j]).astype(int)
    s = separation * y + offset[spk[i]] * y + rng.normal(0, 1, i.size)
    return s, y, [f"s{k}" for k in spk[i]], [f"s{k}" for k in spk[j]]


def test_unit_weights_give_the_plain_metrics():
    s, y, _, _ = _trials(6, 5, 0)
    eer, dcf = weighted_eer_min_dcf(s, y, np.ones(s.size))
    assert eer == pytest.approx(compute_eer(s, y), abs=1e-12)
    assert dcf == pytest.approx(compute_min_dcf(s, y, 0.01), abs=1e-12)


def test_integer_weights_equal_repeated_trials():
    s, y, _, _ = _trials(5, 4, 1)
    w = np.random.default_rng(2).integers(0, 4, s.size)
    w[np.flatnonzero(y)[0]] = 1 + w[np.flatnonzero(y)[0]]  # keep a target
    eer, dcf = weighted_eer_min_dcf(s, y, w.astype(float), p_target=0.05)
    rep_s, rep_y = np.repeat(s, w), np.repeat(y, w)
    assert eer == pytest.approx(compute_eer(rep_s, rep_y), abs=1e-12)
    assert dcf == pytest.approx(compute_min_dcf(rep_s, rep_y, 0.05), abs=1e-12)


def test_resample_weights_follow_speaker_multiplicities():
    m = speaker_resamples(4, 3, seed=5)
    assert m.shape == (3, 4) and (m.sum(1) == 4).all()
    e, t, y = np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([1, 0, 0])
    w = trial_weights(m, e, t, y)
    np.testing.assert_array_equal(w[:, 0], m[:, 0])                # target: the speaker's multiplicity
    np.testing.assert_array_equal(w[:, 1], m[:, 0] * m[:, 1])      # non-target: the product
    np.testing.assert_array_equal(w[:, 2], m[:, 1] * m[:, 2])


def test_interval_covers_the_estimate_and_is_reproducible():
    s, y, e, t = _trials(10, 10, 3)
    runs = [s, s + np.random.default_rng(4).normal(0, 0.1, s.size)]
    ci = speaker_bootstrap(runs, y, e, t, n=300, seed=7)
    point = np.mean([compute_eer(r, y) for r in runs])
    assert ci["eer"].low < point < ci["eer"].high and ci == speaker_bootstrap(runs, y, e, t, n=300, seed=7)
    assert ci["min_dcf"].low <= ci["min_dcf"].high and ci["eer"].resamples == 300


def _width(num_speakers: int, seed: int) -> float:
    s, y, e, t = _trials(num_speakers, 6, seed)
    ci = speaker_bootstrap([s], y, e, t, n=200, seed=seed)["eer"]
    return ci.high - ci.low


def test_interval_shrinks_with_more_speakers():
    # 4x the speakers: about half as wide (1/sqrt(4)). Measured, mean widths over data seeds {0,1,2}, {3,4,5},
    # {6,7,8}, {9,10,11}: 0.49, 0.47, 0.47, 0.51 (a single data seed ranges 0.40-0.91, hence the mean of three)
    ratio = np.mean([_width(40, k) for k in range(3)]) / np.mean([_width(10, k) for k in range(3)])
    assert ratio < 0.7


def test_mismatched_speaker_lists_are_refused():
    s, y, e, t = _trials(3, 3, 0)
    with pytest.raises(ValueError, match="trials but"):
        speaker_bootstrap([s], y, e[:-1], t)
