"""Stage features: Kaldi fbank of every train and test utterance, stored once (see features/store.py)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.data.manifests import read_utterances
from sv_toolkit.features.store import FbankSettings, write_feature_store
from sv_toolkit.stages.common import mark_done, should_run


def settings_from_config(cfg: DictConfig) -> FbankSettings:
    f = cfg.features
    return FbankSettings(f.num_mel_bins, f.frame_length_ms, f.frame_shift_ms, cfg.data.sample_rate)


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.data.feature_dir)
    if not should_run(out_dir, cfg.overwrite, "features"):
        return
    settings = settings_from_config(cfg)
    summary = {}
    for split in ("train", "test"):
        utts = read_utterances(Path(cfg.data.manifest_dir) / split / "utterances.tsv")
        write_feature_store(utts, out_dir / split, settings, progress=cfg.progress)
        summary[split] = {"utterances": len(utts), "frames": sum(settings.num_frames(u.num_samples) for u in utts)}
    mark_done(out_dir, cfg, summary)
