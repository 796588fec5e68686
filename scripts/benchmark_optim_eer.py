"""EER of 8-bit optimizers against their fp32 twins on minivox: same experiment, same seeds, same steps.

Each (optimizer, seed) pair is one system ``<prefix>_<optimizer>_s<seed>``, trained, embedded and scored by the
ordinary stage scripts (finished stages are skipped, so an interrupted comparison resumes). The summary gives,
per optimizer and trial list, the EER of every seed, their mean and standard deviation, and for each 8-bit
optimizer its relative difference from its fp32 twin. Needs the corpus, manifests and features:
``bash recipes/minivox/run.sh --stage 1 --stop_stage 3``. Example (the figures in docs/benchmarks.md):

    python scripts/benchmark_optim_eer.py --optimizers sgd,sgd8bit --seeds 1,2,3 --prefix optcmp
    python scripts/benchmark_optim_eer.py --optimizers adam,adam8bit --seeds 1,2,3 --prefix lr3e-3 \
        -- optim.lr=3e-3 sched.lr.final_lr=6e-5

Anything after ``--`` is passed to all three stages as Hydra overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from sv_toolkit.utils.io import write_json_atomic

REPO = Path(__file__).resolve().parents[1]
FP32_TWIN = {"sgd8bit": "sgd", "adam8bit": "adam", "adamw8bit": "adamw"}


def run_system(experiment: str, optimizer: str, seed: int, system: str, extra: list[str]) -> dict:
    """Train, embed and score one system; returns its score metrics (metrics.json)."""
    overrides = [f"experiment={experiment}", f"optim={optimizer}", f"seed={seed}", f"system={system}",
                 "trainer.measure_memory=false", "progress=false", *extra]
    for stage in ("train", "embed", "score"):
        cmd = [sys.executable, str(REPO / "scripts" / f"{stage}.py"), *overrides]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, cwd=REPO, check=True)
    done = json.loads(next((REPO / "exp").glob(f"*/{system}/score/.done")).read_text())
    return done["summary"]


def summarise(results: dict[str, dict[int, dict]]) -> dict[str, dict[str, dict]]:
    """Per optimizer and trial list: EERs (%) by seed, mean, sample std, and the 8-bit vs fp32 difference."""
    table: dict[str, dict[str, dict]] = {}
    for opt, by_seed in results.items():
        lists = sorted(next(iter(by_seed.values())))
        table[opt] = {}
        for trial_list in lists:
            eers = [100.0 * by_seed[s][trial_list]["eer"] for s in sorted(by_seed)]
            table[opt][trial_list] = {"eer_pct": eers, "mean": statistics.mean(eers),
                                      "std": statistics.stdev(eers) if len(eers) > 1 else 0.0}
    for opt, twin in FP32_TWIN.items():
        if opt in table and twin in table:
            for trial_list, row in table[opt].items():
                ref = table[twin][trial_list]
                row["rel_diff_vs_" + twin] = (row["mean"] - ref["mean"]) / ref["mean"]
                # same seed, same steps: the 8-bit run's difference from its own fp32 twin, seed by seed
                row["paired_diff_pct"] = [a - b for a, b in zip(row["eer_pct"], ref["eer_pct"])]
    return table


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default="sgd,sgd8bit", help="conf/optim names, comma-separated")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--experiment", default="minivox_resnet10")
    parser.add_argument("--prefix", default="optcmp", help="system names: <prefix>_<optimizer>_s<seed>")
    parser.add_argument("--out", default=None, help="summary JSON (default exp/optimizer_comparison_<prefix>.json)")
    args = parser.parse_args(argv)
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    missing = [o for o in optimizers if not (REPO / "conf" / "optim" / f"{o}.yaml").exists()]
    if missing:
        raise SystemExit(f"--optimizers: no conf/optim/<name>.yaml for {missing}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    results: dict[str, dict[int, dict]] = {}
    for seed in seeds:  # seed-major: a partial run already holds complete pairs
        for opt in optimizers:
            system = f"{args.prefix}_{opt}_s{seed}"
            results.setdefault(opt, {})[seed] = run_system(args.experiment, opt, seed, system, extra)
    table = summarise(results)
    out = Path(args.out) if args.out else REPO / "exp" / f"optimizer_comparison_{args.prefix}.json"
    write_json_atomic(out, {"experiment": args.experiment, "seeds": seeds, "overrides": extra, "summary": table})
    for opt, rows in table.items():
        for trial_list, row in rows.items():
            rel = next((f"  {k}: {v:+.1%}" for k, v in row.items() if k.startswith("rel_diff")), "")
            if "paired_diff_pct" in row:
                rel += "  per seed: [" + ", ".join(f"{d:+.2f}" for d in row["paired_diff_pct"]) + "]"
            eers = ", ".join(f"{e:.2f}" for e in row["eer_pct"])
            print(f"{opt:10s} {trial_list:10s} EER% [{eers}] mean {row['mean']:.2f} std {row['std']:.2f}{rel}")
    print(f"summary: {out}")


if __name__ == "__main__":
    main()
