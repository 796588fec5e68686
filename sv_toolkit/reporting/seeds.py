"""Several seeds of several systems on one trial list -> mean ± sd per system, a speaker-level bootstrap interval,
and the cost columns (parameters, measured peak training memory, training samples/s).

Layout read: one experiment root per seed, ``<root>/<data>/<system>/`` as the recipes write them (``exp_root=``),
each system folder with ``score/<trial_list>.scores`` (cosine, training-set mean subtracted), ``score/metrics.json``,
``embed/info.json`` and ``train/summary.json``. A system missing in one seed is an error naming the folder: a
mean over a different set of seeds is not the same figure.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sv_toolkit.data.manifests import read_utterances
from sv_toolkit.errors import InputFileError, MissingEntryError, MissingFileError
from sv_toolkit.metrics.bootstrap import speaker_bootstrap
from sv_toolkit.scoring.cosine import read_scores
from sv_toolkit.utils.io import read_json


@dataclass(frozen=True)
class SeedRun:
    system: str
    seed: str
    eer: float
    min_dcf: float
    params: int
    peak_bytes: int | None
    samples_per_second: float | None
    scores: np.ndarray
    labels: np.ndarray
    enroll: list[str]
    test: list[str]


def _samples_per_second(summary: dict[str, Any]) -> float | None:
    if not summary.get("seconds"):
        return None
    return summary["steps"] * summary["global_batch"] / summary["seconds"]


def load_run(system_dir: Path, seed: str, trial_list: str) -> SeedRun:
    """One seed of one system (see the module docstring for the files read)."""
    metrics_path = system_dir / "score" / "metrics.json"
    if not metrics_path.is_file():
        raise MissingFileError(f"{metrics_path} does not exist: run the train, embed and score stages for "
                                f"{system_dir.name} with this seed (or leave the system out)")
    metrics = read_json(metrics_path)
    if trial_list not in metrics:
        raise MissingEntryError(f"{metrics_path} has no trial list {trial_list!r}; it has {sorted(metrics)}")
    scores = read_scores(system_dir / "score" / f"{trial_list}.scores")
    summary_path = system_dir / "train" / "summary.json"
    summary = read_json(summary_path) if summary_path.is_file() else {}
    m = metrics[trial_list]
    return SeedRun(
        system=system_dir.name, seed=seed, eer=m["eer"], min_dcf=m["min_dcf_0.01"],
        params=int(read_json(system_dir / "embed" / "info.json")["params"]),
        peak_bytes=(summary.get("memory") or {}).get("peak_live"), samples_per_second=_samples_per_second(summary),
        scores=scores.scores, labels=scores.labels, enroll=scores.enroll, test=scores.test,
    )


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise_system(runs: Sequence[SeedRun], key_to_speaker: dict[str, str], n_boot: int = 1000,
                     boot_seed: int = 0) -> dict[str, Any]:
    """Per-seed figures, their mean and sample sd, and the bootstrap interval of the seed-mean EER / minDCF."""
    first = runs[0]
    for r in runs[1:]:
        if r.enroll != first.enroll or r.test != first.test:
            raise InputFileError(f"{r.system}: seed {r.seed} was scored on other trials than seed {first.seed}")
    try:
        enroll_spk = [key_to_speaker[k] for k in first.enroll]
        test_spk = [key_to_speaker[k] for k in first.test]
    except KeyError as err:
        raise MissingEntryError(f"trial key {err.args[0]!r} of {first.system} is not in the test manifest") from None
    ci = speaker_bootstrap([r.scores for r in runs], first.labels, enroll_spk, test_spk, n=n_boot, seed=boot_seed)
    eer, eer_sd = _mean_sd([r.eer for r in runs])
    dcf, dcf_sd = _mean_sd([r.min_dcf for r in runs])
    peaks = [r.peak_bytes for r in runs if r.peak_bytes is not None]
    speeds = [r.samples_per_second for r in runs if r.samples_per_second is not None]
    return {
        "system": first.system, "seeds": [r.seed for r in runs], "params": first.params,
        "eer": [r.eer for r in runs], "min_dcf_0.01": [r.min_dcf for r in runs],
        "eer_mean": eer, "eer_sd": eer_sd, "min_dcf_mean": dcf, "min_dcf_sd": dcf_sd,
        "eer_ci95": [ci["eer"].low, ci["eer"].high], "min_dcf_ci95": [ci["min_dcf"].low, ci["min_dcf"].high],
        "bootstrap_resamples": ci["eer"].resamples,
        "peak_train_bytes": max(peaks) if peaks else None,
        "samples_per_second": statistics.median(speeds) if speeds else None,
    }


def seed_table(roots: dict[str, Path], data: str, systems: Sequence[str], trial_list: str, test_manifest: Path,
               n_boot: int = 1000) -> list[dict[str, Any]]:
    """One summary row per system over the seeds of ``roots`` (seed name -> experiment root)."""
    speakers = {u.key: u.speaker for u in read_utterances(test_manifest)}
    rows = []
    for system in systems:
        runs = [load_run(root / data / system, seed, trial_list) for seed, root in roots.items()]
        rows.append(summarise_system(runs, speakers, n_boot))
    return rows


def provenance() -> dict[str, str]:
    """The commit and the machine a table was made on."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        commit += "+uncommitted changes" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"commit": commit, "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(rows: Sequence[dict[str, Any]], trial_list: str, meta: dict[str, Any]) -> str:
    """The README block: one row per system, figures as mean ± sd over seeds with the bootstrap interval."""
    n = len(rows[0]["seeds"]) if rows else 0
    head = (f"| system | params | peak train mem | train samples/s | {trial_list} EER% mean ± sd | EER% 95% CI | "
            f"minDCF0.01 mean ± sd | minDCF0.01 95% CI | EER% per seed |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = f"{r['peak_train_bytes'] / 2**20:.1f} MiB" if r["peak_train_bytes"] else "-"
        speed = f"{r['samples_per_second']:.0f}" if r["samples_per_second"] else "-"
        lines.append(
            f"| {r['system']} | {r['params'] / 1e6:.2f}M | {peak} | {speed} | "
            f"{_pct(r['eer_mean'])} ± {_pct(r['eer_sd'])} | {_pct(r['eer_ci95'][0])}-{_pct(r['eer_ci95'][1])} | "
            f"{r['min_dcf_mean']:.3f} ± {r['min_dcf_sd']:.3f} | {r['min_dcf_ci95'][0]:.3f}-{r['min_dcf_ci95'][1]:.3f} | "
            f"{' / '.join(_pct(e) for e in r['eer'])} |"
        )
    lines += ["", f"{n} seeds ({', '.join(rows[0]['seeds']) if rows else ''}) per system; sd is the sample standard "
              f"deviation over seeds; the 95% interval is a speaker-level bootstrap of the seed-mean "
              f"({rows[0]['bootstrap_resamples'] if rows else 0} resamples of the test speakers). Commit "
              f"{meta['commit']}, {meta['machine']}; `{meta['command']}`."]
    return "\n".join(lines) + "\n"
