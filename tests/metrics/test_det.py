import numpy as np
import pytest
from sklearn.metrics import det_curve as sk_det_curve

from sv_toolkit.metrics import det_curve, probit


def test_det_points_are_sklearn_det_curve_points():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 1500)
    scores = np.round(rng.normal(size=1500) + labels, 2)
    curve = det_curve(scores, labels, max_points=None)
    fpr, fnr, thr = sk_det_curve(labels, scores)
    ours = {(round(a, 12), round(b, 12)) for a, b in zip(curve.p_fa, curve.p_miss)}
    theirs = {(round(a, 12), round(b, 12)) for a, b in zip(fpr, fnr)}
    assert theirs <= ours  # sklearn drops the points where nothing changes on one axis; we keep every threshold
    assert np.all(np.diff(curve.p_fa) >= 0) and np.all(np.diff(curve.p_miss) <= 0)


def test_thinning_keeps_ends_order_and_bounds_the_count():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200_000)
    scores = rng.normal(size=labels.size) + 2 * labels
    full = det_curve(scores, labels, max_points=None)
    thin = det_curve(scores, labels, max_points=500)
    assert thin.p_fa.size <= 501 and thin.p_fa.size > 100
    assert (thin.p_fa[0], thin.p_miss[0], thin.p_fa[-1], thin.p_miss[-1]) == (0.0, 1.0, 1.0, 0.0)
    assert np.all(np.diff(thin.p_fa) >= 0) and np.all(np.diff(thin.p_miss) <= 0)
    # Every kept point is a point of the full curve.
    assert np.isin(thin.thresholds, full.thresholds).all()


def test_probit():
    np.testing.assert_allclose(probit(np.array([0.5, 0.975])), [0.0, 1.959963984540054], atol=1e-12)
    assert probit(np.array([0.0]))[0] == -np.inf
    x, y = det_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]).probit_points()
    assert np.isfinite(x).all() and np.isfinite(y).all()
    with pytest.raises(ValueError, match="max_points"):
        det_curve(np.arange(10.0), np.arange(10) % 2, max_points=1)
