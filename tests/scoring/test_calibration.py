import numpy as np
import pytest

from sv_toolkit.metrics import compute_cllr, compute_min_cllr
from sv_toolkit.scoring import (
    LinearCalibration,
    fit_linear_calibration,
    load_calibration,
    sample_training_trials,
    save_calibrations,
)


def test_sampled_trials_are_deterministic_and_labelled_right():
    rng = np.random.default_rng(0)
    speakers = [f"spk{int(s):02d}" for s in rng.integers(0, 20, 400)] + ["solo"]  # "solo" has one utterance
    a = sample_training_trials(speakers, 3000, 4000, seed=5)
    b = sample_training_trials(speakers, 3000, 4000, seed=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    enroll, test, labels = a
    spk = np.asarray(speakers)
    assert labels.sum() == 3000 and labels.size == 7000
    assert np.all((spk[enroll] == spk[test]) == (labels == 1))
    assert np.all(enroll[labels == 1] != test[labels == 1])  # two different utterances
    assert "solo" not in set(spk[enroll[labels == 1]])
    assert not np.array_equal(sample_training_trials(speakers, 3000, 4000, seed=6)[0], enroll)


def test_sampling_errors():
    with pytest.raises(ValueError, match="at least 2 training speakers"):
        sample_training_trials(["a", "a"], 10, 10)
    with pytest.raises(ValueError, match="two utterances"):
        sample_training_trials(["a", "b", "c"], 10, 10)


def test_calibration_recovers_the_true_llr_of_gaussian_scores(tmp_path):
    # Equal-variance Gaussians: the true LLR is linear in the score, llr = (m1 - m0) / v * s - (m1^2 - m0^2) / (2 v).
    rng = np.random.default_rng(0)
    m0, m1, sd = 0.1, 0.6, 0.15
    labels = np.r_[np.ones(20000, int), np.zeros(30000, int)]
    scores = np.where(labels == 1, m1, m0) + sd * rng.normal(size=labels.size)
    cal = fit_linear_calibration(scores, labels)
    true_scale = (m1 - m0) / sd**2
    true_offset = -(m1**2 - m0**2) / (2 * sd**2)
    # Measured: 1.2% / 0.05 off with 50,000 trials; the bounds allow 4x that.
    assert cal.scale == pytest.approx(true_scale, rel=0.05)
    assert cal.offset == pytest.approx(true_offset, abs=0.3)
    llr = cal(scores)
    assert compute_cllr(llr, labels) == pytest.approx(compute_min_cllr(scores, labels), abs=0.01)
    # The prior only moves the fit slightly for a correct model.
    assert fit_linear_calibration(scores, labels, prior=0.1).scale == pytest.approx(true_scale, rel=0.05)
    save_calibrations(tmp_path / "c.json", {"cosine": cal})
    assert load_calibration(tmp_path / "c.json") == cal
    with pytest.raises(ValueError, match="no 'asnorm' calibration"):
        load_calibration(tmp_path / "c.json", "asnorm")


def test_calibration_input_errors():
    with pytest.raises(ValueError, match="prior"):
        fit_linear_calibration(np.array([0.1, 0.9]), np.array([0, 1]), prior=1.0)
    with pytest.raises(ValueError, match="no non-target"):
        fit_linear_calibration(np.array([0.1, 0.9]), np.array([1, 1]))
    assert isinstance(LinearCalibration(1.0, 0.0, 0.5, 1, 1)(np.array([2.0])), np.ndarray)


def test_cross_session_target_trials():
    rng = np.random.default_rng(1)
    speakers = [f"s{int(x)}" for x in rng.integers(0, 10, 500)] + ["one_session"] * 5
    sessions = [f"{spk}-v{int(v)}" for spk, v in zip(speakers, rng.integers(0, 3, 505))]
    sessions[-5:] = ["v"] * 5
    enroll, test, labels = sample_training_trials(speakers, 2000, 10, seed=0, sessions=sessions)
    sess, spk = np.asarray(sessions), np.asarray(speakers)
    t = labels == 1
    assert np.all(spk[enroll[t]] == spk[test[t]]) and np.all(sess[enroll[t]] != sess[test[t]])
    assert "one_session" not in set(spk[enroll[t]])
    with pytest.raises(ValueError, match="two sessions"):
        sample_training_trials(["a", "a", "b"], 5, 5, sessions=["x", "x", "y"])
