"""Resumable, parallel scan of an audio tree: one work unit (a speaker folder, a MUSAN source...) at a time.

Each unit's result (every file it holds, kept or skipped and why) is written atomically to its own small TSV
under a work folder, so a killed scan continues with the units not done yet, and merging the unit files in
sorted order gives exactly what an uninterrupted scan gives. Only one unit's rows are in memory at a time.

File policy (documented in the README; the reason strings start with the category):
  unreadable   the header cannot be parsed (corrupt or not audio)       -> skipped
  empty        0 bytes, or a valid header with 0 samples              -> skipped
  wrong sample rate                                                   -> skipped (resample the corpus), or
               with resample_on_read kept with a note: readers resample it to sample_rate (torchaudio), and
               the manifest gives its length at sample_rate
  not converted  .m4a / .aac / .mp4 (AAC, which libsndfile cannot read) -> skipped (run scripts/convert.py)
  unexpected layout  not at the expected depth (<spk>/<video>/<file>)  -> skipped
  too short    shorter than min_seconds                               -> skipped
  multi-channel files are kept and averaged to mono on read; they are listed as notes.
With ``skip_bad_audio=False`` the first unreadable / empty / wrong-rate / unconverted file raises instead.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from sv_toolkit.data.audio import AudioError, audio_info, resampled_length
from sv_toolkit.utils.io import atomic_path, write_json_atomic
from sv_toolkit.utils.parallel import imap_processes

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac")
NEEDS_CONVERSION = (".m4a", ".aac", ".mp4")
_PARAMS = "params.json"
_UNITS = "units"
# Problems that stop the scan when skip_bad_audio is off (too-short files and layout slips are always skipped).
_FATAL = ("unreadable", "empty", "wrong sample rate", "not converted")


@dataclass(frozen=True)
class ScannedFile:
    """One file of a scanned tree. ``status`` is 'ok' or 'skip'; ``reason`` says why it was skipped (or a note)."""

    status: str
    key: str
    path: str
    num_samples: int
    sample_rate: int
    channels: int
    reason: str

    @property
    def category(self) -> str:
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class ScanParams:
    root: str
    sample_rate: int
    min_seconds: float
    file_depth: int | None  # files must be exactly this many levels below root (None: any depth)
    unit_depth: int  # work units are the folders this many levels below root
    resample_on_read: bool = False  # keep files of another rate (readers resample them)


def check_audio_file(path: Path, key: str, params: ScanParams) -> ScannedFile:
    """Read ``path``'s header and decide whether the file is kept, and why not."""
    if path.suffix.lower() in NEEDS_CONVERSION:
        return ScannedFile("skip", key, str(path), 0, 0, 0,
                           f"not converted: {path.suffix} (AAC) cannot be read; convert it with scripts/convert.py")
    if params.file_depth is not None and key.count("/") + 1 != params.file_depth:
        return ScannedFile("skip", key, str(path), 0, 0, 0,
                           f"unexpected layout: expected {params.file_depth} levels (<speaker>/<video>/<file>)")
    if path.stat().st_size == 0:
        return ScannedFile("skip", key, str(path), 0, 0, 0, "empty: 0 bytes")
    try:
        num_samples, sr, channels = audio_info(path)
    except AudioError as err:
        return ScannedFile("skip", key, str(path), 0, 0, 0, f"unreadable: {err.__cause__ or err}")
    if num_samples == 0:
        return ScannedFile("skip", key, str(path), 0, sr, channels, "empty: 0 samples")
    notes = []
    if sr != params.sample_rate:
        if not params.resample_on_read:
            return ScannedFile("skip", key, str(path), num_samples, sr, channels,
                               f"wrong sample rate: {sr} Hz, expected {params.sample_rate} Hz")
        notes.append(f"resampled on read: {sr} Hz to {params.sample_rate} Hz")
        num_samples, sr = resampled_length(num_samples, sr, params.sample_rate), params.sample_rate
    if num_samples < params.min_seconds * sr:
        return ScannedFile("skip", key, str(path), num_samples, sr, channels,
                           f"too short: {num_samples / sr:.2f} s, shorter than {params.min_seconds} s")
    if channels > 1:
        notes.append(f"multi-channel: {channels} channels, averaged to mono on read")
    return ScannedFile("ok", key, str(path), num_samples, sr, channels, "; ".join(notes))


def fatal_error(f: ScannedFile) -> AudioError:
    return AudioError(
        f"audio file {f.path} cannot be used ({f.reason}); replace or delete it, or set data.skip_bad_audio=true "
        "to leave such files out (they are listed in manifests/summary.json)"
    )


def require_dir(root: str | os.PathLike) -> Path:
    """``root`` as a Path, or a FileNotFoundError saying how to get the corpus there."""
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(
            f"audio folder {path} does not exist; create the corpus first (for minivox: scripts/synth_minivox.py, "
            "for VoxCeleb: download it, see README) or point the data.*_dir keys at it"
        )
    return path


def list_units(root: Path, unit_depth: int) -> list[str]:
    """Sorted relative paths of the folders ``unit_depth`` levels below ``root``."""
    level = [""]
    for _ in range(unit_depth):
        nxt = []
        for rel in level:
            with os.scandir(root / rel) as it:
                nxt += [f"{rel}/{e.name}" if rel else e.name for e in it if e.is_dir() and not e.name.startswith(".")]
        level = nxt
    return sorted(level)


def _unit_files(root: Path, unit: str) -> list[tuple[Path, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root / unit):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS + NEEDS_CONVERSION:
                path = Path(dirpath) / name
                out.append((path, path.relative_to(root).as_posix()))
    return sorted(out, key=lambda x: x[1])


def _unit_file(work_dir: Path, unit: str) -> Path:
    return work_dir / _UNITS / (unit.replace("/", "__") + ".tsv")


def scan_unit(work_dir: Path, unit: str, params: ScanParams, skip_bad_audio: bool) -> tuple[int, int]:
    """Scan one unit and write its rows atomically; returns (kept, skipped). Raises on a fatal file unless skipping."""
    rows = [check_audio_file(p, key, params) for p, key in _unit_files(Path(params.root), unit)]
    if not skip_bad_audio:
        for f in rows:
            if f.status == "skip" and f.category in _FATAL:
                raise fatal_error(f)
    with atomic_path(_unit_file(work_dir, unit)) as tmp, open(tmp, "w", newline="") as fh:
        # columns: status key path num_samples sample_rate channels reason
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerows([f.status, f.key, f.path, f.num_samples, f.sample_rate, f.channels, f.reason] for f in rows)
    kept = sum(f.status == "ok" for f in rows)
    return kept, len(rows) - kept


def _scan_unit_star(args: tuple[Path, str, ScanParams, bool]) -> tuple[int, int]:
    return scan_unit(*args)


def scan_tree(
    root: str | os.PathLike,
    work_dir: str | os.PathLike,
    sample_rate: int,
    min_seconds: float = 0.0,
    skip_bad_audio: bool = True,
    file_depth: int | None = 3,
    unit_depth: int = 1,
    num_workers: int = 1,
    progress: bool = True,
    desc: str = "scan",
    resample_on_read: bool = False,
) -> list[str]:
    """Scan every unit of ``root`` not already done in ``work_dir``; returns the sorted unit list.

    Unit results left by an earlier run with the same parameters are kept (resume); with other parameters
    the work folder is cleared first.
    """
    root_path, work = require_dir(root), Path(work_dir)
    params = ScanParams(str(root_path.resolve()), sample_rate, float(min_seconds), file_depth, unit_depth,
                        resample_on_read)
    params_file = work / _PARAMS
    if params_file.is_file() and json.loads(params_file.read_text()) != asdict(params):
        log.info("%s: scan parameters changed since the unfinished earlier run; starting %s afresh", desc, work)
        shutil.rmtree(work)
    write_json_atomic(params_file, asdict(params))
    units = list_units(Path(params.root), unit_depth)
    if not units:
        raise ValueError(f"{root_path} has no sub-folders at depth {unit_depth} (expected <speaker>/<video>/<file>)")
    todo = [u for u in units if not _unit_file(work, u).is_file()]
    if len(todo) < len(units):
        log.info("%s: resuming, %d of %d units already scanned", desc, len(units) - len(todo), len(units))
    args = [(work, u, params, skip_bad_audio) for u in todo]
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=desc, unit="unit", disable=not progress)
    files = skipped = 0
    for k, s in imap_processes(_scan_unit_star, args, num_workers, ordered=False):
        files, skipped = files + k + s, skipped + s
        bar.update(1)
        bar.set_postfix(files=files, skipped=skipped, refresh=False)
    bar.close()
    return units


def iter_scanned(work_dir: str | os.PathLike, units: list[str]) -> Iterator[ScannedFile]:
    """Every file of a finished scan, unit by unit in sorted order (streamed from the unit files)."""
    for unit in units:
        path = _unit_file(Path(work_dir), unit)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the scan of {unit!r} did not finish; re-run the stage")
        with open(path, newline="") as fh:
            for r in csv.reader(fh, delimiter="\t"):
                yield ScannedFile(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), r[6])
