"""Manifests: utterance lists, speaker lists and trial lists as small TSV / text files.

An utterance key is its path relative to the corpus audio folder, as in the VoxCeleb trial lists
(``id10270/x6uYqmx31kE/00001.wav``); the speaker is the key's first component.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from sv_toolkit.errors import InputFileError, MissingFileError
from sv_toolkit.utils.io import atomic_path

UTTERANCE_COLUMNS = ("key", "speaker", "path", "num_samples", "sample_rate")


@dataclass(frozen=True)
class Utterance:
    """One audio file of the corpus."""

    key: str
    speaker: str
    path: str
    num_samples: int
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


@dataclass(frozen=True)
class Trial:
    """One verification trial: label 1 = same speaker (target), 0 = different (non-target)."""

    label: int
    enroll: str
    test: str


def write_utterances(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Write an utterance manifest (TSV with header) atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(UTTERANCE_COLUMNS + ("duration",))
        for u in utterances:
            writer.writerow([u.key, u.speaker, u.path, u.num_samples, u.sample_rate, f"{u.duration:.3f}"])


def read_utterances(path: str | os.PathLike) -> list[Utterance]:
    """Read an utterance manifest written by :func:`write_utterances`."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"utterance manifest {p} does not exist; run scripts/prepare.py first")
    with open(p, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = set(UTTERANCE_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InputFileError(f"{p} lacks columns {sorted(missing)}; re-run scripts/prepare.py with overwrite=true")
        return [
            Utterance(r["key"], r["speaker"], r["path"], int(r["num_samples"]), int(r["sample_rate"])) for r in reader
        ]


def speaker_counts(utterances: Iterable[Utterance]) -> dict[str, tuple[int, float]]:
    """Speaker -> (number of utterances, seconds), sorted by speaker id."""
    counts: dict[str, list[float]] = {}
    for u in utterances:
        c = counts.setdefault(u.speaker, [0, 0.0])
        c[0] += 1
        c[1] += u.duration
    return {spk: (int(n), sec) for spk, (n, sec) in sorted(counts.items())}


def write_speakers(path: str | os.PathLike, utterances: Iterable[Utterance]) -> None:
    """Write the speaker list (speaker, class index, utterances, seconds) atomically."""
    write_speaker_counts(path, speaker_counts(utterances))


def write_speaker_counts(path: str | os.PathLike, counts: Mapping[str, tuple[int, float]]) -> None:
    """Write a speaker list from speaker -> (utterances, seconds), class indices in sorted speaker order."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("speaker\tindex\tnum_utterances\tseconds\n")
        for i, spk in enumerate(sorted(counts)):
            n, sec = counts[spk]
            f.write(f"{spk}\t{i}\t{n}\t{sec:.2f}\n")


def read_speakers(path: str | os.PathLike) -> dict[str, int]:
    """Speaker -> class index from a speaker list written by :func:`write_speakers`."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"speaker list {p} does not exist; run scripts/prepare.py first")
    with open(p, newline="") as f:
        return {r["speaker"]: int(r["index"]) for r in csv.DictReader(f, delimiter="\t")}


def read_trials(path: str | os.PathLike, known_keys: Mapping[str, object] | set[str] | None = None) -> list[Trial]:
    """Read a VoxCeleb-format trial list (``label enroll test`` per line).

    Raises ValueError naming the file and line for a malformed line or, when ``known_keys`` is given, an
    utterance that is not in the manifest.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"trial list {p} does not exist; check the data.trials paths in the config")
    trials = []
    with open(p) as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise InputFileError(f"{p}:{lineno}: expected 'label enroll test' with label 0 or 1, got {line.strip()!r}")
            trial = Trial(int(fields[0]), fields[1], fields[2])
            if known_keys is not None:
                for key in (trial.enroll, trial.test):
                    if key not in known_keys:
                        raise InputFileError(
                            f"{p}:{lineno}: utterance {key!r} is not in the corpus; "
                            "fix the trial list or the data.test_audio_dir it refers to"
                        )
            trials.append(trial)
    if not trials:
        raise InputFileError(f"trial list {p} is empty")
    return trials


def write_trials(path: str | os.PathLike, trials: Iterable[Trial]) -> None:
    """Write a VoxCeleb-format trial list atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for t in trials:
            f.write(f"{t.label} {t.enroll} {t.test}\n")
