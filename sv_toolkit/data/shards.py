"""Tar shards of a training set: sequential reads instead of a million small files.

A shard folder holds ``shard_NNNNNN.tar`` files, ``shards.tsv`` (file, utterances, seconds) and ``meta.json``.
Each utterance is one tar member named by its key: the audio file's bytes as they are (content ``audio``), or
its Kaldi fbank (dither 0, no CMN) as ``<key>.npy`` float32 (content ``fbank``). Utterances are shuffled once
(seeded) before packing so that every shard mixes speakers. Writing is parallel and resumable: each shard is
written atomically and skipped when present; members carry fixed metadata, so a resumed run writes the same
bytes as an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sv_toolkit.data.audio import audio_info, read_audio
from sv_toolkit.features.fbank import compute_fbank
from sv_toolkit.features.store import FbankSettings
from sv_toolkit.utils.io import atomic_path, write_json_atomic
from sv_toolkit.utils.parallel import imap_processes

log = logging.getLogger(__name__)

CONTENTS = ("audio", "fbank")
SHARD_LIST = "shards.tsv"
_PLAN = ".plan.json"


@dataclass(frozen=True)
class ShardList:
    """A shard folder read back: shard paths, utterances per shard, and what the members hold."""

    root: Path
    paths: list[Path]
    counts: np.ndarray  # (num_shards,) utterances per shard
    content: str
    sample_rate: int
    num_mel_bins: int | None

    @property
    def num_utterances(self) -> int:
        return int(self.counts.sum())


@dataclass(frozen=True)
class _Job:
    manifest: str
    offsets: np.ndarray  # byte offsets of this shard's manifest lines
    out: str
    content: str
    fbank: FbankSettings | None
    resample: bool = False  # files of another rate than the manifest's are resampled (data.resample_on_read)


def _line_offsets(manifest: Path) -> np.ndarray:
    offsets, pos = [], 0
    with open(manifest, "rb") as f:
        header = f.readline()
        if not header.startswith(b"key\t"):
            raise ValueError(f"{manifest} is not an utterance manifest (no 'key' header); run scripts/prepare.py")
        pos = len(header)
        for line in f:
            offsets.append(pos)
            pos += len(line)
    if not offsets:
        raise ValueError(f"utterance manifest {manifest} is empty")
    return np.asarray(offsets, dtype=np.int64)


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    return info, io.BytesIO(data)


def _write_shard(job: _Job) -> tuple[int, float]:
    """Write one shard (unless present); returns (utterances, seconds)."""
    rows = []
    with open(job.manifest, "rb") as f:
        for off in job.offsets.tolist():
            f.seek(off)
            key, _, path, num_samples, sample_rate = f.readline().decode().rstrip("\n").split("\t")[:5]
            rows.append((key, path, int(num_samples), int(sample_rate)))
    seconds = sum(n / sr for _, _, n, sr in rows)
    if Path(job.out).is_file():
        return len(rows), seconds
    with atomic_path(job.out) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for key, path, _, rate in rows:
            if job.content == "audio" and job.resample and audio_info(path)[1] != rate:
                buf = io.BytesIO()  # resampled once here, so that the shard readers see one rate
                sf.write(buf, read_audio(path, rate, resample_to_expected=True)[0].numpy(), rate, subtype="PCM_16",
                         format="WAV")
                tar.addfile(*_member(key, buf.getvalue()))
            elif job.content == "audio":
                with open(path, "rb") as src:
                    tar.addfile(*_member(key, src.read()))
            else:
                s = job.fbank
                wave, _ = read_audio(path, s.sample_rate, resample_to_expected=job.resample)
                feats = compute_fbank(wave, s.sample_rate, s.num_mel_bins, s.frame_length_ms, s.frame_shift_ms)
                buf = io.BytesIO()
                np.save(buf, feats.numpy().astype(np.float32))
                tar.addfile(*_member(key + ".npy", buf.getvalue()))
    return len(rows), seconds


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def write_shards(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    shard_size: int,
    seed: int,
    content: str = "audio",
    fbank: FbankSettings | None = None,
    num_workers: int = 1,
    progress: bool = True,
    resample: bool = False,
) -> dict[str, float]:
    """Pack the utterances of ``manifest`` into shards of ``shard_size`` under ``out_dir``; returns a summary.

    With ``resample`` (data.resample_on_read), files at another rate than the manifest's are resampled to it:
    audio members are then written as 16-bit WAV at that rate.
    """
    if content not in CONTENTS:
        raise ValueError(f"shard content {content!r} is not one of {CONTENTS}")
    if content == "fbank" and fbank is None:
        raise ValueError("content='fbank' needs the fbank settings")
    if shard_size <= 0:
        raise ValueError(f"shard_size={shard_size} must be > 0")
    manifest, out = Path(manifest), Path(out_dir)
    offsets = _line_offsets(manifest)
    stat = manifest.stat()
    plan = {"manifest": str(manifest.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "seed": seed,
            "shard_size": shard_size, "content": content, "fbank": asdict(fbank) if content == "fbank" else None,
            "resample": resample}
    if (out / _PLAN).is_file() and json.loads((out / _PLAN).read_text()) != plan:
        old = sorted(out.glob("shard_*.tar"))
        log.info("shard settings or manifest changed since the unfinished earlier run: removing %d shards", len(old))
        for p in old:
            p.unlink()
    write_json_atomic(out / _PLAN, plan)
    order = offsets[np.random.default_rng(seed).permutation(len(offsets))]
    jobs = [
        _Job(str(manifest), order[i : i + shard_size], str(out / f"shard_{i // shard_size:06d}.tar"), content, fbank,
             resample)
        for i in range(0, len(order), shard_size)
    ]
    present = sum(Path(j.out).is_file() for j in jobs)
    if present:
        log.info("resuming: %d of %d shards already written", present, len(jobs))
    bar = tqdm(total=len(jobs), desc=f"shards {out.name}", unit="shard", disable=not progress)
    results = []
    for r in imap_processes(_write_shard, jobs, num_workers, initializer=_init_worker if num_workers > 1 else None):
        results.append(r)
        bar.update(1)
    bar.close()
    with atomic_path(out / SHARD_LIST) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["file", "utterances", "seconds"])
        w.writerows([Path(j.out).name, n, f"{sec:.2f}"] for j, (n, sec) in zip(jobs, results))
    first = read_audio_rate(manifest)
    meta = {"content": content, "sample_rate": first,
            "num_mel_bins": fbank.num_mel_bins if content == "fbank" else None,
            "fbank": asdict(fbank) if content == "fbank" else None, "num_shards": len(jobs),
            "num_utterances": len(offsets), "shard_size": shard_size, "seed": seed, "manifest": str(manifest)}
    write_json_atomic(out / "meta.json", meta)
    return {"shards": len(jobs), "utterances": len(offsets), "hours": round(sum(s for _, s in results) / 3600, 3)}


def read_audio_rate(manifest: Path) -> int:
    """The sample rate of a manifest's first utterance (prepare keeps one rate per corpus)."""
    with open(manifest) as f:
        f.readline()
        return int(f.readline().split("\t")[4])


def read_shard_list(shard_dir: str | os.PathLike) -> ShardList:
    """Read ``shards.tsv`` and ``meta.json`` of a shard folder written by :func:`write_shards`."""
    root = Path(shard_dir)
    listing, meta_path = root / SHARD_LIST, root / "meta.json"
    if not listing.is_file() or not meta_path.is_file():
        raise FileNotFoundError(f"{root} has no {SHARD_LIST} / meta.json; run scripts/shard.py first")
    meta = json.loads(meta_path.read_text())
    with open(listing, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    paths = [root / r["file"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} shards listed in {listing} are missing, e.g. {missing[0]}; "
                                "re-run scripts/shard.py")
    counts = np.asarray([int(r["utterances"]) for r in rows], dtype=np.int64)
    return ShardList(root, paths, counts, meta["content"], int(meta["sample_rate"]), meta["num_mel_bins"])
