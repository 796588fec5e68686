"""Stage embed: whole-utterance embeddings of the test set, and the training-set mean embedding."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from sv_toolkit.features.store import FeatureStore
from sv_toolkit.scoring.embeddings import extract_embeddings, fbank_stats_embeddings, save_embeddings
from sv_toolkit.stages.common import mark_done, resolve_device, should_run
from sv_toolkit.training.checkpoint import load_checkpoint
from sv_toolkit.utils.io import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

EXTRACTORS = ("model", "fbank_stats")


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "embed"
    if not should_run(out_dir, cfg.overwrite, "embed"):
        return
    e = cfg.embed
    if e.extractor not in EXTRACTORS:
        raise ValueError(f"embed.extractor={e.extractor!r} is not one of {EXTRACTORS}")
    stores = {split: FeatureStore(Path(cfg.data.feature_dir) / split) for split in ("train", "test")}
    if e.extractor == "fbank_stats":
        embed_fn = fbank_stats_embeddings
        info = {"system": cfg.system, "model": "fbank mean+std (untrained)", "params": 0}
    else:
        state = load_checkpoint(Path(e.checkpoint))
        model = instantiate(state["model_config"])
        model.load_state_dict(state["model"])
        device = resolve_device(e.device)
        params = sum(p.numel() for p in model.parameters())
        info = {"system": cfg.system, "model": state["model_config"]["name"], "params": params}

        def embed_fn(store: FeatureStore) -> np.ndarray:
            return extract_embeddings(model, store, device, progress=cfg.progress)

    test_emb = embed_fn(stores["test"])
    train_emb = embed_fn(stores["train"])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_embeddings(out_dir / "test.npz", stores["test"].keys, test_emb)
    with atomic_path(out_dir / "train_mean.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, train_emb.mean(axis=0))
    info.update(test_utterances=len(test_emb), train_utterances=len(train_emb), dim=int(test_emb.shape[1]))
    write_json_atomic(out_dir / "info.json", info)
    mark_done(out_dir, cfg, info)
