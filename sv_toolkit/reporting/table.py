"""Results tables: one Markdown row per system, EER / minDCF for each trial list, plus results.json rows."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class SystemResult:
    """Everything the table shows about one trained (or baseline) system."""

    system: str
    model: str
    params: int
    train_memory_bytes: int | None  # peak live bytes of one training step
    train_activation_bytes: int | None  # bytes saved for backward by one training step
    optimizer: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # trial list -> metric -> value


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _human_params(n: int) -> str:
    return "-" if n == 0 else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def results_rows(results: Sequence[SystemResult]) -> list[dict]:
    """Flat rows for results.json: one per (system, trial list), EER as a fraction."""
    rows = []
    for r in results:
        for trial_list, m in r.metrics.items():
            rows.append(
                {
                    "system": r.system,
                    "model": r.model,
                    "params": r.params,
                    "train_memory_bytes": r.train_memory_bytes,
                    "train_activation_bytes": r.train_activation_bytes,
                    "optimizer": r.optimizer,
                    "trial_list": trial_list,
                    "num_trials": int(m["num_trials"]),
                    "eer": m["eer"],
                    "min_dcf_0.01": m["min_dcf_0.01"],
                    "min_dcf_0.05": m["min_dcf_0.05"],
                }
            )
    return rows


def markdown_table(results: Sequence[SystemResult], title: str = "") -> str:
    """A Markdown table: system, model, params, training memory (peak and activations saved for backward) and
    optimizer, then 'EER% / minDCF0.01 / minDCF0.05' for each trial list."""
    trial_lists: list[str] = []
    for r in results:
        trial_lists += [t for t in r.metrics if t not in trial_lists]
    header = ["system", "model", "params", "train peak mem", "saved activations", "optimizer"] + [
        f"{t} EER% / DCF0.01 / DCF0.05" for t in trial_lists
    ]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [
            r.system, r.model, _human_params(r.params), _human_bytes(r.train_memory_bytes),
            _human_bytes(r.train_activation_bytes), r.optimizer,
        ]
        for t in trial_lists:
            m = r.metrics.get(t)
            cells.append("-" if m is None else f"{100 * m['eer']:.2f} / {m['min_dcf_0.01']:.3f} / {m['min_dcf_0.05']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
