#!/usr/bin/env python
"""Benchmark of the evaluation code: metrics on a Vox1-E-sized trial list, AS-norm at VoxCeleb scale, and
pad-free bucketed embedding extraction against one-by-one extraction.

Each comparison runs its contestants in alternating rounds (A, B, A, B, ...) and reports the median time of
each and their ratio, with the load average, so that figures taken on a shared machine stay comparable.

    python scripts/benchmark_eval.py                       # everything, defaults below
    python scripts/benchmark_eval.py --only metrics --rounds 7 --threads 2

Defaults: 579,818 trials (289,921 target, the Vox1-E cleaned composition); 5,000 test embeddings against a
6,000-vector cohort, 256-dim, top-300, and the 580k trials normalised; 120 utterances of 2-8 s through a
ResNet34 of width 16 (one-by-one vs buckets at max_crop 0 and 0.02). ``--only crop`` measures, on a real
test set with a trained model, how far cropping to share buckets moves the embeddings and the EER:

    python scripts/benchmark_eval.py --only crop --crop-checkpoint exp/minivox/resnet10_w8/train/model_avg.pt \
        --crop-features data/minivox/fbank/test --crop-trials data/minivox/manifests/trials/minivox_O.txt
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np
import torch


def rounds(contestants: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median seconds of each contestant over ``n`` interleaved rounds (after one warm-up call each)."""
    for fn in contestants.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contestants}
    for _ in range(n):
        for name, fn in contestants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def report(title: str, medians: dict[str, float], baseline: str | None = None) -> None:
    print(f"\n{title}")
    for name, t in medians.items():
        ratio = f"  speed {medians[baseline] / t:.2f}x of the first" if baseline and name != baseline else ""
        print(f"  {name:<48s} {t:8.3f} s{ratio}")


def bench_metrics(n_rounds: int) -> None:
    from sklearn.metrics import roc_curve

    from sv_toolkit.metrics import compute_eer, compute_min_dcf, llr_metrics, verification_metrics

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(289_921, dtype=np.int64), np.zeros(289_897, dtype=np.int64)]
    rng.shuffle(labels)
    scores = np.round(rng.normal(size=labels.size) * 0.1 + 0.25 * labels, 5)  # 5 digits, like score files: ties

    def sklearn_reference() -> None:
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        fnr = 1 - tpr
        i = np.flatnonzero(fnr - fpr <= 0)[0]
        for p in (0.01, 0.05):
            np.min(fnr * p + fpr * (1 - p)) / min(p, 1 - p)
        return i

    medians = rounds({
        "sklearn roc_curve + EER + 2 minDCF (reference)": sklearn_reference,
        "verification_metrics (EER, minDCF 0.01, 0.05)": lambda: verification_metrics(scores, labels),
        "compute_eer + 2 x compute_min_dcf": lambda: (compute_eer(scores, labels),
                                                     compute_min_dcf(scores, labels, 0.01),
                                                     compute_min_dcf(scores, labels, 0.05)),
        "llr_metrics (actDCF x2, Cllr, minCllr)": lambda: llr_metrics(scores * 8 - 2, labels),
    }, n_rounds)
    report(f"metrics, {labels.size:,} trials", medians, "sklearn roc_curve + EER + 2 minDCF (reference)")


def bench_asnorm(n_rounds: int, n_test: int, n_cohort: int, dim: int, top_n: int, n_trials: int) -> None:
    from sv_toolkit.scoring import cohort_statistics, length_normalise, normalise_scores

    rng = np.random.default_rng(1)
    test = length_normalise(rng.normal(size=(n_test, dim)))
    cohort = length_normalise(rng.normal(size=(n_cohort, dim)))
    enroll_idx, test_idx = rng.integers(0, n_test, n_trials), rng.integers(0, n_test, n_trials)
    raw = np.einsum("ij,ij->i", test[enroll_idx], test[test_idx])

    def full_sort() -> None:  # wespeaker score_norm.py's way: full matrix, np.sort of every row
        s = np.sort(test @ cohort.T, axis=1)[:, ::-1][:, :top_n]
        return s.mean(axis=1), s.std(axis=1)

    medians = rounds({
        "full matrix + np.sort (wespeaker style)": full_sort,
        "cohort_statistics (blocked, torch.topk)": lambda: cohort_statistics(test, cohort, top_n),
        f"normalise_scores ({n_trials:,} trials, stats incl.)": lambda: normalise_scores(
            raw, test, enroll_idx, test_idx, cohort, top_n),
    }, n_rounds)
    report(f"AS-norm, {n_test:,} x {n_cohort:,} cohort, dim {dim}, top {top_n}", medians,
           "full matrix + np.sort (wespeaker style)")


class MemorySource:
    def __init__(self, feats: list[np.ndarray]) -> None:
        self.feats, self.keys, self.num_mel_bins = feats, [str(i) for i in range(len(feats))], feats[0].shape[1]

    def __len__(self) -> int:
        return len(self.feats)

    def num_frames(self) -> np.ndarray:
        return np.array([f.shape[0] for f in self.feats])

    def features(self, i: int) -> np.ndarray:
        return self.feats[i]


def bench_extraction(n_rounds: int, n_utts: int, width: int) -> None:
    from sv_toolkit.models import build_model
    from sv_toolkit.scoring import extract_embeddings

    rng = np.random.default_rng(2)
    # Frame counts on a 10 ms grid like real durations: many share a length within 2 %, few exactly.
    lengths = rng.integers(200, 800, n_utts)
    source = MemorySource([rng.normal(size=(n, 80)).astype(np.float32) for n in lengths])
    model = build_model("resnet34", base_width=width).eval()
    cpu = torch.device("cpu")
    run = lambda **kw: extract_embeddings(model, source, cpu, progress=False, **kw)  # noqa: E731
    medians = rounds({
        "one by one": lambda: run(max_batch_size=1),
        "buckets, max_crop 0 (exact)": lambda: run(max_crop=0.0),
        "buckets, max_crop 0.02": lambda: run(max_crop=0.02),
    }, n_rounds)
    report(f"extraction, {n_utts} utterances of 2-8 s, resnet34 width {width}", medians, "one by one")


def bench_crop(checkpoint: str, feature_dir: str, trial_files: list[str], n_rounds: int) -> None:
    """Real speech, trained model: how far bucket cropping moves embeddings and EER, and what it saves."""
    from sv_toolkit.data.manifests import read_trials
    from sv_toolkit.features.store import FeatureStore
    from sv_toolkit.metrics import verification_metrics
    from sv_toolkit.scoring import StoreFeatureSource, extract_embeddings, length_normalise, load_extractor, score_trials
    from sv_toolkit.scoring.buckets import plan_batches

    model, _ = load_extractor(checkpoint)
    source = StoreFeatureSource(FeatureStore(feature_dir))
    cpu = torch.device("cpu")
    crops = (0.0, 0.01, 0.02, 0.05)
    emb: dict[str, np.ndarray] = {}
    contestants = {"one by one": dict(max_batch_size=1)} | {f"max_crop {c}": dict(max_crop=c) for c in crops}
    medians = rounds({
        name: (lambda name=name, kw=kw: emb.__setitem__(name, extract_embeddings(model, source, cpu, progress=False, **kw)))
        for name, kw in contestants.items()
    }, n_rounds)
    report(f"extraction of {len(source)} utterances of {feature_dir} with {checkpoint}", medians, "one by one")
    print(f"  max |max_crop 0 - one by one| = {np.abs(emb['max_crop 0.0'] - emb['one by one']).max():.2e}")
    emb = {0.0: emb["one by one"]} | {c: emb[f"max_crop {c}"] for c in crops[1:]}
    exact = length_normalise(emb[0.0])
    frames = source.num_frames()
    for c in crops[1:]:
        batches = plan_batches(frames, 12000, 64, c)
        cos = (length_normalise(emb[c]) * exact).sum(axis=1)
        line = f"  max_crop {c}: {len(batches)} batches (max_crop 0: {len(plan_batches(frames, 12000, 64, 0.0))}); " \
               f"cosine to one-by-one: min {cos.min():.5f}, median {np.median(cos):.6f}"
        for path in trial_files:
            trials = read_trials(path)
            labels = np.array([t.label for t in trials])
            m0 = verification_metrics(score_trials(source.keys, emb[0.0], trials), labels)
            m1 = verification_metrics(score_trials(source.keys, emb[c], trials), labels)
            line += f"; {os.path.basename(path)} EER {100 * m0['eer']:.3f}% -> {100 * m1['eer']:.3f}%"
        print(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["metrics", "asnorm", "extraction", "crop"], action="append")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch / BLAS threads (default 2)")
    p.add_argument("--test", type=int, default=5000)
    p.add_argument("--cohort", type=int, default=6000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--top-n", type=int, default=300)
    p.add_argument("--trials", type=int, default=579_818)
    p.add_argument("--utterances", type=int, default=120)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--crop-checkpoint", help="crop: a trained model_avg.pt")
    p.add_argument("--crop-features", help="crop: a feature-store folder (data/<name>/fbank/test)")
    p.add_argument("--crop-trials", nargs="*", default=[], help="crop: trial lists of that test set")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    parts = args.only or ["metrics", "asnorm", "extraction"]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{args.threads} threads; {args.rounds} interleaved rounds, medians")
    if "metrics" in parts:
        bench_metrics(args.rounds)
    if "asnorm" in parts:
        bench_asnorm(args.rounds, args.test, args.cohort, args.dim, args.top_n, args.trials)
    if "extraction" in parts:
        bench_extraction(max(1, args.rounds // 2), args.utterances, args.width)
    if "crop" in parts:
        if not (args.crop_checkpoint and args.crop_features):
            raise SystemExit("--only crop needs --crop-checkpoint and --crop-features")
        bench_crop(args.crop_checkpoint, args.crop_features, args.crop_trials, max(1, args.rounds // 2))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
