"""Stage score: cosine scoring of every trial list (training-set mean subtracted), EER and minDCF."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sv_toolkit.data.manifests import read_trials
from sv_toolkit.metrics import compute_eer, compute_min_dcf
from sv_toolkit.scoring import load_embeddings, score_trials, write_scores
from sv_toolkit.stages.common import mark_done, should_run
from sv_toolkit.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "score"
    if not should_run(out_dir, cfg.overwrite, "score"):
        return
    embed_dir = Path(cfg.exp_dir) / "embed"
    keys, emb = load_embeddings(embed_dir / "test.npz")
    mean = np.load(embed_dir / "train_mean.npy") if cfg.scoring.mean_subtraction else None
    metrics = {}
    for name in cfg.data.trials:
        trials = read_trials(Path(cfg.data.manifest_dir) / "trials" / f"{name}.txt")
        labels = np.array([t.label for t in trials])
        scores = score_trials(keys, emb, trials, mean)
        write_scores(out_dir / f"{name}.scores", trials, scores)
        metrics[name] = {
            "num_trials": len(trials),
            "num_target": int(labels.sum()),
            "eer": compute_eer(scores, labels),
            "min_dcf_0.01": compute_min_dcf(scores, labels, p_target=0.01),
            "min_dcf_0.05": compute_min_dcf(scores, labels, p_target=0.05),
        }
        m = metrics[name]
        log.info("%s %s: EER %.3f%%, minDCF(0.01) %.4f, minDCF(0.05) %.4f (%d trials)",
                 cfg.system, name, 100 * m["eer"], m["min_dcf_0.01"], m["min_dcf_0.05"], len(trials))
    write_json_atomic(out_dir / "metrics.json", metrics)
    mark_done(out_dir, cfg, metrics)
