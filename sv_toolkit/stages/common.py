"""Helpers shared by the stages: device choice, fbank settings, done-markers for idempotent stages, config printing."""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from sv_toolkit.errors import ConfigError
from sv_toolkit.utils.io import write_json_atomic

if TYPE_CHECKING:
    import torch

    from sv_toolkit.features.store import FbankSettings

log = logging.getLogger(__name__)

DONE_MARKER = ".done"


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; anything else is passed to torch.device."""
    import torch  # here, not at the top: data stages (prepare, convert) run without torch's ~700 MB

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available; use device=cpu or device=auto")
    return device


def fbank_settings(cfg: DictConfig) -> FbankSettings:
    """The fbank settings of ``cfg.features`` at ``cfg.data.sample_rate`` (what the model is trained on)."""
    from sv_toolkit.features.store import FbankSettings  # here: sv_toolkit.features imports torch

    f = cfg.features
    return FbankSettings(f.num_mel_bins, f.frame_length_ms, f.frame_shift_ms, cfg.data.sample_rate)


def should_run(out_dir: Path, overwrite: bool, stage: str) -> bool:
    """False (and a log line) when ``out_dir`` holds a done-marker and overwrite is off.

    With overwrite, the stage's previous outputs are removed first.
    """
    if (out_dir / DONE_MARKER).exists():
        if not overwrite:
            log.info("%s: %s is already done; skipping (pass overwrite=true to redo it)", stage, out_dir)
            return False
        log.info("%s: overwrite=true, removing %s", stage, out_dir)
        shutil.rmtree(out_dir)
    return True


def mark_done(out_dir: Path, cfg: DictConfig, summary: dict[str, Any]) -> None:
    """Write the done-marker with the resolved config and a summary of what the stage produced."""
    record = {"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": summary, "config": to_container(cfg)}
    write_json_atomic(out_dir / DONE_MARKER, record)
    log.info("%s done: %s", out_dir, json.dumps(summary))


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
