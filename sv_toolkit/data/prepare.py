"""Build manifests from a VoxCeleb-layout corpus: ``<audio_dir>/<speaker>/<session>/<nnnnn>.<ext>``."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sv_toolkit.data.audio import AudioError, audio_info
from sv_toolkit.data.manifests import Trial, Utterance, read_trials

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac")


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


def scan_audio_dir(
    audio_dir: str | os.PathLike, sample_rate: int, min_seconds: float = 0.0, skip_bad_audio: bool = True
) -> tuple[list[Utterance], list[SkippedFile]]:
    """List every ``speaker/session/file`` audio file with its length, read from the header.

    Files shorter than ``min_seconds`` are skipped. Files that cannot be read, are empty or have another sample
    rate are skipped too when ``skip_bad_audio`` (all skipped files are returned with the reason); otherwise
    the first one raises :class:`AudioError` naming it.
    """
    root = Path(audio_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"audio folder {root} does not exist; create the corpus first (for minivox: scripts/synth_minivox.py) "
            "or point data.train_audio_dir / data.test_audio_dir at it"
        )
    utterances, skipped = [], []
    for path in sorted(p for p in root.glob("*/*/*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        key = path.relative_to(root).as_posix()
        try:
            num_samples, sr, _ = audio_info(path)
            problem = "empty" if num_samples == 0 else None
            if problem is None and sr != sample_rate:
                problem = f"sample rate {sr} Hz, expected {sample_rate} Hz"
        except AudioError as err:
            problem = f"unreadable: {err}"
        if problem is not None and not skip_bad_audio:
            raise AudioError(
                f"audio file {path} is {problem}; replace or delete it, or set data.skip_bad_audio=true "
                "to leave such files out (they are listed in manifests/summary.json)"
            )
        if problem is not None:
            skipped.append(SkippedFile(str(path), problem))
        elif num_samples < min_seconds * sr:
            skipped.append(SkippedFile(str(path), f"shorter than {min_seconds} s"))
        else:
            utterances.append(Utterance(key, key.split("/", 1)[0], str(path.resolve()), num_samples, sr))
    if not utterances:
        raise ValueError(f"no usable {'/'.join(AUDIO_EXTENSIONS)} files under {root}/<speaker>/<session>/")
    return utterances, skipped


def load_trial_lists(trial_paths: Mapping[str, str | os.PathLike], known_keys: set[str]) -> dict[str, list[Trial]]:
    """Read every trial list, checking that each utterance it names is in ``known_keys``."""
    if not trial_paths:
        raise ValueError("data.trials is empty: give at least one trial list (name: path)")
    return {name: read_trials(path, known_keys) for name, path in trial_paths.items()}


def split_train_test(
    train_utts: list[Utterance], test_utts: list[Utterance], trials: Mapping[str, list[Trial]]
) -> tuple[list[Utterance], list[Utterance]]:
    """Test set = utterances named by any trial; train set = train utterances of speakers absent from trials."""
    needed = {key for ts in trials.values() for t in ts for key in (t.enroll, t.test)}
    test_set = [u for u in test_utts if u.key in needed]
    test_speakers = {u.speaker for u in test_set}
    train_set = [u for u in train_utts if u.speaker not in test_speakers]
    dropped = len(train_utts) - len(train_set)
    if dropped:
        log.info("dropped %d utterances of %d trial speakers from the training set", dropped, len(test_speakers))
    if not train_set:
        raise ValueError("no training utterances left after removing the speakers that appear in the trial lists")
    return train_set, test_set
