"""Manifests from scanned audio trees: utterance lists, speaker lists, trial lists, and the set summaries.

The trees are scanned by :mod:`sv_toolkit.data.scan` (resumable, parallel); here the scanned rows are streamed
into manifests, so that memory does not grow with the corpus (only per-speaker counters and the test keys
named by the trial lists are held).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

from sv_toolkit.data.manifests import Trial, Utterance, read_trials, write_speaker_counts, write_utterances
from sv_toolkit.data.scan import ScannedFile
from sv_toolkit.data.voxceleb import check_trial_counts


def to_utterance(f: ScannedFile) -> Utterance:
    """A kept scanned file as a manifest row; the speaker (or noise type) is the key's first component."""
    return Utterance(f.key, f.key.split("/", 1)[0], f.path, f.num_samples, f.sample_rate)


@dataclass
class SetStats:
    """What went into one manifest: per-speaker (or per-type) counts and seconds."""

    speakers: dict[str, list] = field(default_factory=dict)  # speaker -> [utterances, seconds]

    def add(self, u: Utterance) -> Utterance:
        c = self.speakers.setdefault(u.speaker, [0, 0.0])
        c[0] += 1
        c[1] += u.duration
        return u

    @property
    def utterances(self) -> int:
        return sum(c[0] for c in self.speakers.values())

    @property
    def hours(self) -> float:
        return sum(c[1] for c in self.speakers.values()) / 3600

    def summary(self) -> dict[str, float]:
        return {"speakers": len(self.speakers), "utterances": self.utterances, "hours": round(self.hours, 3)}


def write_set(
    out_dir: Path, files: Iterable[ScannedFile], keep: Callable[[Utterance], bool] = lambda u: True,
    with_speakers: bool = True,
) -> SetStats:
    """Stream the kept files accepted by ``keep`` into ``out_dir/utterances.tsv`` (+ ``speakers.tsv``)."""
    stats = SetStats()
    utts = (to_utterance(f) for f in files if f.status == "ok")
    write_utterances(out_dir / "utterances.tsv", (stats.add(u) for u in utts if keep(u)))
    if not stats.speakers:
        raise ValueError(f"{out_dir.name}: no utterances left to write; see the skipped files in the log")
    if with_speakers:
        write_speaker_counts(out_dir / "speakers.tsv", {s: (n, sec) for s, (n, sec) in sorted(stats.speakers.items())})
    return stats


def ok_keys(files: Iterable[ScannedFile]) -> set[str]:
    return {f.key for f in files if f.status == "ok"}


def speakers_of(files: Iterable[ScannedFile]) -> set[str]:
    return {f.key.split("/", 1)[0] for f in files if f.status == "ok"}


def load_trial_lists(
    trial_paths: Mapping[str, str | os.PathLike], known_keys: set[str] | None, check_counts: bool = False
) -> dict[str, list[Trial]]:
    """Read every trial list, checking that each utterance it names is in ``known_keys`` (unless None).

    With ``check_counts``, lists named like the VoxCeleb1 protocol files must have their published sizes.
    """
    if not trial_paths:
        raise ValueError("data.trials is empty: give at least one trial list (name: path)")
    lists = {}
    for name, path in trial_paths.items():
        lists[name] = read_trials(path, known_keys)
        if check_counts:
            check_trial_counts(name, path, lists[name])
    return lists


def trial_keys(trials: Mapping[str, list[Trial]]) -> set[str]:
    return {key for ts in trials.values() for t in ts for key in (t.enroll, t.test)}


def skipped_and_notes(files: Iterable[ScannedFile]) -> Iterator[ScannedFile]:
    """The files worth naming in a summary: skipped ones and kept ones with a note (multi-channel)."""
    return (f for f in files if f.status == "skip" or f.reason)
