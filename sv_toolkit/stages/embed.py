"""Stage embed: whole-utterance embeddings of the test and training sets, the training-set mean and the cohort.

Writes into ``${exp_dir}/embed/`` (embedding-file format: :mod:`sv_toolkit.scoring.embeddings`):
``test.npz`` (keys, embeddings), ``train.npz`` (keys, embeddings, speakers), ``train_mean.npy`` (D,),
``cohort.npz`` (one mean embedding per training speaker: keys = speaker ids, embeddings, counts) and
``info.json``. A trained model is fed the features its model file names (sample rate, mel bins, frame length
and shift), not ``cfg.features``; stored fbank must match them. Extraction keeps finished batches in ``.partial_<split>/`` so a killed run continues.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig

from sv_toolkit.data.manifests import read_utterances
from sv_toolkit.errors import ConfigError
from sv_toolkit.features.store import FbankSettings, FeatureStore
from sv_toolkit.scoring.embeddings import (
    extract_embeddings,
    fbank_stats_embeddings,
    load_embeddings,
    save_embeddings,
    speaker_means,
)
from sv_toolkit.scoring.extractor import file_fingerprint, load_extractor, num_parameters
from sv_toolkit.scoring.sources import AudioFeatureSource, FeatureSource, StoreFeatureSource
from sv_toolkit.stages.common import fbank_settings, mark_done, resolve_device, should_run, to_container
from sv_toolkit.utils.io import atomic_path, read_json, write_json_atomic

log = logging.getLogger(__name__)

EXTRACTORS = ("model", "fbank_stats")
FEATURE_SOURCES = ("store", "audio")


def feature_source(cfg: DictConfig, split: str, settings: FbankSettings) -> FeatureSource:
    """The test or training set as a feature source: the stored fbank (which must have been computed with
    ``settings``), or fbank computed from the audio with ``settings``."""
    kind = cfg.embed.features
    if kind == "store":
        store = FeatureStore(Path(cfg.data.feature_dir) / split)
        store.check_settings(settings, "the model file names (embed.features=audio computes those from the audio)")
        return StoreFeatureSource(store)
    if kind == "audio":
        utts = read_utterances(Path(cfg.data.manifest_dir) / split / "utterances.tsv")
        source = AudioFeatureSource({u.key: u.path for u in utts}, settings, resample=cfg.data.resample_on_read)
        source.speakers = [u.speaker for u in utts]
        source.name = split
        return source
    raise ConfigError(f"embed.features={kind!r} is not one of {FEATURE_SOURCES}")


class SpeakerSubset:
    """At most ``per_speaker`` utterances of each speaker of ``source``, evenly spread over its utterances."""

    def __init__(self, source: FeatureSource, per_speaker: int) -> None:
        if per_speaker < 2:
            raise ConfigError(f"embed.train_max_per_speaker must be >= 2 (or null for all), got {per_speaker}")
        speakers = np.asarray(source.speakers)
        keep = []
        for spk in dict.fromkeys(source.speakers):
            rows = np.flatnonzero(speakers == spk)
            keep += rows[np.unique(np.linspace(0, rows.size - 1, min(per_speaker, rows.size)).round().astype(int))].tolist()
        self.rows = np.sort(np.asarray(keep, dtype=np.int64))
        self.source = source
        self.keys = [source.keys[i] for i in self.rows]
        self.speakers = [source.speakers[i] for i in self.rows]
        self.num_mel_bins = source.num_mel_bins
        self.name = getattr(source, "name", "")

    def __len__(self) -> int:
        return self.rows.size

    def num_frames(self) -> np.ndarray:
        return self.source.num_frames()[self.rows]

    def features(self, i: int) -> np.ndarray:
        return self.source.features(int(self.rows[i]))


def _embed_split(
    out_dir: Path, split: str, source: FeatureSource, embed_fn: Callable[[FeatureSource, Path], np.ndarray],
    fingerprint: dict[str, Any], speakers: bool,
) -> tuple[list[str], np.ndarray]:
    """Embeddings of one split, reusing ``<split>.npz`` when an earlier run made it with the same fingerprint."""
    path, fp_path = out_dir / f"{split}.npz", out_dir / f"{split}.fingerprint.json"
    if path.exists() and fp_path.exists() and read_json(fp_path) == fingerprint:
        log.info("embed: reusing %s from an interrupted earlier run", path)
        return load_embeddings(path)
    partial = out_dir / f".partial_{split}"
    emb = embed_fn(source, partial)
    save_embeddings(path, source.keys, emb, speakers=source.speakers if speakers else None)
    write_json_atomic(fp_path, fingerprint)
    if partial.exists():
        shutil.rmtree(partial)
    return source.keys, emb


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "embed"
    if not should_run(out_dir, cfg.overwrite, "embed"):
        return
    e = cfg.embed
    if e.extractor not in EXTRACTORS:
        raise ConfigError(f"embed.extractor={e.extractor!r} is not one of {EXTRACTORS}")
    if cfg.overwrite and out_dir.exists():
        shutil.rmtree(out_dir)  # an unfinished earlier run's partial output
    settings = {k: v for k, v in to_container(e).items() if k not in ("device", "num_workers", "flush_every")}

    if e.extractor == "fbank_stats":
        fbank = fbank_settings(cfg)
        fingerprint = {"settings": settings}
        info: dict[str, Any] = {"system": cfg.system, "model": "fbank mean+std (untrained)", "params": 0}

        def embed_fn(source: FeatureSource, partial: Path) -> np.ndarray:
            return fbank_stats_embeddings(source, progress=cfg.progress)
    else:
        device = resolve_device(e.device)
        model, header = load_extractor(e.checkpoint, device)
        fbank = header.fbank_settings(str(e.checkpoint))  # the model's features, not cfg.features
        fingerprint = {"settings": settings, "checkpoint_sha256": file_fingerprint(e.checkpoint)}
        info = {"system": cfg.system, "model": header.model_config.get("name", "?"), "params": num_parameters(model),
                "features": asdict(fbank)}

        def embed_fn(source: FeatureSource, partial: Path) -> np.ndarray:
            return extract_embeddings(
                model, source, device, max_batch_frames=e.max_batch_frames, max_batch_size=e.max_batch_size,
                max_crop=e.max_crop, min_frames=e.min_frames, num_workers=e.num_workers, resume_dir=partial,
                fingerprint=fingerprint, flush_every=e.flush_every, progress=cfg.progress,
            )

    test_source = feature_source(cfg, "test", fbank)
    train_source = feature_source(cfg, "train", fbank)
    if e.train_max_per_speaker is not None:
        train_source = SpeakerSubset(train_source, int(e.train_max_per_speaker))

    out_dir.mkdir(parents=True, exist_ok=True)
    test_keys, test_emb = _embed_split(out_dir, "test", test_source, embed_fn, fingerprint, speakers=False)
    _, train_emb = _embed_split(out_dir, "train", train_source, embed_fn, fingerprint, speakers=True)
    with atomic_path(out_dir / "train_mean.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, train_emb.mean(axis=0))
    cohort_ids, cohort_emb, counts = speaker_means(train_emb, train_source.speakers)
    save_embeddings(out_dir / "cohort.npz", cohort_ids, cohort_emb, counts=counts)
    info.update(
        test_utterances=len(test_keys), train_utterances=len(train_emb), cohort_speakers=len(cohort_ids),
        dim=int(test_emb.shape[1]), feature_source=e.features,
    )
    write_json_atomic(out_dir / "info.json", info)
    mark_done(out_dir, cfg, info)
