"""Test helpers: a tiny synthetic training corpus (a FeatureStore and a speaker list) and train-stage runs."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FEAT_DIM = 80


def write_tiny_corpus(root: Path, num_speakers: int = 6, utts_per_speaker: int = 8, frames: int = 60,
                      seed: int = 0) -> Path:
    """``root/fbank/train`` (FeatureStore layout) and ``root/manifests/train/speakers.tsv``; each speaker's
    frames are a speaker-specific spectral shape plus noise, so a model can learn to tell them apart."""
    rng = np.random.default_rng(seed)
    store = root / "fbank" / "train"
    store.mkdir(parents=True)
    shapes = rng.normal(0, 1.0, (num_speakers, FEAT_DIM)).astype(np.float32)
    feats, rows, offset = [], [], 0
    for s in range(num_speakers):
        for u in range(utts_per_speaker):
            n = frames + int(rng.integers(0, frames // 2))
            feats.append(shapes[s] + rng.normal(0, 1.0, (n, FEAT_DIM)).astype(np.float32))
            rows.append((f"spk{s:02d}/utt{u:02d}", f"spk{s:02d}", offset, n))
            offset += n
    np.save(store / "feats.npy", np.concatenate(feats))
    with open(store / "index.tsv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["key", "speaker", "offset", "num_frames"])
        w.writerows(rows)
    (store / "meta.json").write_text(json.dumps({"num_mel_bins": FEAT_DIM, "num_utterances": len(rows)}))
    manifests = root / "manifests" / "train"
    manifests.mkdir(parents=True)
    with open(manifests / "speakers.tsv", "w") as f:
        f.write("speaker\tindex\tnum_utterances\tseconds\n")
        for s in range(num_speakers):
            f.write(f"spk{s:02d}\t{s}\t{utts_per_speaker}\t1.0\n")
    return root


def stage_overrides(corpus: Path, exp_root: Path, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long train stage on ``corpus`` (resnet10 of width 4)."""
    return [
        f"data.dir={corpus}", f"exp_root={exp_root}", "model=resnet10", "model.base_width=4", "model.embed_dim=16",
        "trainer.epochs=2", "trainer.batch_size=8", "trainer.chunk_frames=40", "trainer.num_workers=0",
        "trainer.log_every=1", "trainer.keep_last=2", "trainer.average_last=2", "trainer.device=cpu",
        "sched.warmup_epochs=0.5", "sched.margin.start_epoch=1", "sched.margin.end_epoch=2", "optim.lr=0.2",
        "progress=false", *extra,
    ]


def stage_env() -> dict[str, str]:
    env = dict(os.environ, HYDRA_FULL_ERROR="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def run_train(overrides: list[str], cwd: Path, torchrun_procs: int = 0, timeout: int = 300,
              ) -> subprocess.CompletedProcess:
    """scripts/train.py with ``overrides``, plainly or under ``torchrun --nproc_per_node=torchrun_procs``."""
    script = str(REPO / "scripts" / "train.py")
    if torchrun_procs:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun_procs}",
               script, *overrides]
    else:
        cmd = [sys.executable, script, *overrides]
    return subprocess.run(cmd, cwd=cwd, env=stage_env(), capture_output=True, text=True, timeout=timeout)
