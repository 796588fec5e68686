"""Stage table: the systems of an experiment folder as Markdown tables, results.json rows and a DET plot
(the same code as scripts/make_table.py: :func:`sv_toolkit.reporting.write_report`)."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.reporting import find_systems, load_system, write_report

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    t = cfg.table
    results = [load_system(d) for d in find_systems(Path(t.systems_dir), list(t.systems))]
    report = write_report(results, t.out_dir, title=t.title, det_plot=t.det_plot)
    print("\n" + report.markdown)
    if report.det_png is not None:
        print(f"DET plot:       {report.det_png}")
    print(f"Markdown table: {report.results_md}")
    print(f"JSON rows:      {report.results_json}")
