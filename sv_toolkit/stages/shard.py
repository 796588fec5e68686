"""Stage shard: the training manifest packed into tar shards (sv_toolkit.data.shards), resumable."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.data.shards import write_shards
from sv_toolkit.stages.common import fbank_settings, mark_done, should_run


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.data.shard_dir) / "train"
    if not should_run(out_dir, cfg.overwrite, "shard"):
        return
    summary = write_shards(
        Path(cfg.data.manifest_dir) / "train" / "utterances.tsv", out_dir, cfg.preparation.shard_size, cfg.seed,
        cfg.preparation.shard_content, fbank_settings(cfg), cfg.preparation.num_workers, cfg.progress,
        cfg.data.resample_on_read,
    )
    mark_done(out_dir, cfg, summary)
