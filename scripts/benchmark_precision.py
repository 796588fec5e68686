#!/usr/bin/env python
"""Train one experiment at several precisions and compare their loss curves (and EERs, with --score).

Each precision P trains ``experiment=E trainer.precision=P system=<E's system>_P`` with scripts/train.py (same
seed, data and schedule), then optionally embeds and scores it. Prints per-epoch loss / accuracy, the step loss
curve's relative deviation from the first precision's, wall time per run, and the EERs.

  python scripts/benchmark_precision.py --experiment minivox_revnet10_ii --precisions fp32 bf16 --score

With --time-steps N it trains nothing: it times N rounds of one training step per precision, alternating
precisions within each round, on a random batch of the experiment's shape, and prints median step times and
their ratio to the first precision (a side-by-side speed comparison).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sv_toolkit.training.distributed import DistEnv
from sv_toolkit.training.step import SpeakerNet, autocast_dtype, train_step

REPO = Path(__file__).resolve().parents[1]


def _scalars(train_dir: Path, tag: str) -> list[float]:
    acc = EventAccumulator(str(train_dir / "tensorboard"))
    acc.Reload()
    return [e.value for e in sorted(acc.Scalars(tag), key=lambda e: e.step)]


def time_steps(cfg, precisions: list[str], rounds: int) -> None:
    """Median seconds per training step of each precision, rounds alternating precisions."""
    cpu = torch.device("cpu")
    t = cfg.trainer
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(t.batch_size // t.grad_accum, t.chunk_frames, cfg.features.num_mel_bins, generator=g)
    labels = torch.randint(48, (feats.shape[0],), generator=g)
    nets, opts = {}, {}
    for p in precisions:
        torch.manual_seed(cfg.seed)
        model = instantiate(cfg.model)
        nets[p] = SpeakerNet(model, instantiate(cfg.head, embed_dim=cfg.model.embed_dim, num_classes=48),
                             autocast_dtype(p, cpu))
        opts[p] = torch.optim.SGD(nets[p].parameters(), lr=1e-3)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        for p in precisions:
            opts[p].zero_grad(set_to_none=True)
            start = time.perf_counter()
            train_step(nets[p], opts[p], [(feats, labels)], cpu, DistEnv())
            times[p].append(time.perf_counter() - start)
    med = {p: sorted(v[1:])[len(v[1:]) // 2] for p, v in times.items()}
    print(f"{cfg.model.name}, batch {feats.shape[0]} x {feats.shape[1]} frames, {torch.get_num_threads()} threads, "
          f"{rounds} rounds")
    for p in precisions:
        print(f"{p}: median {med[p]:.2f} s per step, {med[p] / med[precisions[0]]:.2f} x {precisions[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="minivox_revnet10_ii")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--score", action="store_true", help="also run embed and score, print EERs")
    ap.add_argument("--time-steps", type=int, default=0, help="time N alternating rounds of steps instead")
    ap.add_argument("--reuse", action="store_true", help="keep runs that already finished (default: redo them)")
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides for every stage")
    args = ap.parse_args()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        base = compose(config_name="train", overrides=[f"experiment={args.experiment}", *args.overrides])
    if args.time_steps:
        time_steps(base, args.precisions, args.time_steps)
        return
    runs = {}
    for precision in args.precisions:
        system = f"{base.system}_{precision}"
        common = [f"experiment={args.experiment}", *args.overrides, f"system={system}"]
        start = time.perf_counter()
        redo = [] if args.reuse else ["overwrite=true"]
        subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *common, f"trainer.precision={precision}",
                        "resume=false", "progress=false", *redo], check=True, cwd=REPO)
        seconds = time.perf_counter() - start
        if args.score:
            for stage in ("embed", "score"):
                subprocess.run([sys.executable, str(REPO / "scripts" / f"{stage}.py"), *common, "progress=false",
                                *redo], check=True, cwd=REPO)
        exp_dir = Path(base.exp_root) / base.data.name / system
        if not exp_dir.is_absolute():
            exp_dir = REPO / exp_dir
        runs[precision] = (exp_dir, seconds)

    ref = args.precisions[0]
    curves = {p: _scalars(d / "train", "train/loss") for p, (d, _) in runs.items()}
    print(f"\nexperiment {args.experiment}, overrides {args.overrides or 'none'}\n")
    print("| epoch | " + " | ".join(f"{p} loss / acc" for p in args.precisions) + " |")
    print("|---|" + "---|" * len(args.precisions))
    epoch_stats = {p: (_scalars(d / "train", "epoch/loss"), _scalars(d / "train", "epoch/accuracy"))
                   for p, (d, _) in runs.items()}
    for e in range(len(epoch_stats[ref][0])):
        cells = [f"{epoch_stats[p][0][e]:.3f} / {epoch_stats[p][1][e]:.3f}" for p in args.precisions]
        print(f"| {e + 1} | " + " | ".join(cells) + " |")
    for p in args.precisions[1:]:
        rel = [abs(a - b) / abs(b) for a, b in zip(curves[p], curves[ref])]
        print(f"\n{p} vs {ref}: logged step losses {len(rel)}, relative deviation median "
              f"{sorted(rel)[len(rel) // 2]:.3%}, max {max(rel):.3%}")
    for p, (d, seconds) in runs.items():
        line = f"{p}: train stage wall {seconds:.0f} s (for a reused run: the time to skip it)"
        metrics = d / "score" / "metrics.json"
        if args.score and metrics.is_file():
            m = json.loads(metrics.read_text())
            line += "; EER " + ", ".join(f"{k} {v['eer']:.2%}" for k, v in m.items() if "eer" in v)
        print(line)


if __name__ == "__main__":
    main()
