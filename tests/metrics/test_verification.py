import numpy as np
import pytest
from sklearn.metrics import roc_curve

from sv_toolkit.metrics import compute_eer, compute_min_dcf


def reference_eer(scores, labels):
    """EER from sklearn's ROC: linear interpolation where FNR - FPR changes sign."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    d = fnr - fpr
    i = np.flatnonzero(d <= 0)[0]
    if d[i] == 0:
        return fpr[i]
    t = d[i - 1] / (d[i - 1] - d[i])
    return fpr[i - 1] + t * (fpr[i] - fpr[i - 1])


def reference_min_dcf(scores, labels, p):
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return np.min((1 - tpr) * p + fpr * (1 - p)) / min(p, 1 - p)


def brute_force_min_dcf(scores, labels, p):
    """Literal definition: every threshold among the scores plus +inf."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    best = np.inf
    for th in np.r_[np.unique(scores), np.inf]:
        accept = scores >= th
        p_miss = np.mean(~accept[labels == 1])
        p_fa = np.mean(accept[labels == 0])
        best = min(best, p_miss * p + p_fa * (1 - p))
    return best / min(p, 1 - p)


@pytest.mark.parametrize("seed", range(5))
def test_eer_and_min_dcf_match_sklearn_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(50, 3000)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + 1.5 * labels
    assert compute_eer(scores, labels) == pytest.approx(reference_eer(scores, labels), abs=1e-6)
    for p in (0.01, 0.05, 0.5):
        assert compute_min_dcf(scores, labels, p) == pytest.approx(reference_min_dcf(scores, labels, p), abs=1e-6)


def test_tied_scores_match_references():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 500)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=500) + labels, 1)  # many ties
    assert compute_eer(scores, labels) == pytest.approx(reference_eer(scores, labels), abs=1e-6)
    for p in (0.01, 0.05):
        assert compute_min_dcf(scores, labels, p) == pytest.approx(brute_force_min_dcf(scores, labels, p), abs=1e-6)
        assert compute_min_dcf(scores, labels, p) == pytest.approx(reference_min_dcf(scores, labels, p), abs=1e-6)


def test_known_values():
    # Perfect separation: EER 0, minDCF 0.
    assert compute_eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    assert compute_min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # Reversed: EER 1.
    assert compute_eer([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(1.0)
    # All scores tied: the only operating points are (P_miss, P_fa) = (1, 0) and (0, 1): EER 0.5.
    assert compute_eer([0.5] * 6, [0, 1, 0, 1, 0, 1]) == pytest.approx(0.5)
    # Normalised minDCF never exceeds 1 (accept-all or reject-all costs at most min(p, 1-p)).
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    assert compute_min_dcf(rng.normal(size=200), labels, 0.01) <= 1.0 + 1e-12


def test_eer_is_fast_on_vox1_e_sized_lists():
    import time

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 580_000)
    scores = rng.normal(size=labels.size) + labels
    start = time.perf_counter()
    compute_eer(scores, labels)
    compute_min_dcf(scores, labels)
    # Generous bound: this guards against an accidental O(n^2) path, not a benchmark.
    assert time.perf_counter() - start < 10.0


@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([0.1, 0.2], [1, 1], "no non-target"),
        ([0.1, 0.2], [0, 0], "no target"),
        ([0.1, float("nan")], [0, 1], "not finite"),
        ([0.1, 0.2, 0.3], [0, 1], "differ in length"),
        ([0.1, 0.2], [0, 2], "labels must be"),
        ([], [], "no trials"),
    ],
)
def test_bad_input_raises_clear_errors(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        compute_eer(scores, labels)


def test_p_target_is_validated():
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.9], [0, 1], p_target=0.0)


@pytest.mark.parametrize("seed", range(3))
def test_verification_metrics_agree_with_the_single_metrics_and_their_thresholds(seed):
    from sv_toolkit.metrics import verification_metrics

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 2000)
    scores = np.round(rng.normal(size=2000) + 1.2 * labels, 2)  # with ties
    m = verification_metrics(scores, labels)
    assert m["num_trials"] == 2000 and m["num_target"] == labels.sum()
    assert m["eer"] == compute_eer(scores, labels)
    for p in (0.01, 0.05):
        assert m[f"min_dcf_{p:g}"] == compute_min_dcf(scores, labels, p)
        # The reported threshold achieves the minimum (accept score >= threshold).
        th = m[f"min_dcf_{p:g}_threshold"]
        accept = scores >= th
        dcf = p * np.mean(~accept[labels == 1]) + (1 - p) * np.mean(accept[labels == 0])
        assert dcf / min(p, 1 - p) == pytest.approx(m[f"min_dcf_{p:g}"], abs=1e-12)
    # At the EER threshold, miss and false-alarm rates straddle the EER.
    th = m["eer_threshold"]
    p_miss = np.mean(scores[labels == 1] < th)
    p_fa = np.mean(scores[labels == 0] >= th)
    assert min(p_miss, p_fa) - 0.01 <= m["eer"] <= max(p_miss, p_fa) + 0.01
