#!/usr/bin/env python
"""Throughput of the training data pipeline, per DataLoader worker, with and without augmentation.

Builds a synthetic corpus under ``--workdir`` (outside the repository; deleted afterwards unless --keep):
``--utterances`` 16 kHz wav files of 4-12 s (VoxCeleb2 dev averages 7.8 s), a MUSAN-like set (noise, speech,
music files of 30 s) and 1 s RIRs; writes the manifests and audio shards, then times ``build_train_data``
(the train stage's loader) in each configuration, rounds interleaved, median reported:

  fbank      random 200-frame chunk, Kaldi fbank with dither 1.0, CMN (no augmentation)
  wespeaker  + speed perturbation 0.9/1.0/1.1 and noise or reverberation with probability 0.6 (augment=wespeaker)
  all_aug    + noise or reverberation on every chunk (augment.prob=1.0): the worst case

for each input mode (raw files, tar shards). One DataLoader worker, one torch thread: "chunks per CPU-second"
is measured from the worker's own CPU time (/proc), so it is the per-core rate and does not depend on how busy
the other cores are; "chunks/s wall" is what the one worker delivered on this (possibly shared) machine.

    python scripts/benchmark_data.py --utterances 800 --rounds 5 --batches 22 --batch-size 32
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from hydra import compose, initialize_config_dir

from sv_toolkit.data.manifests import Utterance, write_speakers, write_utterances
from sv_toolkit.data.shards import write_shards
from sv_toolkit.stages.train_data import build_train_data

REPO = Path(__file__).resolve().parents[1]
PREFETCHED = 2  # DataLoader prefetch_factor (2) x 1 worker: batches ready before the clock starts

CONFIGS = {"fbank": ["augment=none"], "wespeaker": ["augment=wespeaker"],
           "all_aug": ["augment=wespeaker", "augment.prob=1.0"]}


def _write(path: Path, seconds: float, rng: np.random.Generator) -> Utterance:
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    x = 0.2 * np.sin(2 * np.pi * rng.uniform(80, 300) * t) + 0.05 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x.astype(np.float32), 16000, subtype="PCM_16")
    return Utterance("", "", str(path), n, 16000)


def make_corpus(root: Path, utterances: int) -> None:
    rng = np.random.default_rng(0)
    utts = []
    for i in range(utterances):
        key = f"id{i % 50:05d}/video{i // 50:04d}/{i:05d}.wav"
        u = _write(root / "wav" / key, rng.uniform(4, 12), rng)
        utts.append(Utterance(key, key.split("/")[0], u.path, u.num_samples, 16000))
    manifests = root / "data" / "manifests"
    write_utterances(manifests / "train" / "utterances.tsv", utts)
    write_speakers(manifests / "train" / "speakers.tsv", utts)
    musan = []
    for kind in ("noise", "speech", "music"):
        for j in range(4):
            key = f"{kind}/src/{kind}-{j}.wav"
            u = _write(root / "musan" / key, 30.0, rng)
            musan.append(Utterance(key, kind, u.path, u.num_samples, 16000))
    write_utterances(manifests / "augment" / "musan" / "utterances.tsv", musan)
    rirs = []
    for j in range(20):
        h = rng.standard_normal(16000) * np.exp(-np.arange(16000) / rng.uniform(800, 4000))
        h[int(rng.integers(20, 200))] = 3.0
        path = root / "rirs" / f"room/Room{j:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), (0.3 * h / np.abs(h).max()).astype(np.float32), 16000, subtype="PCM_16")
        rirs.append(Utterance(f"room/Room{j:03d}.wav", "room", str(path), 16000, 16000))
    write_utterances(manifests / "augment" / "rirs" / "utterances.tsv", rirs)
    write_shards(manifests / "train" / "utterances.tsv", root / "data" / "shards" / "train", 100, 0, progress=False)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def measure(root: Path, mode: str, overrides: list[str], batches: int, batch_size: int) -> dict[str, float]:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "data=voxceleb", f"data.dir={root / 'data'}", f"data.train_format={mode}", "trainer.num_workers=1",
            f"trainer.batch_size={batch_size}", "trainer.chunk_frames=200", "trainer.device=cpu",
            "data.shuffle_buffer=32", *overrides])  # a small buffer: every timed chunk includes its tar read
    data = build_train_data(cfg)
    data.set_epoch(0)
    it = iter(data.loader)
    next(it), next(it)  # worker start-up and the shuffle buffer's first fill are not counted
    time.sleep(1.0)  # the worker fills its prefetch queue and waits
    worker = it._workers[0].pid  # private, but the one way to read this loader's worker's CPU time
    cpu0, t0 = _cpu_seconds(worker), time.perf_counter()
    for _ in range(batches):
        feats, _ = next(it)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds(worker) - cpu0
    del it
    # PREFETCHED batches were ready at t0; the worker's CPU time also holds the start of the batch after the
    # last one (so chunks per CPU-second errs low, by less than one batch in `batches`).
    chunks = (batches - PREFETCHED) * batch_size
    seconds_per_chunk = (feats.shape[1] - 1) * 0.01 + 0.025
    return {"chunks_per_s_wall": chunks / wall, "chunks_per_cpu_s": chunks / cpu,
            "audio_s_per_s_wall": chunks * seconds_per_chunk / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utterances", type=int, default=800)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=22, help="timed batches per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--modes", default="raw,shards")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sv_bench_data"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.batches * args.batch_size + 2 * args.batch_size > args.utterances:
        raise SystemExit("--utterances must cover (batches + 2) x batch-size chunks (one epoch)")
    if not (args.workdir / "data" / "shards" / "train" / "shards.tsv").is_file():
        make_corpus(args.workdir, args.utterances)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {}
    for r in range(args.rounds):
        for mode in args.modes.split(","):
            for name, overrides in CONFIGS.items():
                results.setdefault(f"{mode}/{name}", []).append(
                    measure(args.workdir, mode, overrides, args.batches, args.batch_size))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    report = {"load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    for key, runs in results.items():
        report[key] = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    print(json.dumps(report, indent=1))
    if not args.keep:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
