"""The training data of the train stage: dataset, sampler and DataLoader from the config, in one place.

``data.train_format`` picks the input:
  features  stored fbank (scripts/features.py), random chunks, CMN; no waveform augmentation (minivox, librimini)
  raw       the audio files of the training manifest; chunks read, augmented and featurised in the workers
  shards    tar shards (scripts/shard.py) streamed by an IterableDataset, per-epoch shard-order shuffle, a
            shuffle buffer, split by rank and worker (sv_toolkit.data.shard_dataset)
Every mode gives the same number of steps on every rank (the leftover of an epoch that does not fill a
batch on every rank is skipped, different samples each epoch) and can start an epoch at any step
(``set_epoch(epoch, start_step)``), with chunks that depend only on (seed, epoch, position). The loader yields
micro-batches of ``trainer.batch_size / trainer.grad_accum``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig
from torch.utils.data import DataLoader

from sv_toolkit.data.augment import NoiseKind, SpecAugment, SpeedPerturbation, WaveformAugmentation
from sv_toolkit.data.chunking import AudioChunker, FeatureChunker
from sv_toolkit.data.dataset import EpochSampler, RandomChunkDataset, RawChunkDataset
from sv_toolkit.data.manifests import read_speakers, read_utterances
from sv_toolkit.data.shard_dataset import ShardChunkDataset
from sv_toolkit.data.shards import read_shard_list
from sv_toolkit.features.store import FeatureStore
from sv_toolkit.stages.common import fbank_settings, resolve_device

log = logging.getLogger(__name__)

FORMATS = ("features", "raw", "shards")


@dataclass
class TrainData:
    """This rank's training micro-batches, in the form the Trainer iterates (sv_toolkit.training.loop).

    Each optimizer step takes ``grad_accum`` micro-batches of ``batch_size / grad_accum`` chunks; ``len()`` is the
    number of micro-batches left in the epoch. ``set_epoch(epoch)`` selects the epoch's shuffle and
    ``skip_batches(n)`` starts the next pass at micro-batch n (n a multiple of grad_accum: whole steps).
    """

    loader: DataLoader
    num_classes: int
    num_speakers: int
    num_utterances: int
    steps_per_epoch: int  # the same on every rank
    mode: str
    epoch_source: EpochSampler | ShardChunkDataset
    grad_accum: int = 1

    @property
    def source_step_batches(self) -> int:
        """Micro-batches per step of ``epoch_source``: the samplers count optimizer steps, the shard stream
        counts the DataLoader's batches, which are micro-batches."""
        return 1 if self.mode == "shards" else self.grad_accum

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Shuffle for ``epoch``; the next pass over the loader starts at optimizer step ``start_step`` of it."""
        self.epoch_source.set_epoch(epoch, start_step * self.grad_accum // self.source_step_batches)

    def skip_batches(self, n: int) -> None:
        if n % self.source_step_batches:
            raise ValueError(f"cannot start an epoch at micro-batch {n}: not a whole step of {self.grad_accum}")
        self.epoch_source.set_epoch(self.epoch_source.epoch, n // self.source_step_batches)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        return iter(self.loader)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "utterances": self.num_utterances, "speakers": self.num_speakers,
                "classes": self.num_classes, "steps_per_epoch": self.steps_per_epoch, "grad_accum": self.grad_accum}


def micro_batch_size(batch_size: int, grad_accum: int) -> int:
    if batch_size <= 0 or grad_accum <= 0:
        raise ValueError(f"trainer.batch_size ({batch_size}) and trainer.grad_accum ({grad_accum}) must be > 0")
    if batch_size % grad_accum:
        raise ValueError(f"trainer.batch_size={batch_size} is not divisible by trainer.grad_accum={grad_accum}; the "
                         "batch of each optimizer step is split into grad_accum equal micro-batches")
    return batch_size // grad_accum


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
        augment = WaveformAugmentation(a.prob, a.reverb_prob, kinds, a.noise_manifest, a.rir_manifest, sr,
                                       cfg.data.resample_on_read)
    return AudioChunker(
        cfg.trainer.chunk_frames, fbank_settings(cfg), cfg.features.train_dither, num_speakers, speed,
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
    micro = micro_batch_size(t.batch_size, t.grad_accum)
    common = dict(batch_size=micro, num_workers=t.num_workers, pin_memory=pin, drop_last=True)
    if fmt == "shards":
        shards = read_shard_list(Path(d.shard_dir) / "train")
        if shards.content == "fbank":
            _check_no_wave_augment(cfg, f"fbank shards ({shards.root})")
            chunker, num_classes = FeatureChunker(t.chunk_frames, build_spec_augment(cfg.augment)), len(speakers)
        else:
            chunker = build_audio_chunker(cfg, len(speakers))
            num_classes = chunker.num_classes
        dataset = ShardChunkDataset(shards, speakers, chunker, micro, rank, world_size, seed, d.shuffle_buffer,
                                    t.chunks_per_utterance)
        # Fresh workers each epoch: they take the dataset's epoch with them (a persistent worker would not).
        loader = DataLoader(dataset, persistent_workers=False, **common)
        data = TrainData(loader, num_classes, len(speakers), shards.num_utterances,
                         dataset.steps_per_epoch // t.grad_accum, fmt, dataset, t.grad_accum)
    else:
        if fmt == "features":
            _check_no_wave_augment(cfg, f"stored fbank ({d.feature_dir})")
            store = FeatureStore(Path(d.feature_dir) / "train")
            store.check_settings(fbank_settings(cfg), "the features config (what the model file will record)")
            dataset = RandomChunkDataset(store, speakers, t.chunk_frames, 1, build_spec_augment(cfg.augment), seed)
            num_classes, num_utts = len(speakers), len(store)
        else:
            utts = read_utterances(Path(d.manifest_dir) / "train" / "utterances.tsv")
            chunker = build_audio_chunker(cfg, len(speakers))
            dataset = RawChunkDataset(utts, speakers, chunker, seed, d.resample_on_read)
            num_classes, num_utts = chunker.num_classes, len(utts)
        sampler = EpochSampler(num_utts, t.batch_size, rank, world_size, seed, t.chunks_per_utterance)
        loader = DataLoader(dataset, sampler=sampler, persistent_workers=t.num_workers > 0, **common)
        data = TrainData(loader, num_classes, len(speakers), num_utts, sampler.steps_per_epoch, fmt, sampler,
                         t.grad_accum)
    if data.steps_per_epoch == 0:
        raise ValueError(f"the training shards give fewer than trainer.grad_accum={t.grad_accum} micro-batches of "
                         f"{micro} per rank; lower trainer.batch_size or trainer.grad_accum")
    log.info("training data (rank %d of %d): %s", rank, world_size, data.describe())
    return data
