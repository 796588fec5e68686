import math

import numpy as np
import pytest

from sv_toolkit.metrics import (
    bayes_threshold,
    compute_act_dcf,
    compute_cllr,
    compute_min_cllr,
    compute_min_dcf,
    llr_metrics,
    optimal_llrs,
)


def brute_cllr(llr, labels):
    llr, labels = np.asarray(llr, float), np.asarray(labels)
    tar = np.mean([math.log(1 + math.exp(-x)) for x in llr[labels == 1]])
    non = np.mean([math.log(1 + math.exp(x)) for x in llr[labels == 0]])
    return (tar + non) / (2 * math.log(2))


def brute_pav(scores, labels):
    """Pool-adjacent-violators on class-balanced weights, written out literally (targets first among ties)."""
    order = np.lexsort((-labels, scores))
    y = labels[order].astype(float)
    w = np.where(y == 1, 1 / y.sum(), 1 / (y.size - y.sum()))
    blocks = []  # [weighted sum, weight, count]
    for yi, wi in zip(y, w):
        blocks.append([yi * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, ww, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += ww
            blocks[-1][2] += n
    post = np.concatenate([[b[0] / b[1]] * b[2] for b in blocks])
    out = np.empty_like(post)
    out[order] = post
    return out


def test_bayes_threshold():
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.01) == pytest.approx(math.log(99))
    with pytest.raises(ValueError, match="p_target"):
        bayes_threshold(1.0)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.5])
def test_act_dcf_is_the_dcf_at_the_bayes_threshold(p):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 3000)
    llr = rng.normal(size=3000) * 2 + 3 * labels - 2
    theta = math.log((1 - p) / p)
    p_miss = np.mean(llr[labels == 1] < theta)
    p_fa = np.mean(llr[labels == 0] >= theta)
    expected = (p * p_miss + (1 - p) * p_fa) / min(p, 1 - p)
    assert compute_act_dcf(llr, labels, p) == pytest.approx(expected, abs=1e-12)
    assert compute_act_dcf(llr, labels, p) >= compute_min_dcf(llr, labels, p) - 1e-12


def test_cllr_known_values_and_brute_force():
    labels = np.array([0, 1] * 50)
    assert compute_cllr(np.zeros(100), labels) == pytest.approx(1.0)  # "llr = 0 always" costs exactly 1 bit
    assert compute_cllr(np.where(labels == 1, 50.0, -50.0), labels) < 1e-20
    rng = np.random.default_rng(2)
    llr = rng.normal(size=100) * 3
    assert compute_cllr(llr, labels) == pytest.approx(brute_cllr(llr, labels), rel=1e-12)
    assert np.isfinite(compute_cllr(np.where(labels == 1, -800.0, 800.0), labels))  # no overflow


def test_min_cllr_matches_literal_pav_and_bounds_cllr():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.round(rng.normal(size=400) + labels, 1)  # ties
    post = brute_pav(scores, labels)
    with np.errstate(divide="ignore"):
        llr_ref = np.log(post) - np.log1p(-post)
    llr = optimal_llrs(scores, labels)
    finite = np.isfinite(llr_ref)
    np.testing.assert_allclose(llr[finite], llr_ref[finite], atol=1e-9)
    min_cllr = compute_min_cllr(scores, labels)
    assert 0 < min_cllr < 1
    # No affine calibration does better than the optimal monotonic one; a monotonic transform changes nothing.
    for a, b in [(1.0, 0.0), (2.0, -1.0), (3.5, -1.7)]:
        assert compute_cllr(a * scores + b, labels) >= min_cllr - 1e-12
    assert compute_min_cllr(np.exp(scores), labels) == pytest.approx(min_cllr, abs=1e-12)


def test_min_cllr_extremes():
    labels = np.array([0, 0, 1, 1])
    assert compute_min_cllr([0.1, 0.2, 0.8, 0.9], labels) == 0.0  # separable: infinite LLRs, no cost
    assert compute_min_cllr([0.5] * 4, labels) == pytest.approx(1.0)  # uninformative


def test_llr_metrics_keys_and_errors():
    labels = np.array([0, 1, 0, 1, 1, 0])
    m = llr_metrics(np.array([-2, 1, -0.5, 3, 0.2, 0.1]), labels)
    assert set(m) == {"act_dcf_0.01", "act_dcf_0.05", "cllr", "min_cllr"}
    with pytest.raises(ValueError, match="no target"):
        compute_cllr([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="not finite"):
        compute_act_dcf([0.1, float("nan")], [0, 1])
