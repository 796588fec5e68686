"""Stage convert: AAC (.m4a) trees to 16 kHz mono wav / flac with ffmpeg (VoxCeleb2), for every data.convert entry.

Resumable: outputs that exist are complete and are kept. A tree whose files all converted gets a done-marker;
files ffmpeg cannot decode are listed in ``<dst>/../<name>.convert_failed.tsv`` and retried by the next run.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.data.convert import convert_tree
from sv_toolkit.stages.common import mark_done, should_run
from sv_toolkit.utils.io import atomic_path

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    if not cfg.data.convert:
        log.info("convert: data=%s has nothing to convert (data.convert is empty)", cfg.data.name)
        return
    for name, job in cfg.data.convert.items():
        dst = Path(job.dst)
        if not should_run(dst, cfg.overwrite, f"convert {name}"):
            continue
        p = cfg.preparation
        summary = convert_tree(job.src, dst, cfg.data.sample_rate, p.convert_format, p.num_workers, cfg.progress)
        failed_list = dst.parent / f"{name}.convert_failed.tsv"
        info = {"converted": summary.converted, "already_present": summary.already_present,
                "failed": len(summary.failed), "other_files_ignored": summary.other_files}
        if summary.failed:
            with atomic_path(failed_list) as tmp, open(tmp, "w", newline="") as f:
                w = csv.writer(f, delimiter="\t", lineterminator="\n")
                w.writerow(["path", "error"])
                w.writerows(summary.failed)
            log.error("convert %s: %d files could not be converted (listed in %s); the others are done. Re-run to "
                      "retry them, or delete the broken sources.", name, len(summary.failed), failed_list)
            continue
        failed_list.unlink(missing_ok=True)
        if summary.converted + summary.already_present == 0:
            raise ValueError(f"convert {name}: no .m4a files under {job.src} (expected <spk>/<video>/<nnnnn>.m4a)")
        mark_done(dst, cfg, info)
