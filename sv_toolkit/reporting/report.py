"""Writing a results report: results.md (tables), results.json (rows) and det.png, from experiment folders.

Used by the table stage of the recipes and by ``scripts/make_table.py``, so both give the same output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sv_toolkit.errors import InputFileError, MissingFileError
from sv_toolkit.reporting.det_plot import DetSeries, plot_det
from sv_toolkit.reporting.table import NORM_NAMES, SystemResult, results_markdown, results_rows
from sv_toolkit.scoring.cosine import read_scores
from sv_toolkit.utils.io import write_json_atomic, write_text_atomic


@dataclass(frozen=True)
class Report:
    markdown: str
    results_md: Path
    results_json: Path
    det_png: Path | None


def det_series(results: Sequence[SystemResult], include_norm: bool = True) -> list[DetSeries]:
    """The score lists of every system and trial list (cosine, and normalised when present) for DET plots."""
    series = []
    for r in results:
        if r.exp_dir is None:
            raise MissingFileError(f"system {r.system} has no experiment folder to read score files from")
        norm = r.norm()
        variants = [("cosine", "")] + ([(NORM_NAMES[norm], f".{norm}")] if include_norm and norm else [])
        for trial_list in r.metrics:
            for variant, suffix in variants:
                sf = read_scores(r.exp_dir / "score" / f"{trial_list}{suffix}.scores")
                if sf.labels is None:
                    raise InputFileError(f"{r.exp_dir}/score/{trial_list}{suffix}.scores has no label column")
                series.append(DetSeries(r.system, trial_list, variant, sf.scores, sf.labels))
    return series


def write_report(
    results: Sequence[SystemResult], out_dir: str | os.PathLike, title: str = "", det_plot: bool = True
) -> Report:
    """Write results.md, results.json and (with ``det_plot``) det.png into ``out_dir``."""
    out = Path(out_dir)
    png = None
    if det_plot:
        png = plot_det(det_series(results), out / "det.png", title=title)
    markdown = results_markdown(results, title, det_plot=png.name if png else None)
    write_text_atomic(out / "results.md", markdown)
    write_json_atomic(out / "results.json", results_rows(results))
    return Report(markdown, out / "results.md", out / "results.json", png)
