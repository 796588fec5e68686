"""Several seeds of several systems on one trial list -> mean ± sd per system, a speaker-level bootstrap interval,
and the cost columns (parameters, measured peak training memory, training samples/s).

Layout read: one experiment root per seed, ``<root>/<data>/<system>/`` as the recipes write them (``exp_root=``),
each system folder with ``score/<trial_list>.scores`` (cosine, training-set mean subtracted), ``score/metrics.json``,
``embed/info.json`` and ``train/summary.json``. A system missing in one seed is an error naming the folder: a
mean over a different set of seeds is not the same figure.

Each (system, seed) run is first reduced to a *run record* (its figures, its cost columns, its provenance and
its EER / minDCF on every speaker resample of the trial list); a table is a function of records. Records are
small JSON files (``<dir>/seed<S>/<system>.json``) that can be kept beside the table, so a table that takes
hours can grow one run at a time, across machines and sessions, and still be recomputed exactly.
"""
from __future__ import annotations

import hashlib
import json
import math
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
from sv_toolkit.metrics.bootstrap import replicate_interval, speaker_replicates
from sv_toolkit.scoring.cosine import read_scores
from sv_toolkit.utils.io import read_json, write_text_atomic


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


def run_record(run: SeedRun, key_to_speaker: dict[str, str], n_boot: int = 1000, boot_seed: int = 0,
               ) -> dict[str, Any]:
    """One run reduced to what a table needs: figures, costs, provenance, the trials' fingerprint and the
    run's EER / minDCF on each of ``n_boot`` speaker resamples (the same resamples for every run)."""
    try:
        enroll_spk = [key_to_speaker[k] for k in run.enroll]
        test_spk = [key_to_speaker[k] for k in run.test]
    except KeyError as err:
        raise MissingEntryError(f"trial key {err.args[0]!r} of {run.system} is not in the test manifest") from None
    reps = speaker_replicates(run.scores, run.labels, enroll_spk, test_spk, n=n_boot, seed=boot_seed)
    trials = hashlib.sha256("\n".join(f"{e} {t} {int(y)}" for e, t, y in zip(run.enroll, run.test, run.labels))
                            .encode()).hexdigest()[:16]
    return {
        "system": run.system, "seed": run.seed, "eer": run.eer, "min_dcf_0.01": run.min_dcf, "params": run.params,
        "peak_train_bytes": run.peak_bytes, "samples_per_second": run.samples_per_second,
        "trials": {"count": int(len(run.labels)), "sha256_16": trials}, **provenance(),
        "bootstrap": {"resamples": n_boot, "seed": boot_seed,
                      **{k: [None if math.isnan(v) else round(float(v), 6) for v in reps[k]] for k in reps}},
    }


def _replicates(record: dict[str, Any], key: str) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in record["bootstrap"][key]], dtype=np.float64)


def summarise_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed figures, their mean and sample sd, and the bootstrap interval of the seed-mean EER / minDCF."""
    first = records[0]
    for r in records[1:]:
        if r["trials"] != first["trials"]:
            raise InputFileError(f"{r['system']}: seed {r['seed']} was scored on other trials than seed {first['seed']}")
        if (r["bootstrap"]["resamples"], r["bootstrap"]["seed"]) != (first["bootstrap"]["resamples"],
                                                                     first["bootstrap"]["seed"]):
            raise InputFileError(f"{r['system']}: seed {r['seed']} was bootstrapped with other resamples than seed "
                                 f"{first['seed']}; make its record again with the same --bootstrap")
    ci = {k: replicate_interval([_replicates(r, k) for r in records]) for k in ("eer", "min_dcf")}
    eers, dcfs = [r["eer"] for r in records], [r["min_dcf_0.01"] for r in records]
    eer, eer_sd = _mean_sd(eers)
    dcf, dcf_sd = _mean_sd(dcfs)
    peaks = [r["peak_train_bytes"] for r in records if r["peak_train_bytes"] is not None]
    speeds = [r["samples_per_second"] for r in records if r["samples_per_second"] is not None]
    return {
        "system": first["system"], "seeds": [r["seed"] for r in records], "params": first["params"],
        "eer": eers, "min_dcf_0.01": dcfs,
        "eer_mean": eer, "eer_sd": eer_sd, "min_dcf_mean": dcf, "min_dcf_sd": dcf_sd,
        "eer_ci95": [ci["eer"].low, ci["eer"].high], "min_dcf_ci95": [ci["min_dcf"].low, ci["min_dcf"].high],
        "bootstrap_resamples": ci["eer"].resamples,
        "peak_train_bytes": max(peaks) if peaks else None,
        "samples_per_second": statistics.median(speeds) if speeds else None,
        "commits": sorted({r["commit"] for r in records}), "machines": sorted({r["machine"] for r in records}),
    }


def summarise_system(runs: Sequence[SeedRun], key_to_speaker: dict[str, str], n_boot: int = 1000,
                     boot_seed: int = 0) -> dict[str, Any]:
    """:func:`summarise_records` of the runs' records."""
    return summarise_records([run_record(r, key_to_speaker, n_boot, boot_seed) for r in runs])


def seed_records(roots: dict[str, Path], data: str, systems: Sequence[str], trial_list: str, test_manifest: Path,
                 n_boot: int = 1000) -> dict[str, list[dict[str, Any]]]:
    """system -> the run records of the seeds of ``roots`` (seed name -> experiment root)."""
    speakers = {u.key: u.speaker for u in read_utterances(test_manifest)}
    return {system: [{"trial_list": trial_list, **run_record(load_run(root / data / system, seed, trial_list),
                                                             speakers, n_boot)}
                     for seed, root in roots.items()] for system in systems}


def seed_table(roots: dict[str, Path], data: str, systems: Sequence[str], trial_list: str, test_manifest: Path,
               n_boot: int = 1000) -> list[dict[str, Any]]:
    """One summary row per system over the seeds of ``roots`` (seed name -> experiment root)."""
    records = seed_records(roots, data, systems, trial_list, test_manifest, n_boot)
    return [summarise_records(records[s]) for s in systems]


def write_records(directory: Path, records: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """``<directory>/seed<S>/<system>.json`` per record (temp file, then rename)."""
    paths = []
    for runs in records.values():
        for r in runs:
            path = directory / f"seed{r['seed']}" / f"{r['system']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(r, separators=(",", ":")) + "\n")
            paths.append(path)
    return paths


def read_records(directory: Path, systems: Sequence[str], trial_list: str) -> dict[str, list[dict[str, Any]]]:
    """system -> its records of ``trial_list`` under ``directory``, by seed; every system must have the same
    seeds."""
    if not directory.is_dir():
        raise MissingFileError(f"record folder {directory} does not exist: make records first (--write-records)")
    out: dict[str, list[dict[str, Any]]] = {}
    for system in systems:
        paths = sorted(directory.glob(f"seed*/{system}.json"), key=lambda p: p.parent.name)
        if not paths:
            raise MissingFileError(f"no record of {system} under {directory} (expected {directory}/seed<S>/{system}.json)")
        out[system] = [read_json(p) for p in paths]
        for p, r in zip(paths, out[system]):
            if r.get("trial_list") != trial_list:
                raise InputFileError(f"{p} is a record of trial list {r.get('trial_list')!r}, not {trial_list!r}")
    seeds = {s: [r["seed"] for r in rs] for s, rs in out.items()}
    if len({tuple(v) for v in seeds.values()}) > 1:
        raise InputFileError(f"systems under {directory} have different seeds ({seeds}): a mean over another set of "
                             "seeds is not the same figure; run the missing seeds or leave the system out")
    return out


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
              f"({rows[0]['bootstrap_resamples'] if rows else 0} resamples of the test speakers). Runs made at "
              f"commit {', '.join(sorted({c for r in rows for c in r['commits']}))} on "
              f"{'; '.join(sorted({m for r in rows for m in r['machines']}))}; table by `{meta['command']}`."]
    return "\n".join(lines) + "\n"
