"""Results tables in the field's layout, and the flat rows of results.json.

The main table has one row per system and scoring back-end, as in the wespeaker and paper tables: model,
params, training memory (peak of one step, activations saved for backward, optimizer states), optimizer,
precision, the back-end (cosine, + AS-norm), then ``EER% / minDCF0.01`` for each trial list; a system's
AS-norm row follows its plain cosine row with the system columns left empty. The calibration table shows,
for the calibrated scores (LLRs), ``actDCF0.01 / Cllr / minCllr`` per trial list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

NORM_NAMES = {"asnorm": "AS-norm", "snorm": "S-norm"}


@dataclass
class SystemResult:
    """Everything the tables show about one trained (or baseline) system."""

    system: str
    model: str
    params: int
    train_memory_bytes: int | None  # peak live bytes of one training step
    train_activation_bytes: int | None  # bytes saved for backward by one training step
    optimizer: str
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial list -> metrics.json entry
    train_optimizer_state_bytes: int | None = None
    precision: str | None = None
    exp_dir: Path | None = None  # the system's folder (score files for DET plots)
    missing: list[str] = field(default_factory=list)  # fields the experiment folder did not provide

    def norm(self) -> str | None:
        """The score normalisation of this system's metrics ('asnorm' / 'snorm'), or None."""
        for m in self.metrics.values():
            for name in NORM_NAMES:
                if name in m:
                    return name
        return None


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_params(n: int) -> str:
    return "-" if n == 0 else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def _verification(m: dict[str, Any]) -> dict[str, float]:
    keys = ("eer", "eer_threshold", "min_dcf_0.01", "min_dcf_0.05")
    out = {k: m[k] for k in keys if k in m}
    if "calibrated" in m:
        out["calibrated"] = dict(m["calibrated"])
    return out


def results_rows(results: Sequence[SystemResult]) -> list[dict]:
    """Flat rows for results.json: one per (system, trial list), EER as a fraction.

    ``eer`` / ``min_dcf_*`` are the plain cosine scores'; the normalised scores' metrics, when present, are in
    ``asnorm`` (or ``snorm``), the calibrated scores' in ``calibrated``.
    """
    rows = []
    for r in results:
        for trial_list, m in r.metrics.items():
            row = {
                "system": r.system,
                "model": r.model,
                "params": r.params,
                "train_memory_bytes": r.train_memory_bytes,
                "train_activation_bytes": r.train_activation_bytes,
                "train_optimizer_state_bytes": r.train_optimizer_state_bytes,
                "optimizer": r.optimizer,
                "precision": r.precision,
                "trial_list": trial_list,
                "num_trials": int(m["num_trials"]),
                **_verification(m),
            }
            for norm in NORM_NAMES:
                if norm in m:
                    row[norm] = {"top_n": m[norm].get("top_n"), **_verification(m[norm])}
            rows.append(row)
    return rows


def trial_lists_of(results: Sequence[SystemResult]) -> list[str]:
    out: list[str] = []
    for r in results:
        out += [t for t in r.metrics if t not in out]
    return out


def _variants(r: SystemResult) -> list[tuple[str, str | None]]:
    """(label of the norm column, metrics key or None for plain cosine) for each back-end row of a system."""
    out: list[tuple[str, str | None]] = [("cosine", None)]
    norm = r.norm()
    if norm is not None:
        sizes = {(m[norm].get("top_n"), m[norm].get("cohort_size")) for m in r.metrics.values() if norm in m}
        suffix = ""
        if norm == "asnorm" and len(sizes) == 1:  # the same cohort for every trial list
            top_n, cohort_size = sizes.pop()
            suffix = f" (top {top_n} of {cohort_size})" if cohort_size else f" (top {top_n})"
        out.append(("+ " + NORM_NAMES[norm] + suffix, norm))
    return out


def _metrics_of(m: dict[str, Any] | None, variant: str | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return m if variant is None else m.get(variant)


def _table(header: list[str], rows: list[list[str]], title: str) -> str:
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def markdown_table(results: Sequence[SystemResult], title: str = "") -> str:
    """The main table (see the module docstring)."""
    trial_lists = trial_lists_of(results)
    header = ["system", "model", "params", "train peak mem", "saved activations", "optim states", "optimizer",
              "precision", "back-end"] + [f"{t} EER% / minDCF0.01" for t in trial_lists]
    rows = []
    for r in results:
        for k, (label, variant) in enumerate(_variants(r)):
            cells = [r.system, r.model, human_params(r.params), human_bytes(r.train_memory_bytes),
                     human_bytes(r.train_activation_bytes), human_bytes(r.train_optimizer_state_bytes), r.optimizer,
                     r.precision or "-"] if k == 0 else [""] * 8
            cells.append(label)
            for t in trial_lists:
                m = _metrics_of(r.metrics.get(t), variant)
                cells.append("-" if m is None else f"{100 * m['eer']:.2f} / {m['min_dcf_0.01']:.3f}")
            rows.append(cells)
    return _table(header, rows, title)


def calibration_table(results: Sequence[SystemResult], title: str = "") -> str | None:
    """The calibrated-score table (see the module docstring), or None when no system was calibrated."""
    trial_lists = trial_lists_of(results)
    header = ["system", "back-end"] + [f"{t} actDCF0.01 / Cllr / minCllr" for t in trial_lists]
    rows = []
    for r in results:
        for k, (label, variant) in enumerate(_variants(r)):
            cells = [r.system if k == 0 else "", label]
            any_calibrated = False
            for t in trial_lists:
                m = _metrics_of(r.metrics.get(t), variant)
                c = None if m is None else m.get("calibrated")
                any_calibrated |= c is not None
                cells.append("-" if c is None else f"{c['act_dcf_0.01']:.3f} / {c['cllr']:.3f} / {c['min_cllr']:.3f}")
            if any_calibrated:
                rows.append(cells)
    return _table(header, rows, title) if rows else None


def results_markdown(results: Sequence[SystemResult], title: str = "", det_plot: str | None = None) -> str:
    """results.md: the main table, the calibration table when there is one, and the DET plot's image link."""
    text = markdown_table(results, title)
    cal = calibration_table(results, f"{title}: calibrated scores (LLR)" if title else "calibrated scores (LLR)")
    if cal is not None:
        text += "\n" + cal
    if det_plot is not None:
        text += f"\n![DET curves]({det_plot})\n"
    return text
