"""Reading experiment folders (``exp/<data>/<system>/``) into :class:`SystemResult`s.

A system folder holds ``embed/info.json`` (system, model, params), ``score/metrics.json`` and, when the system
was trained, ``train/summary.json`` (``memory`` {peak_live, activations_saved, optimizer_states}, ``optimizer``,
``precision``, else the recorded trainer config). Fields an older or partial run did not write are shown as "-" and listed in
``SystemResult.missing``; a folder without scores is an error naming it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from sv_toolkit.errors import MissingFileError
from sv_toolkit.reporting.table import SystemResult
from sv_toolkit.utils.io import read_json

log = logging.getLogger(__name__)

METRICS = Path("score") / "metrics.json"


def _field(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            return None
        value = value[part]
    return value


def _trainer_precision(exp_dir: Path) -> str | None:
    """Precision from the train stage's recorded config: ``trainer.precision`` if set; "fp32" when the trainer
    config has no precision or AMP setting at all (train stages of that version trained in fp32 only)."""
    done = exp_dir / "train" / ".done"
    if not done.is_file():
        return None
    trainer = _field(read_json(done), "config.trainer")
    if not isinstance(trainer, dict):
        return None
    if trainer.get("precision") is not None:
        return str(trainer["precision"])
    if any(k in trainer for k in ("precision", "amp", "dtype", "mixed_precision", "autocast")):
        return None  # a precision setting this reader does not know how to interpret: reported as missing
    return "fp32"


def load_system(exp_dir: str | os.PathLike) -> SystemResult:
    """A system's results from its experiment folder (see the module docstring)."""
    d = Path(exp_dir)
    if not (d / METRICS).is_file():
        raise MissingFileError(f"no scores in {d} ({METRICS} is missing); run scripts/score.py for that system")
    info = read_json(d / "embed" / "info.json")
    metrics = read_json(d / METRICS)
    trained = (d / "train").is_dir()
    summary = read_json(d / "train" / "summary.json") if (d / "train" / "summary.json").is_file() else {}
    missing = []
    if trained and not summary:
        missing.append("train/summary.json")

    def from_summary(path: str) -> Any:
        value = _field(summary, path)
        if value is None and trained and summary:
            missing.append(f"train/summary.json:{path}")
        return value

    precision = _field(summary, "precision") or _trainer_precision(d)
    if precision is None and trained:
        missing.append("train/summary.json:precision")
    result = SystemResult(
        system=info["system"],
        model=info["model"],
        params=int(info["params"]),
        train_memory_bytes=from_summary("memory.peak_live"),
        train_activation_bytes=from_summary("memory.activations_saved"),
        optimizer=from_summary("optimizer") or "-",
        metrics=metrics,
        train_optimizer_state_bytes=from_summary("memory.optimizer_states"),
        precision=None if precision is None else str(precision),
        exp_dir=d,
        missing=missing,
    )
    if missing:
        log.warning("%s: %s not recorded (shown as '-')", d, ", ".join(missing))
    return result


def find_systems(root: str | os.PathLike, names: Sequence[str] = ()) -> list[Path]:
    """The named system folders under ``root``, or every one with scores; baselines first, then by name."""
    root = Path(root)
    if names:
        dirs = [root / n for n in names]
        missing = [d for d in dirs if not (d / METRICS).exists()]
        if missing:
            raise MissingFileError(f"no scores in {missing[0]}; run scripts/score.py for that system, or leave it out")
    else:
        dirs = sorted(p.parent.parent for p in root.glob(f"*/{METRICS.as_posix()}"))
        if not dirs:
            raise MissingFileError(f"no scored systems under {root}; run the score stage first")
    return sorted(dirs, key=lambda p: (not p.name.startswith("baseline"), p.name))


def expand_folders(folders: Sequence[str | os.PathLike]) -> dict[str, list[Path]]:
    """Group folders into tables: a data folder (``exp/<data>``) gives its scored systems, a system folder
    (``exp/<data>/<system>``) itself; tables are keyed by the data folder's name, in the order first seen."""
    tables: dict[str, list[Path]] = {}
    for f in folders:
        p = Path(f)
        if not p.is_dir():
            raise MissingFileError(f"experiment folder {p} does not exist")
        is_system = (p / METRICS).is_file()
        systems = [p] if is_system else find_systems(p)
        group = tables.setdefault(p.resolve().parent.name if is_system else p.resolve().name, [])
        group += [s for s in systems if s not in group]
    return tables
