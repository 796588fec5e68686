"""librimini: a small real-speech corpus in VoxCeleb layout, imported from ``librispeech_mini``.

Source (``../shared/data/librispeech_mini``): ``train/<spk>-<chapter>-<utt>.flac`` (one long utterance per
speaker) and ``test/<spk>/<spk>-<chapter>-<utt>.flac`` (10 speakers, 10 utterances each).
Training utterances are cut into segments of ``segment_seconds`` (the remainder is kept as a last segment when
it is at least ``min_segment_seconds``); test utterances are kept whole; the trial list holds all pairs of test
utterances.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from sv_toolkit.data.audio import read_audio
from sv_toolkit.data.manifests import Trial, write_trials
from sv_toolkit.utils.io import atomic_dir

TRIAL_LIST = "librimini_all"


@dataclass(frozen=True)
class LibriminiSummary:
    num_train_speakers: int
    num_train_segments: int
    num_test_speakers: int
    num_test_utterances: int
    num_trials: int


def _write(path: Path, wave, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave.numpy(), sample_rate, subtype="PCM_16")


def import_librimini(
    source_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    segment_seconds: float = 3.0,
    min_segment_seconds: float = 1.5,
    sample_rate: int = 16000,
) -> LibriminiSummary:
    """Write ``out_dir/wav/<spk>/<chapter>/<nnnnn>.wav`` and ``out_dir/trials/librimini_all.txt`` atomically."""
    src = Path(source_dir)
    train_files = sorted((src / "train").glob("*.flac"))
    test_files = sorted((src / "test").glob("*/*.flac"))
    if not train_files or not test_files:
        raise FileNotFoundError(
            f"{src} must hold train/<spk>-<chapter>-<utt>.flac and test/<spk>/<spk>-<chapter>-<utt>.flac; "
            "set data.source_dir to the librispeech_mini folder (../shared/data/librispeech_mini)"
        )
    seg = int(segment_seconds * sample_rate)
    min_seg = int(min_segment_seconds * sample_rate)
    n_segments = 0
    with atomic_dir(out_dir) as tmp:
        for f in train_files:
            spk, chapter, _ = f.stem.split("-")
            wave, _ = read_audio(f, expected_sample_rate=sample_rate)
            for i, start in enumerate(range(0, wave.numel(), seg)):
                piece = wave[start : start + seg]
                if piece.numel() >= min_seg:
                    _write(tmp / "wav" / spk / chapter / f"{i + 1:05d}.wav", piece, sample_rate)
                    n_segments += 1
        keys = []
        for f in test_files:
            spk, chapter, utt = f.stem.split("-")
            wave, _ = read_audio(f, expected_sample_rate=sample_rate)
            key = f"{spk}/{chapter}/{int(utt) + 1:05d}.wav"
            _write(tmp / "wav" / key, wave, sample_rate)
            keys.append(key)
        trials = [Trial(int(a.split("/")[0] == b.split("/")[0]), a, b) for a, b in itertools.combinations(keys, 2)]
        write_trials(tmp / "trials" / f"{TRIAL_LIST}.txt", trials)
        (tmp / "README.md").write_text(
            f"librimini: LibriSpeech (CC BY 4.0) utterances from {src}, re-laid out as VoxCeleb "
            f"wav/<spk>/<chapter>/<nnnnn>.wav; training utterances cut into {segment_seconds} s segments.\n"
        )
    return LibriminiSummary(
        len({f.stem.split("-")[0] for f in train_files}), n_segments,
        len({f.parent.name for f in test_files}), len(test_files), len(trials),
    )
