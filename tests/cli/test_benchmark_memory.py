"""scripts/benchmark_memory.py end to end on a thin pair: JSON lines, --time-only re-runs, merged table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark_memory.py"
THIN = ["--base-width", "4", "--embed-dim", "8", "--frames", "32", "--num-classes", "10", "--time-rounds", "2"]


def run(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "resnet10,revnet10_ii", *THIN, *args],
        capture_output=True, text=True, check=True, timeout=300,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_time_only_runs_merge_into_one_row_per_model(tmp_path: Path) -> None:
    full = run("--slope-batches", "1,2", "--optimizers", "adam,sgd8bit")
    assert [r["model"] for r in full] == ["resnet10", "revnet10_ii"]
    assert full[1]["peak_per_sample"] > 0 and full[1]["step_ratio_cpu"] > 0
    timed = run("--time-only", "--time-batch", "1")  # the full run timed at its first slope batch, 1
    assert "params" not in timed[1] and timed[1]["step_ratio_cpu"] > 0
    paths = []
    for name, rows in (("full", full), ("timed", timed)):
        paths.append(tmp_path / f"{name}.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "table.md"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--from-jsonl", ",".join(map(str, paths)), "--optimizers", "adam",
         "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    table = out.read_text()
    assert "Ratios with a range" in table
    pair = next(line for line in table.splitlines() if line.startswith("| revnet10_ii vs resnet10"))
    assert pair.count("2 runs") == 2  # wall and CPU
    assert table.count("| revnet10_ii |") == 1  # merged, not listed twice


def test_time_only_rows_alone_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "timed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in run("--time-only")))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--from-jsonl", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "only --time-only rows" in done.stderr


def test_runs_timed_at_different_batches_need_a_choice(tmp_path: Path) -> None:
    full, timed = run("--slope-batches", "1,2"), run("--time-only", "--time-batch", "3")
    paths = [tmp_path / "full.jsonl", tmp_path / "b3.jsonl"]
    for path, rows in zip(paths, (full, timed)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = [sys.executable, str(SCRIPT), "--from-jsonl", ",".join(map(str, paths)), "--optimizers", "adam"]
    mixed = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert mixed.returncode != 0 and "choose one with --time-batch" in mixed.stderr
    chosen = subprocess.run([*base, "--time-batch", "3"], capture_output=True, text=True, check=True, timeout=120)
    assert "step time at batch 3" in chosen.stdout
