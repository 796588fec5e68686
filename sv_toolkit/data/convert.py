"""AAC (.m4a) to 16 kHz mono PCM wav or flac with ffmpeg: parallel, resumable, keys kept (``spk/video/utt``).

Each output is written to a temporary name beside its target and renamed when ffmpeg succeeds, so an output
that exists is complete: a re-run converts only what is missing. Files ffmpeg cannot decode are listed (with
ffmpeg's message) and left out; the other files still convert.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

FORMATS = {"wav": ("wav", ["-acodec", "pcm_s16le"]), "flac": ("flac", ["-acodec", "flac", "-sample_fmt", "s16"])}
SOURCE_EXTENSIONS = (".m4a", ".aac", ".mp4")
T = TypeVar("T")
R = TypeVar("R")


def find_ffmpeg() -> str:
    """Path of ffmpeg on PATH, or a FileNotFoundError saying how to install it."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise FileNotFoundError(
            "ffmpeg is not on PATH; the VoxCeleb2 m4a (AAC) files need it to be converted. Install it "
            "(Debian/Ubuntu: sudo apt-get install ffmpeg; conda: conda install -c conda-forge ffmpeg; "
            "macOS: brew install ffmpeg) and re-run, or convert the files yourself to 16 kHz mono wav with "
            "the same <spk>/<video>/<nnnnn> layout (ffmpeg -i X.m4a -ac 1 -ar 16000 -acodec pcm_s16le X.wav)"
        )
    return path


@dataclass
class ConvertSummary:
    converted: int = 0
    already_present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source path, ffmpeg's message)
    other_files: int = 0  # files that are not AAC sources, left alone


def iter_sources(src_root: Path) -> Iterator[Path]:
    """AAC files below ``src_root`` in sorted order, one folder at a time (a listing never holds the whole tree)."""
    for dirpath, dirnames, filenames in os.walk(src_root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def convert_file(ffmpeg: str, src: Path, dst: Path, sample_rate: int, fmt: str) -> str | None:
    """Convert one file; None on success, else ffmpeg's last error line. ``dst`` appears only when complete."""
    muxer, codec = FORMATS[fmt]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-vn", "-ac", "1",
           "-ar", str(sample_rate), *codec, "-f", muxer, str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"ffmpeg exited with status {proc.returncode}"
    os.replace(tmp, dst)
    return None


def bounded_thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) in completion order, with at most 4 x ``workers`` items submitted at a time."""
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        pending: dict[Future, T] = {}
        for item in items:
            pending[pool.submit(fn, item)] = item
            if len(pending) >= 4 * max(workers, 1):
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield pending.pop(f), f.result()
        for f in list(pending):
            yield pending.pop(f), f.result()


def convert_tree(
    src_root: str | os.PathLike,
    dst_root: str | os.PathLike,
    sample_rate: int = 16000,
    fmt: str = "wav",
    num_workers: int = 4,
    progress: bool = True,
) -> ConvertSummary:
    """Convert every AAC file below ``src_root`` into ``dst_root`` with the same relative path and a new suffix."""
    if fmt not in FORMATS:
        raise ValueError(f"convert format {fmt!r} is not one of {sorted(FORMATS)}")
    src, dst = Path(src_root), Path(dst_root)
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} does not exist; download VoxCeleb2 and point data.convert at it")
    ffmpeg = find_ffmpeg()
    summary = ConvertSummary()

    def todo() -> Iterator[tuple[Path, Path]]:
        for path in iter_sources(src):
            if path.suffix.lower() not in SOURCE_EXTENSIONS:
                summary.other_files += 1
                continue
            out = (dst / path.relative_to(src)).with_suffix(f".{fmt}")
            if out.is_file():
                summary.already_present += 1
                bar.update(1)
                continue
            yield path, out

    bar = tqdm(desc=f"convert {src.name}", unit="file", disable=not progress)
    jobs = bounded_thread_map(lambda p: convert_file(ffmpeg, p[0], p[1], sample_rate, fmt), todo(), num_workers)
    for (path, _), error in jobs:
        if error is None:
            summary.converted += 1
        else:
            summary.failed.append((str(path), error))
            log.warning("cannot convert %s: %s", path, error)
        bar.update(1)
        bar.set_postfix(failed=len(summary.failed), refresh=False)
    bar.close()
    return summary
