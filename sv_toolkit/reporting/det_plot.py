"""DET-curve figure comparing systems: one panel per trial list, one colour per system.

Solid lines are the plain cosine scores, dashed lines the normalised (AS-norm / S-norm) scores; a dot marks
each curve's minDCF(0.01) operating point. Axes are probit-warped and labelled in percent
(:mod:`sv_toolkit.metrics.det`). Needs matplotlib, the optional extra ``sv_toolkit[plot]``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sv_toolkit.errors import InputFileError, MissingExtraError
from sv_toolkit.metrics import det_curve, probit
from sv_toolkit.utils.io import atomic_path

TICKS = np.array([0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80]) / 100  # spaced for labels that do not collide


@dataclass(frozen=True)
class DetSeries:
    """One curve: a label, its panel (trial list), colour group (system) and the scores with labels."""

    system: str
    trial_list: str
    variant: str  # "cosine" or a normalisation name
    scores: np.ndarray
    labels: np.ndarray


def _import_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingExtraError(
            "DET plots need matplotlib: pip install 'sv_toolkit[plot]' (or turn the plot off: table.det_plot=false, "
            "make_table.py --no-plot)"
        ) from err
    return Figure, FigureCanvasAgg


def _min_dcf_point(p_miss: np.ndarray, p_fa: np.ndarray, p_target: float = 0.01) -> tuple[float, float]:
    i = int(np.argmin(p_miss * p_target + p_fa * (1 - p_target)))
    return float(p_fa[i]), float(p_miss[i])


def plot_det(series: Sequence[DetSeries], path: str | os.PathLike, title: str = "", dpi: int = 100) -> Path:
    """Draw the DET curves of ``series`` into a PNG at ``path`` (written atomically); returns the path."""
    if not series:
        raise InputFileError("no score lists to plot")
    Figure, FigureCanvasAgg = _import_matplotlib()
    panels = list(dict.fromkeys(s.trial_list for s in series))
    systems = list(dict.fromkeys(s.system for s in series))
    colours = {name: f"C{i % 10}" for i, name in enumerate(systems)}
    curves = [(s, det_curve(s.scores, s.labels, max_points=1500)) for s in series]
    positive = [c.p_fa[c.p_fa > 0].min() for _, c in curves] + [c.p_miss[c.p_miss > 0].min() for _, c in curves]
    low = max(min(positive) / 1.5, TICKS[0])  # just below the smallest error rate any curve reaches
    ticks = TICKS[TICKS >= low]
    lim = probit(np.array([low, ticks[-1]]))

    fig = Figure(figsize=(max(3.6 * len(panels) + 0.4, 5.0), 4.4 + 0.15 * len(systems)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for s, c in curves:
            if s.trial_list != panel:
                continue
            x, y = c.probit_points()
            style = "-" if s.variant == "cosine" else "--"
            label = s.system if s.variant == "cosine" else f"{s.system} + {s.variant}"
            ax.plot(x, y, style, color=colours[s.system], lw=1.4, label=label)
            fa, miss = _min_dcf_point(c.p_miss, c.p_fa)
            if 0 < fa < 1 and 0 < miss < 1:
                ax.plot(probit(np.array([fa])), probit(np.array([miss])), "o", color=colours[s.system], ms=4)
        ax.plot(lim, lim, ":", color="0.6", lw=0.8)  # P_miss = P_fa: the EER line
        ax.set_xlim(*lim)
        ax.set_ylim(*lim)
        ax.set_xticks(probit(ticks), [f"{100 * t:g}" for t in ticks], fontsize=7)
        ax.set_yticks(probit(ticks), [f"{100 * t:g}" for t in ticks], fontsize=7)
        ax.grid(True, color="0.9", lw=0.6)
        ax.set_aspect("equal")
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("false-alarm rate (%)", fontsize=8)
        ax.set_ylabel("miss rate (%)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(systems), 5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return target
