"""State bytes and step time of the 8-bit optimizers vs torch.optim, side by side in one run.

Prints one JSON line per optimizer. Example (resnet34, 6.6M parameters):

    python scripts/benchmark_optim.py --model resnet34 --optimizers adam,adam8bit,adam8bit_compiled,sgd,sgd8bit

Step time is the median over ``--repeats`` rounds; each round times ``--steps`` steps of every optimizer in
turn (interleaved, so a busy machine slows all of them alike), and a ratio to torch.optim is the median
over rounds of the ratio within the round. Wall-clock and process CPU time are both
reported (CPU time is the steadier figure on a shared machine, where the process is not always running);
``load_average`` is the larger of the 1/5/15-minute load averages before and after the timed rounds.
Gradients are fixed random tensors; only ``optimizer.step()`` is timed. ``--model shapes:resnet34`` uses a built-in list of resnet34 parameter
shapes when sv_toolkit.models is unavailable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable

import torch

from sv_toolkit.optim import Adam8bit, AdamW8bit, SGD8bit

LARGE = 4096  # tensors this big or bigger get 8-bit states


def resnet34_shapes(width: int = 32, feat_dim: int = 80, embed_dim: int = 256) -> list[tuple[int, ...]]:
    """Parameter shapes of a wespeaker-style ResNet34 (3-4-6-3 basic blocks, stats pooling, one linear)."""
    shapes: list[tuple[int, ...]] = [(width, 1, 3, 3), (width,), (width,)]
    in_ch = width
    for mult, blocks in zip((1, 2, 4, 8), (3, 4, 6, 3)):
        out = width * mult
        for b in range(blocks):
            shapes += [(out, in_ch, 3, 3), (out,), (out,), (out, out, 3, 3), (out,), (out,)]
            if in_ch != out:
                shapes += [(out, in_ch, 1, 1), (out,), (out,)]
            in_ch = out
    pooled = in_ch * (feat_dim // 8) * 2
    return shapes + [(embed_dim, pooled), (embed_dim,)]


def build_params(model: str) -> list[torch.nn.Parameter]:
    """Parameters of ``model`` (a sv_toolkit.models name) or of a built-in shape list (``shapes:resnet34``)."""
    if model.startswith("shapes:"):
        if model != "shapes:resnet34":
            raise ValueError(f"unknown shape list {model!r}; available: shapes:resnet34")
        return [torch.nn.Parameter(torch.randn(s) * 0.05) for s in resnet34_shapes()]
    from sv_toolkit.models import build_model

    return [p for p in build_model(model).parameters() if p.requires_grad]


FACTORIES: dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]] = {
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-4, foreach=True),
    "adam8bit": lambda ps: Adam8bit(ps, lr=1e-4),
    "adam8bit_compiled": lambda ps: Adam8bit(ps, lr=1e-4, compile=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-4, foreach=True),
    "adamw8bit": lambda ps: AdamW8bit(ps, lr=1e-4),
    "sgd": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9, foreach=True),
    "sgd8bit": lambda ps: SGD8bit(ps, lr=1e-4, momentum=0.9),
    "sgd8bit_compiled": lambda ps: SGD8bit(ps, lr=1e-4, momentum=0.9, compile=True),
}


def state_bytes(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], large: bool) -> int:
    """Bytes of per-parameter state tensors (step counters excluded), for large or for all tensors."""
    total = 0
    for p in params:
        if large and p.numel() < LARGE:
            continue
        for key, value in opt.state.get(p, {}).items():
            if key != "step" and torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet34")
    parser.add_argument("--optimizers", default="adam,adam8bit,adam8bit_compiled,sgd,sgd8bit")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    parser.add_argument("--profile", default="", help="after timing, print torch.profiler's per-op table of "
                                                         "--steps steps of this optimizer to stderr")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    unknown = [n for n in names if n not in FACTORIES]
    if unknown:
        raise SystemExit(f"unknown optimizer(s) {unknown}; choose from {sorted(FACTORIES)}")
    torch.manual_seed(0)
    try:
        base = build_params(args.model)
    except ImportError as err:
        raise SystemExit(f"--model {args.model}: sv_toolkit.models unavailable ({err}); use --model shapes:resnet34")
    grads = [torch.randn_like(p) * 1e-3 for p in base]
    runs: dict[str, dict] = {}
    for name in names:
        params = [torch.nn.Parameter(p.detach().clone()) for p in base]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt = FACTORIES[name](params)
        t0 = time.perf_counter()
        opt.step()  # creates the states (and compiles, for *_compiled)
        first = time.perf_counter() - t0
        runs[name] = dict(opt=opt, params=params, first_step_s=first, times=[], cpu_times=[])
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for name in names:
            opt = runs[name]["opt"]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                opt.step()
            runs[name]["times"].append((time.perf_counter() - t0) / args.steps)
            runs[name]["cpu_times"].append((time.process_time() - c0) / args.steps)
    load = [round(max(a, b), 2) for a, b in zip(load_before, os.getloadavg())]
    n_all = sum(p.numel() for p in base)
    n_large = sum(p.numel() for p in base if p.numel() >= LARGE)
    reference = {"adam": "adam", "adamw": "adamw", "sgd": "sgd"}
    medians = {name: statistics.median(r["times"]) for name, r in runs.items()}
    cpu_medians = {name: statistics.median(r["cpu_times"]) for name, r in runs.items()}
    for name, r in runs.items():
        ref = reference.get(name.split("8bit")[0])
        row = {
            "model": args.model, "optimizer": name, "params": n_all, "params_in_large_tensors": n_large,
            "tensors": len(base), "threads": torch.get_num_threads(),
            "state_bytes_per_param_large": round(state_bytes(r["opt"], r["params"], True) / n_large, 5),
            "state_bytes_per_param_all": round(state_bytes(r["opt"], r["params"], False) / n_all, 5),
            "step_ms_median": round(medians[name] * 1e3, 2),
            "step_ms_all": [round(t * 1e3, 2) for t in r["times"]],
            "step_cpu_ms_median": round(cpu_medians[name] * 1e3, 2),
            "first_step_s": round(r["first_step_s"], 2),
            "load_average": load,
        }
        if ref and ref != name and ref in medians:  # median over rounds of the ratio within each round
            for key, times in (("step_time_ratio_vs_", "times"), ("step_cpu_time_ratio_vs_", "cpu_times")):
                ratios = [a / b for a, b in zip(r[times], runs[ref][times])]
                row[key + ref] = round(statistics.median(ratios), 2)
        workspaces = getattr(r["opt"], "_workspaces", {})
        if workspaces:
            row["workspace_bytes"] = sum(ws.nbytes() for ws in workspaces.values())
        print(json.dumps(row), flush=True)
    if args.profile:
        if args.profile not in runs:
            raise SystemExit(f"--profile {args.profile}: not among --optimizers {names}")
        profile(runs[args.profile]["opt"], args.steps)


def profile(opt: torch.optim.Optimizer, steps: int) -> None:
    """torch.profiler's table of self CPU time per op over ``steps`` steps, to stderr."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            opt.step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30), file=sys.stderr)


if __name__ == "__main__":
    main()
