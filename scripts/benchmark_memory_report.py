#!/usr/bin/env python
"""Predicted vs measured training-step memory (the train stage's memory report), CPU live-storage tracker.

For each model: the prediction of sv_toolkit.training.memory_report.predict_training_memory (two probe
batches, linear extrapolation) at --batch x --frames, and the measurement of one step at that batch (the second step of
a fresh copy after a warm-up step, so that optimizer states exist, as in the prediction), with an AAM head over --classes speakers
and SGD with momentum. Prints a Markdown table; relative errors are (predicted - measured) / measured.

  python scripts/benchmark_memory_report.py --models resnet34 revnet34_ii --batch 16 --frames 200
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from sv_toolkit.losses import AAMSoftmax
from sv_toolkit.models import build_model
from sv_toolkit.training.memory_report import PROBE_BATCHES, measure_steady_steps, predict_training_memory
from sv_toolkit.training.step import PRECISIONS, SpeakerNet

MIB = 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet34", "revnet34_ii"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--probes", type=int, nargs=2, default=list(PROBE_BATCHES))
    ap.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    def optimizer(params):
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

    print(f"CPU tracker, {args.precision}, batch {args.batch} x {args.frames} frames x 80 bins, AAM head "
          f"{args.classes} classes, SGD momentum; probes {args.probes}; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} threads\n")
    print("| model | component | predicted MiB | measured MiB | error |")
    print("|---|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        net = SpeakerNet(build_model(name), AAMSoftmax(256, args.classes), PRECISIONS[args.precision])
        t0 = time.perf_counter()
        pred = predict_training_memory(net, optimizer, args.batch, args.frames, 80, args.classes, device,
                                       tuple(args.probes))
        t1 = time.perf_counter()
        (meas,) = measure_steady_steps(net, optimizer, (args.batch,), args.frames, 80, args.classes, device)
        t2 = time.perf_counter()
        static_p = pred.weights + pred.grads + pred.optimizer_states
        static_m = meas.weights + meas.grads + meas.optimizer_states
        rows = [
            ("weights + grads + optimizer states", static_p, static_m),
            ("activations saved for backward", pred.activations_saved, meas.activations_saved),
            ("peak minus weights, grads, states", pred.peak_live - static_p, meas.peak_live - static_m),
            ("peak live", pred.peak_live, meas.peak_live),
        ]
        for label, p, m in rows:
            print(f"| {name} | {label} | {p / MIB:.1f} | {m / MIB:.1f} | {(p - m) / m:+.1%} |")
        print(f"| {name} | (seconds: prediction {t1 - t0:.1f}, measurement {t2 - t1:.1f}) | | | |")


if __name__ == "__main__":
    main()
