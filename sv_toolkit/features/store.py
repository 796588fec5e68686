"""Pre-computed fbank features of a whole split in one memory-mapped array plus an index.

Layout of a store folder: ``feats.npy`` (float32, (total_frames, num_mel_bins), all utterances one after
another), ``index.tsv`` (key, speaker, offset, num_frames) and ``meta.json`` (feature settings).
Features are stored WITHOUT mean normalisation and without dither; CMN is applied on the chunk or utterance
actually fed to the model.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from sv_toolkit.data.audio import read_audio
from sv_toolkit.data.manifests import Utterance
from sv_toolkit.errors import ConfigError, InputFileError, MissingEntryError, MissingFileError
from sv_toolkit.features.fbank import compute_fbank
from sv_toolkit.utils.io import atomic_dir


# What compute_fbank always does and utterance_fbank adds at test time; a recipe saying otherwise was written
# by another (newer) feature code and cannot be reproduced here.
_FIXED_RECIPE = {"kind": "kaldi_fbank", "window": "hamming", "energy": False, "dither": 0.0, "cmn": "utterance_mean"}


@dataclass(frozen=True)
class FbankSettings:
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    sample_rate: int = 16000

    def recipe(self) -> dict[str, Any]:
        """The test-time feature recipe as plain values, as model files carry it: these settings plus what is
        fixed (Kaldi fbank, Hamming window, no energy term, dither 0, per-utterance mean normalisation)."""
        return {**_FIXED_RECIPE, **asdict(self)}

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any], source: str) -> "FbankSettings":
        """Settings of a :meth:`recipe` dict read from ``source`` (named in the error when it does not fit)."""
        for key, value in _FIXED_RECIPE.items():
            if recipe.get(key) != value:
                raise InputFileError(
                    f"{source}: feature setting {key}={recipe.get(key)!r}, but this sv_toolkit computes only "
                    f"{key}={value!r}; use the sv_toolkit version that wrote the file"
                )
        try:
            return cls(int(recipe["num_mel_bins"]), float(recipe["frame_length_ms"]), float(recipe["frame_shift_ms"]),
                       int(recipe["sample_rate"]))
        except (KeyError, TypeError, ValueError) as err:
            raise InputFileError(
                f"{source}: feature settings {dict(recipe)} are incomplete or not numbers ({err!r})"
            ) from err

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi produces for ``num_samples`` samples (snip_edges=True)."""
        win = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return 0 if num_samples < win else 1 + (num_samples - win) // shift

    def num_samples(self, num_frames: int) -> int:
        """Fewest samples that give ``num_frames`` frames (200 frames: 32,240 samples at 16 kHz)."""
        win = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return win + (num_frames - 1) * shift


def write_feature_store(
    utterances: Sequence[Utterance], out_dir: str | os.PathLike, settings: FbankSettings, progress: bool = True,
    resample: bool = False,
) -> Path:
    """Compute fbank (dither 0) for every utterance and write a store folder atomically; with ``resample``,
    files of another rate (kept by prepare's data.resample_on_read) are resampled to ``settings.sample_rate``."""
    counts = [settings.num_frames(u.num_samples) for u in utterances]
    too_short = [u.key for u, n in zip(utterances, counts) if n == 0]
    if too_short:
        raise InputFileError(f"{len(too_short)} utterances are shorter than one frame, e.g. {too_short[0]}; re-run prepare")
    offsets = np.concatenate([[0], np.cumsum(counts)])
    with atomic_dir(out_dir) as tmp:
        feats = np.lib.format.open_memmap(
            tmp / "feats.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), settings.num_mel_bins)
        )
        for i, utt in enumerate(tqdm(utterances, desc=f"fbank {Path(out_dir).name}", disable=not progress)):
            wave, _ = read_audio(utt.path, settings.sample_rate, resample_to_expected=resample)
            fb = compute_fbank(
                wave, settings.sample_rate, settings.num_mel_bins, settings.frame_length_ms, settings.frame_shift_ms
            )
            if fb.shape[0] != counts[i]:
                raise InputFileError(
                    f"{utt.path}: manifest says {utt.num_samples} samples ({counts[i]} frames) but the file gave "
                    f"{fb.shape[0]} frames; re-run prepare with overwrite=true"
                )
            feats[offsets[i] : offsets[i + 1]] = fb.numpy()
        feats.flush()
        del feats
        with open(tmp / "index.tsv", "w", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["key", "speaker", "offset", "num_frames"])
            for utt, off, n in zip(utterances, offsets, counts):
                w.writerow([utt.key, utt.speaker, int(off), n])
        meta = dict(vars(settings), kind="kaldi_fbank", dither=0.0, cmn=False, num_utterances=len(utterances))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return Path(out_dir)


class FeatureStore:
    """Read access to a store folder written by :func:`write_feature_store`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        index = self.path / "index.tsv"
        if not index.is_file():
            raise MissingFileError(f"feature store {self.path} has no index.tsv; run scripts/features.py first")
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.feats = np.load(self.path / "feats.npy", mmap_mode="r")  # (total_frames, bins)
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.keys = [r["key"] for r in rows]
        self.speakers = [r["speaker"] for r in rows]
        self.offsets = np.array([int(r["offset"]) for r in rows], dtype=np.int64)
        self.num_frames = np.array([int(r["num_frames"]) for r in rows], dtype=np.int64)
        self._row = {k: i for i, k in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def check_settings(self, settings: FbankSettings, needed_by: str) -> None:
        """Raise ConfigError unless the stored fbank was computed with ``settings`` (the settings recorded in
        meta.json are compared; a hand-made store without them is checked for those it has)."""
        differ = {k: (self.meta[k], v) for k, v in asdict(settings).items() if k in self.meta and self.meta[k] != v}
        if differ:
            raise ConfigError(
                f"feature store {self.path} was computed with other settings than {needed_by} (stored, wanted): "
                f"{differ}; re-run scripts/features.py with the same features / data.sample_rate settings"
            )

    def __contains__(self, key: str) -> bool:
        return key in self._row

    def by_index(self, i: int) -> np.ndarray:
        """Features of the i-th utterance, (frames, bins), a read-only view."""
        off = self.offsets[i]
        return self.feats[off : off + self.num_frames[i]]

    def by_key(self, key: str) -> np.ndarray:
        if key not in self._row:
            raise MissingEntryError(f"utterance {key!r} is not in feature store {self.path}; re-run scripts/features.py")
        return self.by_index(self._row[key])
