"""Stage features: Kaldi fbank of every utterance of data.feature_splits (train, test), stored once (features/store.py).

VoxCeleb stores only the test split: its training chunks are computed on the fly from shards (stages/train_data.py).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.data.manifests import read_utterances
from sv_toolkit.features.store import write_feature_store
from sv_toolkit.stages.common import fbank_settings, mark_done, should_run


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.data.feature_dir)
    if not should_run(out_dir, cfg.overwrite, "features"):
        return
    settings = fbank_settings(cfg)
    summary = {}
    for split in cfg.data.feature_splits:
        utts = read_utterances(Path(cfg.data.manifest_dir) / split / "utterances.tsv")
        write_feature_store(utts, out_dir / split, settings, progress=cfg.progress, resample=cfg.data.resample_on_read)
        summary[split] = {"utterances": len(utts), "frames": sum(settings.num_frames(u.num_samples) for u in utts)}
    mark_done(out_dir, cfg, summary)
