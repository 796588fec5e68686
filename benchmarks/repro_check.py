"""What makes two runs of the same training command differ: the same run twice, then one CPU setting changed at
a time (thread count, the instruction set ATen's kernels dispatch to, oneDNN's and MKL's instruction sets).

Each variant runs the train stage in a fresh process and folder on already prepared features (``make
librimini`` stages 1-3, or any ``data=`` whose fbank exists), with the same seed, and is compared with the first
run: are the averaged weights bitwise equal, and how far apart are they and the final losses. A variant that
names an instruction set this CPU lacks is reported as skipped (kernels cannot be asked for more than the CPU
has).

    python benchmarks/repro_check.py --json docs/results/repro_check.json --readme README.md
        [-- experiment=librimini_resnet10 trainer.epochs=1 ...]   (train-stage overrides)
    python benchmarks/repro_check.py --from-json docs/results/repro_check.json --readme README.md   (block only)

``--readme`` rewrites the file's ``<!-- make_table:repro_check -->`` block from the rows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OVERRIDES = ["experiment=librimini_resnet10", "trainer.epochs=1", "trainer.average_last=1",
                     "trainer.keep_last=1", "trainer.measure_memory=false", "progress=false"]
# name -> environment changes; each variant changes one thing against "base" (2 threads, the CPU's best ISA)
VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "base again": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "ATen kernels AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def commit() -> str:
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_variant(name: str, env_changes: dict[str, str], overrides: list[str], work: Path) -> dict:
    exp_root = work / name.replace(" ", "_")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HYDRA_FULL_ERROR": "1", "CUDA_VISIBLE_DEVICES": "", **env_changes}
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), f"exp_root={exp_root}", "trainer.device=cpu",
           *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (summary,) = exp_root.glob("*/*/train/summary.json")
    return {"name": name, "env": env_changes, "train_dir": str(summary.parent),
            "final_loss": json.loads(summary.read_text())["final_loss"]}


def compare(base: dict, other: dict) -> dict:
    import torch

    from sv_toolkit.training.checkpoint import load_checkpoint

    a = load_checkpoint(Path(base["train_dir"]) / "model_avg.pt")["model"]
    b = load_checkpoint(Path(other["train_dir"]) / "model_avg.pt")["model"]
    floats = [n for n, t in a.items() if t.is_floating_point()]
    diff = max(float((a[n] - b[n]).abs().max()) for n in floats)
    scale = max(float(a[n].abs().max()) for n in floats)
    return {"bitwise_equal": all(torch.equal(a[n], b[n]) for n in a), "max_abs_weight_diff": diff,
            "max_abs_weight": scale, "final_loss_diff": other["final_loss"] - base["final_loss"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default="", help="write the rows here")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    p.add_argument("overrides", nargs="*", help="train-stage overrides (default: a 1-epoch librimini run)")
    p.add_argument("--readme", type=Path, help="Markdown file whose make_table:repro_check block is rewritten")
    p.add_argument("--from-json", type=Path, help="rewrite --readme's block from this earlier --json; run nothing")
    args = p.parse_args(argv)
    if args.from_json:
        if not args.readme:
            p.error("--from-json needs --readme")
        data = json.loads(args.from_json.read_text())
        write_block(args.readme, data["meta"], data["rows"], args.from_json)
        return 0
    overrides = args.overrides or DEFAULT_OVERRIDES
    started_at = commit()  # the code that ran: main may move while the variants run
    flags = cpu_flags()
    rows, base = [], None
    with tempfile.TemporaryDirectory(prefix="repro_check_") as tmp:
        for name in args.variants.split(","):
            env = VARIANTS[name]
            if "AVX2" in name and "avx512f" not in flags:
                rows.append({"name": name, "env": env, "skipped": "the CPU has no AVX-512: AVX2 is already its best"})
                continue
            row = run_variant(name, env, overrides, Path(tmp))
            if base is None:
                base = row
            else:
                row.update(compare(base, row))
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "train_dir"}), flush=True)
    print(table(rows))
    if args.json:
        import torch

        meta = {"cpu": cpu_model(), "avx512": "avx512f" in flags, "torch": torch.__version__,
                "cores": os.cpu_count(), "commit": started_at, "overrides": overrides}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": [
            {k: v for k, v in r.items() if k != "train_dir"} for r in rows]}, indent=1))
        if args.readme:
            write_block(args.readme, meta, rows, Path(args.json))
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| variant (one change against base) | weights bitwise equal to base | max abs weight diff | "
             "final loss - base |", "|---|---|---|---|"]
    for r in rows[1:]:
        if "skipped" in r:
            lines.append(f"| {r['name']} | skipped: {r['skipped']} | - | - |")
        else:
            lines.append(f"| {r['name']} | {'yes' if r['bitwise_equal'] else 'no'} | {r['max_abs_weight_diff']:.2e} | "
                         f"{r['final_loss_diff']:+.2e} |")
    return "\n".join(lines)


def write_block(readme: Path, meta: dict, rows: list[dict], source: Path) -> None:
    """The README's statement of what makes runs differ, from the measured rows (temp file, then rename)."""
    sys.path.insert(0, str(REPO))
    from sv_toolkit.cli.make_table import replace_block

    changed = [r["name"] for r in rows[1:] if not r.get("skipped") and not r.get("bitwise_equal")]
    again = next((r for r in rows if r["name"] == "base again"), None)
    same = "bitwise equal" if again and again.get("bitwise_equal") else "NOT bitwise equal"
    text = (f"Measured by `python benchmarks/repro_check.py` ({source}; {meta['cpu']}, {meta['cores']} cores, "
            f"torch {meta['torch']}, commit {meta['commit']}; a 1-epoch librimini ResNet10 run per variant, "
            f"`{' '.join(meta['overrides'])}`): the same command and seed in a fresh process gave {same} weights; "
            f"each of these single changes gave other weights: {', '.join(changed) or 'none'}.\n\n{table(rows)}\n")
    tmp = readme.with_suffix(readme.suffix + ".tmp")
    tmp.write_text(replace_block(readme.read_text(), "repro_check", text, readme))
    tmp.replace(readme)


if __name__ == "__main__":
    raise SystemExit(main())
