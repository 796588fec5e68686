"""Where test-time features come from: an indexed collection of whole-utterance fbank matrices.

A :class:`FeatureSource` gives, for each of its ``keys``, the utterance's length in frames (known without
computing the features, so that extraction can plan length buckets) and its fbank (frames, bins) with dither 0
and WITHOUT mean normalisation (the extractor applies CMN, and the fbank-statistics baseline needs the raw
values). Two implementations:

- :class:`StoreFeatureSource`: the memory-mapped fbank written once by the features stage.
- :class:`AudioFeatureSource`: audio files read with soundfile and turned into fbank on the fly
  (``sv_toolkit.features.utterance_fbank``), for corpora whose features are not stored and for the CLIs.
"""
from __future__ import annotations

import os
from typing import Mapping, Protocol, Sequence

import numpy as np

from sv_toolkit.data.audio import AudioError, audio_info, resampled_length
from sv_toolkit.errors import InputFileError
from sv_toolkit.features import utterance_fbank
from sv_toolkit.features.store import FbankSettings, FeatureStore


class FeatureSource(Protocol):
    """Whole-utterance fbank by index; see the module docstring."""

    keys: list[str]
    num_mel_bins: int

    def __len__(self) -> int: ...

    def num_frames(self) -> np.ndarray:
        """(N,) int64 frame counts, in key order."""
        ...

    def features(self, i: int) -> np.ndarray:
        """(frames, bins) float32 fbank of utterance ``i``, dither 0, no CMN."""
        ...


class StoreFeatureSource:
    """A :class:`FeatureSource` over a feature-store folder (``features.py`` output)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.keys = list(store.keys)
        self.speakers = list(store.speakers)
        self.num_mel_bins = int(store.feats.shape[1])
        self.name = store.path.name

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict:
        # Pickled for DataLoader workers: send the folder, not the memory-mapped array (which would be copied).
        return {k: v for k, v in self.__dict__.items() if k != "store"} | {"store_path": str(self.store.path)}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        self.store = FeatureStore(state.pop("store_path"))
        self.__dict__.update(state)

    def num_frames(self) -> np.ndarray:
        return self.store.num_frames.copy()

    def features(self, i: int) -> np.ndarray:
        return np.asarray(self.store.by_index(i), dtype=np.float32)


class AudioFeatureSource:
    """A :class:`FeatureSource` computing Kaldi fbank (dither 0) from audio files on demand.

    ``paths`` maps each key to an audio file. Frame counts come from the file headers (no decoding). A file
    whose rate differs from ``settings.sample_rate`` is an error naming it, or with ``resample`` is resampled
    to that rate on read (:attr:`resampled_rates` then lists the other rates met); a file shorter than one frame
    is named in the error.
    """

    def __init__(self, paths: Mapping[str, str | os.PathLike], settings: FbankSettings = FbankSettings(),
                 resample: bool = False) -> None:
        if not paths:
            raise InputFileError("no audio files to embed: the list is empty")
        self.keys = list(paths)
        self.paths = [os.fspath(paths[k]) for k in self.keys]
        self.settings = settings
        self.resample = resample
        self.num_mel_bins = settings.num_mel_bins
        self.name = "audio"
        self.resampled_rates: list[int] = []
        self._frames: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def num_frames(self) -> np.ndarray:
        if self._frames is None:
            frames, target, other = [], self.settings.sample_rate, set()
            for path in self.paths:
                num_samples, rate, _ = audio_info(path)
                if rate != target:
                    if not self.resample:
                        raise AudioError(f"audio file {path} has sample rate {rate} Hz, expected {target} Hz; "
                                         "resample it (e.g. sox in.wav -r 16000 out.wav)")
                    other.add(rate)
                    num_samples = resampled_length(num_samples, rate, target)
                n = self.settings.num_frames(num_samples)
                if n == 0:
                    raise AudioError(f"audio file {path} is shorter than one {self.settings.frame_length_ms} ms frame")
                frames.append(n)
            self._frames = np.asarray(frames, dtype=np.int64)
            self.resampled_rates = sorted(other)
        return self._frames.copy()

    def features(self, i: int) -> np.ndarray:
        # CMN comes with the batching
        return utterance_fbank(self.paths[i], self.settings, cmn=False, resample=self.resample).numpy()


def audio_source_from_list(lines: Sequence[str], settings: FbankSettings = FbankSettings(),
                           resample: bool = False) -> AudioFeatureSource:
    """An :class:`AudioFeatureSource` from list lines ``path`` or ``key path`` (blank lines skipped).

    Raises InputFileError naming the line of a duplicate key or a line with more than two fields.
    """
    paths: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise InputFileError(f"line {lineno}: expected 'path' or 'key path', got {line.strip()!r}")
        key, path = (fields[0], fields[0]) if len(fields) == 1 else fields
        if key in paths:
            raise InputFileError(f"line {lineno}: key {key!r} appears twice; keys must be unique")
        paths[key] = path
    return AudioFeatureSource(paths, settings, resample)
