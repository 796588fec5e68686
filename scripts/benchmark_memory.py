"""Training memory and step time of the model zoo: one JSON line per model, and a Markdown table.

Memory per model: parameters, bytes of weights, gradients and optimizer states (exact, for every optimizer in
``--optimizers``), saved-for-backward bytes and peak live bytes at two small batches, and from their slope the
per-sample activation bytes, extrapolated to ``--batch``: total = weights + gradients + optimizer states +
batch x per-sample peak. The classification head (AAM-softmax, ``--num-classes``) is part of the model trained.
On CUDA (``--device cuda``) the peak is ``torch.cuda.max_memory_allocated``; ``--direct`` also measures one
step at ``--batch`` itself.

Step time: every reversible model is timed with its vanilla twin (``revnet34_ii`` -> ``resnet34``) in
interleaved rounds at ``--time-batch`` (each round times one training step of every model of the group in
turn: forward, backward, SGD step); the ratio to the twin is taken within each round and its median over
rounds reported, for wall and for CPU (process) time. CPU time is the steadier of the two on a shared
machine: it does not count the time the process waits for a core.

On a shared CPU the step times of one process can differ from another's by 10-20% (measured: dfresnet56
0.31-0.42 s per step in separate processes, steady within each), so ``--time-only`` re-runs only the
timing, and ``--from-jsonl`` given several runs of the same models reports the median ratio over the runs
with their range.

Example (the figures in docs/benchmarks.md):

    python scripts/benchmark_memory.py --models resnet34,revnet34_i,revnet34_ii --slope-batches 2,4 \\
        --optimizers adam,adam8bit --out docs/tables/memory_resnet34.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from sv_toolkit.losses.aam import AAMSoftmax
from sv_toolkit.models import available_models, build_model
from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit
from sv_toolkit.training.memory import (
    ActivationSlope,
    measure_activation_slope,
    measure_training_step,
    optimizer_state_bytes,
)
from sv_toolkit.utils.io import write_text_atomic

OPTIMIZERS: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-4),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-4),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9),
    "adam8bit": lambda ps: Adam8bit(ps, lr=1e-4),
    "adamw8bit": lambda ps: AdamW8bit(ps, lr=1e-4),
    "sgd8bit": lambda ps: SGD8bit(ps, lr=1e-4, momentum=0.9),
}
PAPER_TOTAL_SAVING = 16.2  # arXiv 2412.01195: "up to 16.2x" total training memory


def vanilla_twin(name: str) -> str:
    """``revnet34_ii`` -> ``resnet34``, ``dfrevnet56_i`` -> ``dfresnet56``; vanilla names map to themselves."""
    if "rev" not in name:
        return name
    return name.rsplit("_", 1)[0].replace("rev", "res")


class Trainee(torch.nn.Module):
    """Embedding extractor + AAM-softmax head on fixed random labels: the module a training step updates."""

    def __init__(self, model: torch.nn.Module, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.model = model
        self.head = AAMSoftmax(embed_dim, num_classes)
        self.num_classes = num_classes

    def loss_for_batch(self, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
        device = next(self.head.parameters()).device
        labels = torch.randint(self.num_classes, (batch,), generator=torch.Generator().manual_seed(batch)).to(device)
        head = self.head

        class _Loss(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.head = head

            def forward(self, emb: torch.Tensor) -> torch.Tensor:
                return self.head(emb, labels)[0]

        return _Loss()


def count_macs(name: str, overrides: dict, frames: int, feat_dim: int) -> float:
    """Multiply-accumulates of one forward pass on one (frames x feat_dim) input, counted on the meta device."""
    with torch.device("meta"):
        model = build_model(name, **overrides).eval()
        feats = torch.zeros(1, frames, feat_dim)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(feats)
    return counter.get_total_flops() / 2


def optimizer_bytes(params: list[torch.nn.Parameter], kind: str) -> int:
    """Exact state bytes of optimizer ``kind`` after one step on copies of ``params`` with random gradients."""
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for p in copies:
        p.grad = torch.randn_like(p) * 1e-3
    opt = OPTIMIZERS[kind](copies)
    opt.step()
    return optimizer_state_bytes(opt)


def time_group(trainees: dict[str, Trainee], feats: torch.Tensor, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of one SGD training step per model, interleaved over ``rounds`` rounds."""
    opts = {n: torch.optim.SGD(t.parameters(), lr=1e-4, momentum=0.9) for n, t in trainees.items()}
    losses = {n: t.loss_for_batch(feats.shape[0]) for n, t in trainees.items()}
    times: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in trainees}

    def step(name: str) -> None:
        opts[name].zero_grad(set_to_none=True)
        losses[name](trainees[name].model(feats)).backward()
        opts[name].step()

    for name in trainees:  # warm-up: first-call allocations, optimizer states
        step(name)
    for _ in range(rounds):
        for name in trainees:
            wall, cpu = time.perf_counter(), time.process_time()
            step(name)
            if feats.is_cuda:
                torch.cuda.synchronize()
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    return times


def ratio_cell(row: dict, kind: str, unit: str = "") -> str:
    """``1.21``, or ``1.21 (1.18-1.25, 3 runs)`` for a row merged from several runs; ``unit`` follows the median."""
    if f"step_ratio_{kind}" not in row:
        return "-"
    runs = row.get(f"step_ratio_{kind}_runs", [])
    spread = f" ({min(runs):.2f}-{max(runs):.2f}, {len(runs)} runs)" if len(runs) > 1 else ""
    return f"{row[f'step_ratio_{kind}']}{unit}{spread}"


TIMING_KEYS = ("step_s_wall", "step_s_cpu", "time_batch", "time_rounds", "step_s_wall_all", "step_ratio_wall",
               "step_ratio_cpu")


def merge_runs(rows: list[dict], time_batch: int = 0) -> list[dict]:
    """One row per model: the memory figures of its first full row, and for step times the median over
    every row timed at ``time_batch`` (0: all timed rows, which must then share one batch), ``--time-only``
    runs included, with the per-run ratios kept."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    merged = []
    for name, group in by_model.items():
        full = [r for r in group if "params" in r]
        if not full:
            raise SystemExit(f"--from-jsonl: {name} has only --time-only rows; add a run with memory figures")
        timed = [r for r in group if "step_s_wall" in r and (not time_batch or r["time_batch"] == time_batch)]
        batches = sorted({r["time_batch"] for r in timed})
        if len(batches) > 1:
            raise SystemExit(f"--from-jsonl: {name} was timed at batches {batches}; choose one with --time-batch")
        row = {k: v for k, v in full[0].items() if k not in TIMING_KEYS}
        if timed:
            row.update({k: timed[0][k] for k in TIMING_KEYS if k in timed[0]})
            row["step_s_wall"] = statistics.median(r["step_s_wall"] for r in timed)
            for kind in ("wall", "cpu"):
                runs = [r[f"step_ratio_{kind}"] for r in timed if f"step_ratio_{kind}" in r]
                if runs:
                    row[f"step_ratio_{kind}"] = round(statistics.median(runs), 2)
                    row[f"step_ratio_{kind}_runs"] = runs if len(runs) > 1 else []
        merged.append(row)
    return merged


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    opts = args.optimizers
    head = (
        ["model", "params", "GMACs", "weights MiB", "grads MiB"]
        + [f"{o} states MiB" for o in opts]
        + ["saved/sample MiB", "peak act/sample MiB", f"act @{args.batch} MiB"]
        + [f"total @{args.batch} ({o}) MiB" for o in opts]
        + ["step s (wall)", "step / twin (wall)", "step / twin (CPU)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], f"{r['params'] / 1e6:.2f}M", f"{r['gmacs']:.2f}", mib(r["weights_bytes"]), mib(r["grads_bytes"])]
        cells += [mib(r["optimizer_bytes"][o]) for o in opts]
        cells += [mib(r["saved_per_sample"]), mib(r["peak_per_sample"]), mib(r["activation_bytes_at_batch"])]
        cells += [mib(r["total_bytes_at_batch"][o]) for o in opts]
        step = f"{r['step_s_wall']:.3f}" if "step_s_wall" in r else "-"
        cells += [step, ratio_cell(r, "wall"), ratio_cell(r, "cpu")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    by_name = {r["model"]: r for r in rows}
    pairs = [(r, by_name[r["twin"]]) for r in rows if r["twin"] != r["model"] and r["twin"] in by_name]
    if pairs:
        base = opts[0]
        head = (
            ["pair", "per-sample activations"]
            + [f"total @{args.batch}: twin {base} / this {o}" for o in opts]
            + ["step time (wall)", "step time (CPU)"]
        )
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r, twin in pairs:
            cells = [f"{r['model']} vs {twin['model']}", f"{twin['peak_per_sample'] / r['peak_per_sample']:.1f}x less"]
            cells += [f"{twin['total_bytes_at_batch'][base] / r['total_bytes_at_batch'][o]:.1f}x less" for o in opts]
            cells += [ratio_cell(r, "wall", "x"), ratio_cell(r, "cpu", "x")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet34,revnet34_i,revnet34_ii", help="comma-separated names")
    parser.add_argument("--batch", type=int, default=128, help="batch the totals are extrapolated to")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--feat-dim", type=int, default=80)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=5994, help="AAM-softmax classes (VoxCeleb2 dev)")
    parser.add_argument("--slope-batches", default="2,4", help="two batch sizes for the per-sample slope")
    parser.add_argument("--optimizers", default="adam,adam8bit", help=f"state bytes for each of {sorted(OPTIMIZERS)}")
    parser.add_argument(
        "--time-batch", type=int, default=0,
        help="batch of the timed steps (0: first slope batch); with --from-jsonl: use the rows timed at it",
    )
    parser.add_argument("--time-rounds", type=int, default=5, help="interleaved timing rounds (0: no timing)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    parser.add_argument("--stream-dtype", default="", help="reversible models' stream_dtype (default: theirs)")
    parser.add_argument(
        "--no-kept-tail", action="store_true", help="reversible models with keep_tail_activations=False"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--direct", action="store_true", help="also measure one step at --batch (needs memory)")
    parser.add_argument("--time-only", action="store_true", help="only the step times (repeat runs, then merge)")
    parser.add_argument("--out", default="", help="write the Markdown table here")
    parser.add_argument(
        "--from-jsonl", default="", help="comma-separated JSON-line files of earlier runs: only write their table"
    )
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(available_models()))
    if unknown:
        parser.error(f"--models: unknown {unknown}; available: {', '.join(available_models())}")
    args.optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    bad = sorted(set(args.optimizers) - set(OPTIMIZERS))
    if bad or not args.optimizers:
        parser.error(f"--optimizers: unknown {bad or 'empty'}; choose from {sorted(OPTIMIZERS)}")
    try:
        small, large = (int(b) for b in args.slope_batches.split(","))
    except ValueError:
        parser.error(f"--slope-batches must be two integers like 2,4, got {args.slope_batches!r}")
    args.slope_batches = (small, large)
    args.time_batch_given = bool(args.time_batch)
    args.time_batch = args.time_batch or small
    return args


def table_note(rows: list[dict]) -> str:
    """What the table's figures are, from the settings recorded in its rows."""
    r = rows[0]
    loads = list(dict.fromkeys(row.get("load_average", "?") for row in rows))  # one per group, in order
    return (
        f"Batch {r['batch']} x {r['frames']} frames (activations: slope of the peak between batches "
        f"{r['batches'][0]} and {r['batches'][1]}, extrapolated); step time at batch {r.get('time_batch', '-')}, "
        f"median over {r.get('time_rounds', 0)} interleaved rounds of the ratio to the twin; device {r['device']}, "
        f"{r['threads']} thread(s); load average (1/5/15 min) after each group: {'; '.join(loads)}. "
        + (
            "Ratios with a range: median (min-max) over runs in separate processes. "
            if any(row.get("step_ratio_cpu_runs") for row in rows)
            else ""
        )
        + f"The paper reports up to {PAPER_TOTAL_SAVING}x total saving.\n\n"
    )


def main() -> None:
    args = parse_args()
    if args.from_jsonl:
        rows = [json.loads(line) for path in args.from_jsonl.split(",") for line in open(path) if line.strip()]
        rows = merge_runs(rows, args.time_batch if args.time_batch_given else 0)
        recorded = rows[0]["optimizer_bytes"]
        missing = [o for o in args.optimizers if o not in recorded]
        if missing:
            raise SystemExit(f"--optimizers {missing} not in {args.from_jsonl} (recorded: {sorted(recorded)})")
        args.batch = rows[0]["batch"]
        text = table_note(rows) + markdown(rows, args)
        if args.out:
            write_text_atomic(args.out, text)
        print(text, end="")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = dict(feat_dim=args.feat_dim, embed_dim=args.embed_dim, base_width=args.base_width)
    gen = torch.Generator().manual_seed(0)

    def feats_for_batch(batch: int) -> torch.Tensor:
        return torch.randn(batch, args.frames, args.feat_dim, generator=gen).to(device)

    groups: dict[str, list[str]] = {}
    for name in args.models:
        groups.setdefault(vanilla_twin(name), []).append(name)
    rows: list[dict] = []
    for twin, names in groups.items():
        trainees: dict[str, Trainee] = {}
        for name in names:
            torch.manual_seed(0)
            extra: dict = {}
            if "rev" in name:
                extra.update({"stream_dtype": args.stream_dtype} if args.stream_dtype else {})
                extra.update({"keep_tail_activations": False} if args.no_kept_tail else {})
            model = build_model(name, **overrides, **extra)
            trainee = Trainee(model, args.embed_dim, args.num_classes).to(device).train()
            trainees[name] = trainee
            if args.time_only:
                rows.append({"model": name, "twin": twin, "device": str(device), "threads": torch.get_num_threads()})
                continue
            params = [p for p in trainee.parameters() if p.requires_grad]
            # No optimizer step inside the slope measurement: its transient buffers (a copy of every
            # parameter for torch.optim.Adam) do not depend on the batch but can exceed a small batch's
            # activations and hide them; optimizer states are counted exactly below.
            slope: ActivationSlope = measure_activation_slope(
                trainee.model, trainee.loss_for_batch, feats_for_batch, None, args.slope_batches
            )
            rep = slope.report
            opt_bytes = {o: optimizer_bytes(params, o) for o in args.optimizers}
            act = args.batch * slope.peak_per_sample
            row = {
                "model": name,
                "twin": twin,
                "params": sum(p.numel() for p in trainee.model.parameters()),
                "head_params": sum(p.numel() for p in trainee.head.parameters()),
                "gmacs": count_macs(name, overrides, args.frames, args.feat_dim) / 1e9,
                "weights_bytes": rep.weights,
                "grads_bytes": rep.grads,
                "optimizer_bytes": opt_bytes,
                **slope.as_dict(),
                "activation_bytes_at_batch": act,
                "total_bytes_at_batch": {o: rep.weights + rep.grads + b + act for o, b in opt_bytes.items()},
                "batch": args.batch,
                "frames": args.frames,
                "device": str(device),
                "stream_dtype": str(getattr(model, "stream_dtype", "-")),
                "kept_tail": bool(getattr(model, "keep_tail_activations", False)),
                "threads": torch.get_num_threads(),
            }
            if args.direct:
                direct_opt = OPTIMIZERS[args.optimizers[0]](params)
                step = measure_training_step(
                    trainee.model, trainee.loss_for_batch(args.batch), feats_for_batch(args.batch), direct_opt
                )
                row["direct_peak_bytes_at_batch"] = step.peak_live
                row["direct_saved_bytes_at_batch"] = step.activations_saved
                del direct_opt
            rows.append(row)
        if args.time_rounds:
            times = time_group(trainees, feats_for_batch(args.time_batch), args.time_rounds)
            medians = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
            for row in rows[-len(names):]:
                m = medians[row["model"]]
                row.update(step_s_wall=m["wall"], step_s_cpu=m["cpu"], time_batch=args.time_batch,
                           time_rounds=args.time_rounds, step_s_wall_all=times[row["model"]]["wall"])
                if twin in medians and row["model"] != twin:
                    for kind in ("wall", "cpu"):  # ratio within each round, then the median over rounds
                        ratios = [a / b for a, b in zip(times[row["model"]][kind], times[twin][kind])]
                        row[f"step_ratio_{kind}"] = round(statistics.median(ratios), 2)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        for row in rows[-len(names):]:
            row["load_average"] = load
            print(json.dumps(row), flush=True)
        del trainees
    if args.out and not args.time_only:
        write_text_atomic(args.out, table_note(rows) + markdown(rows, args))


if __name__ == "__main__":
    main()
