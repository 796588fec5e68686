"""The training data of the train stage: dataset, sampler and DataLoader from the config, in one place.

``data.train_format`` picks the input:
  features  stored fbank (scripts/features.py), random chunks, CMN; no waveform augmentation (minivox, librimini)
  raw       the audio files of the training manifest; chunks read, augmented and featurised in the workers
  shards    tar shards (scripts/shard.py) streamed by an IterableDataset, per-epoch shard-order shuffle, a
            shuffle buffer, split by rank and worker (sv_toolkit.data.shard_dataset)
Every mode gives the same number of steps on every rank (the leftover of an epoch that does not fill a
batch on every rank is skipped, different samples each epoch) and can start an epoch at any step
(``set_epoch(epoch, start_step)``), with chunks that depend only on (seed, epoch, position).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from sv_toolkit.data.augment import NoiseKind, SpecAugment, SpeedPerturbation, WaveformAugmentation
from sv_toolkit.data.chunking import AudioChunker, FeatureChunker
from sv_toolkit.data.dataset import EpochSampler, RandomChunkDataset, RawChunkDataset
from sv_toolkit.data.manifests import read_speakers, read_utterances
from sv_toolkit.data.shard_dataset import ShardChunkDataset
from sv_toolkit.data.shards import read_shard_list
from sv_toolkit.features.store import FeatureStore
from sv_toolkit.stages.common import resolve_device
from sv_toolkit.stages.features import settings_from_config

log = logging.getLogger(__name__)

FORMATS = ("features", "raw", "shards")


@dataclass
class TrainData:
    """What the training loop needs from its data. Call ``set_epoch`` before iterating ``loader`` each epoch."""

    loader: DataLoader
    num_classes: int
    num_speakers: int
    num_utterances: int
    steps_per_epoch: int  # the same on every rank
    mode: str
    epoch_source: EpochSampler | ShardChunkDataset

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Shuffle for ``epoch``; the next pass over ``loader`` starts at batch ``start_step`` of it."""
        self.epoch_source.set_epoch(epoch, start_step)

    def epoch_loader(self, current_epoch: Callable[[], int]) -> "EpochLoader":
        """An iterable that calls ``set_epoch(current_epoch())`` each time a pass over the loader begins."""
        return EpochLoader(self, current_epoch)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "utterances": self.num_utterances, "speakers": self.num_speakers,
                "classes": self.num_classes, "steps_per_epoch": self.steps_per_epoch}


class EpochLoader:
    """Wraps a TrainData's loader for loops that just iterate it once per epoch."""

    def __init__(self, data: TrainData, current_epoch: Callable[[], int]) -> None:
        self.data, self.current_epoch = data, current_epoch

    def __len__(self) -> int:
        return len(self.data.loader)

    def __iter__(self) -> Iterator:
        self.data.set_epoch(self.current_epoch())
        return iter(self.data.loader)


def build_spec_augment(a: DictConfig) -> SpecAugment | None:
    s = a.specaug
    return SpecAugment(s.prob, s.time_masks, s.max_time, s.freq_masks, s.max_freq) if s.prob > 0 else None


def build_audio_chunker(cfg: DictConfig, num_speakers: int) -> AudioChunker:
    """Speed perturbation, MUSAN / RIR augmentation and fbank settings from ``cfg.augment`` / ``cfg.features``."""
    a, sr = cfg.augment, cfg.data.sample_rate
    factors = [float(f) for f in a.speed.factors]
    speed = SpeedPerturbation(factors) if factors and factors != [1.0] else None
    augment = None
    if a.prob > 0:
        kinds = [NoiseKind(name, k.weight, tuple(k.snr_db), tuple(k.count)) for name, k in a.noise.items()]
        augment = WaveformAugmentation(a.prob, a.reverb_prob, kinds, a.noise_manifest, a.rir_manifest, sr)
    return AudioChunker(
        cfg.trainer.chunk_frames, settings_from_config(cfg), cfg.features.train_dither, num_speakers, speed,
        a.speed.as_new_speakers, augment, build_spec_augment(a),
    )


def _check_no_wave_augment(cfg: DictConfig, where: str) -> None:
    a = cfg.augment
    if a.prob > 0 or [float(f) for f in a.speed.factors] not in ([], [1.0]):
        raise ValueError(
            f"augment={a.name} perturbs waveforms, but the training input is {where}; set data.train_format=raw "
            "(audio files) or shards with content=audio, or augment=none"
        )


def build_train_data(cfg: DictConfig, rank: int = 0, world_size: int = 1, seed: int | None = None) -> TrainData:
    """The training DataLoader of this rank (``rank`` of ``world_size`` processes), per ``cfg.data.train_format``."""
    d, t = cfg.data, cfg.trainer
    fmt = d.train_format
    if fmt not in FORMATS:
        raise ValueError(f"data.train_format={fmt!r} is not one of {FORMATS}")
    seed = cfg.seed if seed is None else seed
    speakers = read_speakers(Path(d.manifest_dir) / "train" / "speakers.tsv")
    pin = resolve_device(t.device).type == "cuda"
    common = dict(batch_size=t.batch_size, num_workers=t.num_workers, pin_memory=pin, drop_last=True)
    if fmt == "shards":
        shards = read_shard_list(Path(d.shard_dir) / "train")
        if shards.content == "fbank":
            _check_no_wave_augment(cfg, f"fbank shards ({shards.root})")
            chunker, num_classes = FeatureChunker(t.chunk_frames, build_spec_augment(cfg.augment)), len(speakers)
        else:
            chunker = build_audio_chunker(cfg, len(speakers))
            num_classes = chunker.num_classes
        dataset = ShardChunkDataset(shards, speakers, chunker, t.batch_size, rank, world_size, seed,
                                    d.shuffle_buffer, t.chunks_per_utterance)
        # Fresh workers each epoch: they take the dataset's epoch with them (a persistent worker would not).
        loader = DataLoader(dataset, persistent_workers=False, **common)
        data = TrainData(loader, num_classes, len(speakers), shards.num_utterances, dataset.steps_per_epoch, fmt,
                         dataset)
    else:
        if fmt == "features":
            _check_no_wave_augment(cfg, f"stored fbank ({d.feature_dir})")
            store = FeatureStore(Path(d.feature_dir) / "train")
            dataset = RandomChunkDataset(store, speakers, t.chunk_frames, 1, build_spec_augment(cfg.augment), seed)
            num_classes, num_utts = len(speakers), len(store)
        else:
            utts = read_utterances(Path(d.manifest_dir) / "train" / "utterances.tsv")
            chunker = build_audio_chunker(cfg, len(speakers))
            dataset = RawChunkDataset(utts, speakers, chunker, seed)
            num_classes, num_utts = chunker.num_classes, len(utts)
        sampler = EpochSampler(num_utts, t.batch_size, rank, world_size, seed, t.chunks_per_utterance)
        loader = DataLoader(dataset, sampler=sampler, persistent_workers=t.num_workers > 0, **common)
        data = TrainData(loader, num_classes, len(speakers), num_utts, sampler.steps_per_epoch, fmt, sampler)
    log.info("training data (rank %d of %d): %s", rank, world_size, data.describe())
    return data
