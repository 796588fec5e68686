"""Detection error trade-off (DET) curve points.

A DET curve (A. Martin, G. Doddington, T. Kamm, M. Ordowski, M. Przybocki, "The DET curve in assessment of
detection task performance", Eurospeech 1997) plots P_miss against P_fa over all thresholds, both axes
warped by the probit function (the inverse of the standard normal CDF), so that normally distributed
target and non-target scores give a straight line. The points are the operating points of
:func:`sv_toolkit.metrics.verification.error_rates`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sv_toolkit.errors import ConfigError
from sv_toolkit.metrics.verification import ArrayLike, error_rates


def probit(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF; 0 and 1 map to -inf and +inf."""
    return torch.special.ndtri(torch.as_tensor(np.asarray(p, dtype=np.float64))).numpy()


@dataclass(frozen=True)
class DetCurve:
    """Operating points of a DET curve, thresholds descending: P_fa rises, P_miss falls."""

    p_miss: np.ndarray  # (K,)
    p_fa: np.ndarray  # (K,)
    thresholds: np.ndarray  # (K,)

    def probit_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(probit(P_fa), probit(P_miss)) of the points with both rates strictly inside (0, 1)."""
        inside = (self.p_miss > 0) & (self.p_miss < 1) & (self.p_fa > 0) & (self.p_fa < 1)
        return probit(self.p_fa[inside]), probit(self.p_miss[inside])


def det_curve(scores: ArrayLike, labels: ArrayLike, max_points: int | None = 2000) -> DetCurve:
    """DET points of a score list; with ``max_points``, thinned for plotting.

    Thinning keeps the two end points and those points where the curve has moved by at least
    1 / ``max_points`` of its probit length since the last kept point, so the plotted line is the same to the
    eye while a 580,000-trial list gives a few thousand points instead of hundreds of thousands.
    """
    p_miss, p_fa, thresholds = error_rates(scores, labels)
    if max_points is None or p_miss.size <= max_points:
        return DetCurve(p_miss, p_fa, thresholds)
    if max_points < 2:
        raise ConfigError(f"max_points must be at least 2 (or None for every point), got {max_points}")
    eps = 0.5 / max(p_miss.size, 2)  # clip so that the end points have a finite probit for the arc length
    x = probit(np.clip(p_fa, eps, 1 - eps))
    y = probit(np.clip(p_miss, eps, 1 - eps))
    step = np.hypot(np.diff(x), np.diff(y))
    arc = np.r_[0.0, np.cumsum(step)]
    # Keep the first point reaching each multiple of the spacing.
    spacing = arc[-1] / (max_points - 1)
    bins = np.floor(arc / spacing).astype(np.int64) if spacing > 0 else np.zeros_like(arc, dtype=np.int64)
    keep = np.r_[True, bins[1:] != bins[:-1]]
    keep[-1] = True
    return DetCurve(p_miss[keep], p_fa[keep], thresholds[keep])
