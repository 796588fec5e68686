#!/usr/bin/env python
"""Memory and speed of the prepare stage on a synthetic VoxCeleb-layout tree of many tiny files.

Generates ``--speakers x --videos x --utts`` tiny 16 kHz wav files (0.05 s, distinct copies) under
``--workdir`` (outside the repository; deleted afterwards unless --keep), runs ``scripts/prepare.py`` under
``/usr/bin/time -v`` and samples the PSS of the whole process tree (main + scan workers) every 0.1 s.

    python scripts/benchmark_prepare.py --speakers 1000 --videos 10 --utts 10 --workers 2

Prints one JSON line: files, wall seconds, files/s, max RSS of the largest process (GNU time), the peak of
the tree's summed PSS (sampled; forked workers share pages, which RSS would count twice), and the load average.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def make_tree(root: Path, speakers: int, videos: int, utts: int, prefix: str) -> int:
    buf = io.BytesIO()
    sf.write(buf, (0.05 * np.random.default_rng(0).standard_normal(800)).astype(np.float32), 16000,
             format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    n = 0
    for s in range(speakers):
        for v in range(videos):
            d = root / f"{prefix}{s:05d}" / f"video{v:06d}"
            d.mkdir(parents=True, exist_ok=True)
            for u in range(utts):
                (d / f"{u + 1:05d}.wav").write_bytes(data)
                n += 1
    return n


def tree_pss_kib(pid: int) -> int:
    """Sum of the proportional set size (shared pages split between their users) over ``pid`` and descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack += children.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                m = re.search(r"^Pss:\s+(\d+)", f.read(), re.M)
            total += int(m.group(1)) if m else 0
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speakers", type=int, default=1000)
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--utts", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sv_bench_prepare"))
    ap.add_argument("--keep", action="store_true", help="keep the generated tree and manifests")
    args = ap.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    train, test = args.workdir / "train", args.workdir / "test"
    t0 = time.perf_counter()
    files = make_tree(train, args.speakers, args.videos, args.utts, "id0")
    make_tree(test, 2, 1, 2, "id1")
    (args.workdir / "trials.txt").write_text(
        "1 id100000/video000000/00001.wav id100000/video000000/00002.wav\n"
        "0 id100000/video000000/00001.wav id100001/video000000/00001.wav\n")
    print(f"generated {files} files in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    cmd = ["/usr/bin/time", "-v", sys.executable, str(REPO / "scripts" / "prepare.py"), "data=voxceleb",
           f"data.dir={args.workdir / 'data'}", f"data.train_audio_dir={train}", f"data.test_audio_dir={test}",
           "~data.trials", f"+data.trials={{t: {args.workdir / 'trials.txt'}}}", "data.musan_dir=null",
           "data.rirs_dir=null", "data.min_seconds=0", f"preparation.num_workers={args.workers}", "progress=false"]
    peak = [0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=args.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_pss_kib(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed:\n{err[-3000:]}")
    max_rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    summary = json.loads((args.workdir / "data" / "manifests" / "summary.json").read_text())
    result = {
        "files": files, "train_utterances": summary["train"]["utterances"], "workers": args.workers,
        "wall_s": round(wall, 1), "files_per_s": round(files / wall),
        "max_rss_largest_process_mib": round(max_rss / 1024, 1),
        "peak_pss_process_tree_mib": round(peak[0] / 1024, 1),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(args.workdir)


if __name__ == "__main__":
    main()
