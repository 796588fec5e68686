"""Total training memory of one real training step, measured by the allocator: weights, gradients, optimizer
states, activations and every workspace together, at a real batch (no extrapolation inside a measurement).

Each (model, optimizer, batch) runs in a fresh process (``--child``): the model with its AAM-softmax head is
built, then two full steps run (forward, backward, ``optimizer.step()``; the second with the optimizer
states already there) and the peak is read:

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` before the model is built;
- CPU: the process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` once
  torch is imported and warm) minus the resident set at that moment. glibc serves large tensors with mmap
  and returns them on free, so this follows the live tensor bytes plus the allocator's own slack.

``--fit`` finds, per (model, optimizer), the largest batch that fits ``--budget`` (bytes such as ``18GiB``;
on CUDA default the card's free memory): it doubles from ``--batch-start`` until a step fails with
out-of-memory or its peak passes the budget, then halves the gap (bisection to ``--fit-resolution``). The
extrapolation to ``--extrapolate-to`` (batch 128 by default) uses the slope between the two largest measured
batches and is printed in its own, labelled columns.

Examples:

    python benchmarks/train_step_peak.py --models resnet34,revnet34_ii --optimizers adam,adam8bit --batches 8,16
    python benchmarks/train_step_peak.py --device cuda --models resnet293,revnet293_ii --fit --json peaks.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

GIB = 2**30
UNITS = {"": 1, "B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 18GiB or 512MiB")
    return int(float(m.group(1)) * UNITS[m.group(2).upper()])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(args: argparse.Namespace) -> dict:
    """One measurement in this process: returns the row (printed as JSON by main)."""
    import torch

    from sv_toolkit.losses.aam import AAMSoftmax
    from sv_toolkit.models import build_model
    from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit

    optimizers = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-4),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-4),
        "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9),
        "adam8bit": lambda ps: Adam8bit(ps, lr=1e-4),
        "adamw8bit": lambda ps: AdamW8bit(ps, lr=1e-4),
        "sgd8bit": lambda ps: SGD8bit(ps, lr=1e-4, momentum=0.9),
    }
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    feats = torch.randn(args.batch, args.frames, args.feat_dim)
    labels = torch.randint(args.num_classes, (args.batch,), generator=torch.Generator().manual_seed(0))
    # One step of a 4-channel twin first: the code pages, thread pools and kernel caches that any first step
    # touches count in the resident set, and would otherwise be charged to the measured step.
    thin = build_model(args.model, base_width=4, embed_dim=args.embed_dim).to(device)
    thin_head = AAMSoftmax(args.embed_dim, args.num_classes).to(device)
    thin_opt = optimizers[args.optimizer](list(thin.parameters()) + list(thin_head.parameters()))
    thin_head(thin(feats[:2].to(device)), labels[:2].to(device))[0].backward()
    thin_opt.step()
    del thin, thin_head, thin_opt
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        base = _status_kib("VmRSS") * 1024
    model = build_model(args.model, base_width=args.base_width, embed_dim=args.embed_dim).to(device)
    head = AAMSoftmax(args.embed_dim, args.num_classes).to(device)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = optimizers[args.optimizer](params)
    x, y = feats.to(device), labels.to(device)
    times = []
    try:
        for _ in range(args.steps):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, _ = head(model(x), y)
            loss.backward()
            optimizer.step()
            del loss
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError:
        return {"oom": True}
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = _status_kib("VmHWM") * 1024 - base
    return {
        "oom": False,
        "peak_bytes": int(peak),
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0],
        "first_step_s": times[0],
    }


def measure(args: argparse.Namespace, model: str, optimizer: str, batch: int) -> dict:
    """Run :func:`child` in a fresh process (in this one with ``--in-process``, CUDA only: the peak counter
    resets, and an out-of-memory error leaves the process usable); a process killed for memory counts as out
    of memory."""
    if args.in_process:
        row = _in_process(args, model, optimizer, batch)
    else:
        row = _in_child(args, model, optimizer, batch)
    row.update({"model": model, "optimizer": optimizer, "batch": batch, "device": args.device,
                "frames": args.frames, "base_width": args.base_width, "num_classes": args.num_classes})
    print(json.dumps(row), flush=True)
    return row


def _in_process(args: argparse.Namespace, model: str, optimizer: str, batch: int) -> dict:
    import gc

    import torch

    row = child(argparse.Namespace(**{**vars(args), "model": model, "optimizer": optimizer, "batch": batch}))
    gc.collect()
    torch.cuda.empty_cache()
    return row


def _in_child(args: argparse.Namespace, model: str, optimizer: str, batch: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--device", args.device, "--models", model, "--optimizers", optimizer,
           "--batch", str(batch), "--frames", str(args.frames), "--feat-dim", str(args.feat_dim),
           "--embed-dim", str(args.embed_dim), "--base-width", str(args.base_width), "--num-classes",
           str(args.num_classes), "--threads", str(args.threads), "--steps", str(args.steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not rows:
        if proc.returncode in (-9, 137) or "out of memory" in proc.stderr.lower():
            row = {"oom": True}
        else:
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    else:
        row = rows[-1]
    return row


def fits(row: dict, budget: int | None) -> bool:
    return not row["oom"] and (budget is None or row["peak_bytes"] <= budget)


def fit_batch(args: argparse.Namespace, model: str, optimizer: str) -> list[dict]:
    """Rows measured while searching the largest batch that fits (doubling, then bisection)."""
    rows, good, bad, batch = [], 0, 0, args.batch_start
    while not bad and batch <= args.batch_max:
        row = measure(args, model, optimizer, batch)
        rows.append(row)
        if fits(row, args.budget):
            good, batch = batch, batch * 2
        else:
            bad = batch
    while bad and bad - good > max(args.fit_resolution, 1):
        mid = (good + bad) // 2
        row = measure(args, model, optimizer, mid)
        rows.append(row)
        good, bad = (mid, bad) if fits(row, args.budget) else (good, mid)
    return rows


def summarise(rows: list[dict], args: argparse.Namespace) -> list[dict]:
    """Per (model, optimizer): the largest fitting batch measured, and the labelled extrapolation."""
    out = []
    for key in dict.fromkeys((r["model"], r["optimizer"]) for r in rows):
        ok = sorted((r for r in rows if (r["model"], r["optimizer"]) == key and fits(r, args.budget)),
                    key=lambda r: r["batch"])
        if not ok:
            out.append({"model": key[0], "optimizer": key[1], "fits": False})
            continue
        top = ok[-1]
        entry = {"model": key[0], "optimizer": key[1], "fits": True, "batch": top["batch"],
                 "peak_bytes": top["peak_bytes"], "step_s": top["step_s"], "params": top["params"]}
        if len(ok) >= 2 and args.extrapolate_to:
            lo = ok[-2]
            slope = (top["peak_bytes"] - lo["peak_bytes"]) / (top["batch"] - lo["batch"])
            entry["extrapolated_bytes"] = top["peak_bytes"] + slope * (args.extrapolate_to - top["batch"])
            entry["slope_batches"] = [lo["batch"], top["batch"]]
        out.append(entry)
    return out


def markdown(summary: list[dict], args: argparse.Namespace) -> str:
    target = args.extrapolate_to
    lines = ["| model | optimizer | params | batch measured | peak measured GiB | step s | "
             f"EXTRAPOLATED to batch {target} GiB (slope of batches) |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        if not s["fits"]:
            lines.append(f"| {s['model']} | {s['optimizer']} | - | none fits | - | - | - |")
            continue
        extra = (f"{s['extrapolated_bytes'] / GIB:.2f} ({s['slope_batches'][0]}, {s['slope_batches'][1]})"
                 if "extrapolated_bytes" in s else "-")
        lines.append(f"| {s['model']} | {s['optimizer']} | {s['params'] / 1e6:.2f}M | {s['batch']} | "
                     f"{s['peak_bytes'] / GIB:.3f} | {s['step_s']:.3f} | {extra} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet34,revnet34_ii")
    p.add_argument("--optimizers", default="adam,adam8bit")
    p.add_argument("--batches", default="8,16", help="batches measured per (model, optimizer) without --fit")
    p.add_argument("--fit", action="store_true", help="search the largest batch that fits --budget")
    p.add_argument("--budget", type=parse_bytes, default=None, help="memory budget for --fit, e.g. 18GiB")
    p.add_argument("--batch-start", type=int, default=8)
    p.add_argument("--batch-max", type=int, default=128)
    p.add_argument("--fit-resolution", type=int, default=4, help="stop bisecting when the gap is this small")
    p.add_argument("--extrapolate-to", type=int, default=128)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--feat-dim", type=int, default=80)
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--base-width", type=int, default=32)
    p.add_argument("--num-classes", type=int, default=5994)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="steps per measurement (>= 2: states exist)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--in-process", action="store_true", help="CUDA: measure every step in this process")
    p.add_argument("--json", default="", help="write every row and the summary here")
    p.add_argument("--md", default="", help="write the Markdown table here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.in_process and not args.device.startswith("cuda"):
        raise SystemExit("--in-process is for CUDA (the CPU measure is the resident set of a fresh process)")
    if args.child:
        print(json.dumps(child(argparse.Namespace(**{**vars(args), "model": args.models, "optimizer":
                                                     args.optimizers}))), flush=True)
        return 0
    if args.device.startswith("cuda") and args.fit and args.budget is None:
        import torch

        args.budget = torch.cuda.mem_get_info()[0]
    rows: list[dict] = []
    for model in args.models.split(","):
        for optimizer in args.optimizers.split(","):
            if args.fit:
                rows += fit_batch(args, model, optimizer)
            else:
                rows += [measure(args, model, optimizer, int(b)) for b in args.batches.split(",")]
    summary = summarise(rows, args)
    table = markdown(summary, args)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary, "argv": sys.argv[1:],
                                               "budget_bytes": args.budget}, indent=1))
    if args.md:
        Path(args.md).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
