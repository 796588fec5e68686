"""Stage table: collect the systems of an experiment folder into a Markdown table and results.json."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.reporting import SystemResult, markdown_table, results_rows
from sv_toolkit.utils.io import read_json, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)


def load_system(exp_dir: Path) -> SystemResult:
    """A system's results from its ``embed/info.json``, ``score/metrics.json`` and, if trained, ``train/summary.json``."""
    info = read_json(exp_dir / "embed" / "info.json")
    metrics = read_json(exp_dir / "score" / "metrics.json")
    summary_path = exp_dir / "train" / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else {}
    memory = summary.get("memory") or {}
    return SystemResult(
        system=info["system"],
        model=info["model"],
        params=int(info["params"]),
        train_memory_bytes=memory.get("peak_live"),
        train_activation_bytes=memory.get("activations_saved"),
        optimizer=summary.get("optimizer", "-"),
        metrics=metrics,
    )


def find_systems(root: Path, names: list[str]) -> list[Path]:
    """The named system folders under ``root``, or every one with scores; baselines first."""
    if names:
        dirs = [root / n for n in names]
        missing = [d for d in dirs if not (d / "score" / "metrics.json").exists()]
        if missing:
            raise FileNotFoundError(f"no scores in {missing[0]}; run scripts/score.py for that system, or drop it from table.systems")
    else:
        dirs = sorted(p.parent.parent for p in root.glob("*/score/metrics.json"))
        if not dirs:
            raise FileNotFoundError(f"no scored systems under {root}; run the score stage first")
    return sorted(dirs, key=lambda d: (not d.name.startswith("baseline"), d.name))


def run(cfg: DictConfig) -> None:
    root = Path(cfg.table.systems_dir)
    results = [load_system(d) for d in find_systems(root, list(cfg.table.systems))]
    title = cfg.table.title
    table = markdown_table(results, title=title)
    out_dir = Path(cfg.table.out_dir)
    write_text_atomic(out_dir / "results.md", table)
    write_json_atomic(out_dir / "results.json", results_rows(results))
    print("\n" + table)
    print(f"Markdown table: {out_dir / 'results.md'}")
    print(f"JSON rows:      {out_dir / 'results.json'}")
