"""Corpus-making stages: synthesise minivox, or import librimini from librispeech_mini."""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.stages.common import mark_done, should_run

log = logging.getLogger(__name__)


def _begin(corpus_dir: Path, overwrite: bool, stage: str) -> bool:
    if not should_run(corpus_dir, overwrite, stage):
        return False
    if corpus_dir.exists():  # written but never marked done: an interrupted earlier stage
        log.info("%s: removing unfinished %s", stage, corpus_dir)
        shutil.rmtree(corpus_dir)
    return True


def run_synth_minivox(cfg: DictConfig) -> None:
    """Synthesise the minivox corpus into ``data.corpus_dir``."""
    from sv_toolkit.data.minivox import synthesize_minivox

    corpus_dir = Path(cfg.data.corpus_dir)
    if not _begin(corpus_dir, cfg.overwrite, "synth_minivox"):
        return
    s = cfg.data.synthesis
    summary = synthesize_minivox(
        corpus_dir,
        num_train_speakers=s.num_train_speakers,
        num_test_speakers=s.num_test_speakers,
        utts_per_speaker=s.utts_per_speaker,
        sessions_per_speaker=s.sessions_per_speaker,
        seed=s.seed,
        trials_o=s.trials_o,
        trials_e=s.trials_e,
        trials_h=s.trials_h,
        sample_rate=cfg.data.sample_rate,
        num_workers=s.num_workers,
        progress=cfg.progress,
    )
    info = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(summary).items()}
    info["trial_lists"] = {k: str(v) for k, v in summary.trial_lists.items()}
    mark_done(corpus_dir, cfg, info)


def run_import_librimini(cfg: DictConfig) -> None:
    """Import librispeech_mini into ``data.corpus_dir`` in VoxCeleb layout."""
    from sv_toolkit.data.librimini import import_librimini

    corpus_dir = Path(cfg.data.corpus_dir)
    if not _begin(corpus_dir, cfg.overwrite, "import_librimini"):
        return
    summary = import_librimini(
        cfg.data.source_dir, corpus_dir, cfg.data.segment_seconds, cfg.data.min_segment_seconds, cfg.data.sample_rate
    )
    mark_done(corpus_dir, cfg, asdict(summary))
