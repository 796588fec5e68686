"""Stage prepare: utterance / speaker / trial manifests of the train and test sets, and MUSAN / RIR lists.

Trees are scanned unit by unit (speaker folders; MUSAN and RIR source folders) into a work folder beside the
manifests (``.<manifests>.partial/``), in ``num_workers`` processes; a killed run picks up the units not done
yet. The manifests are then streamed from the unit results into a temporary folder renamed into place, and
the work folder is removed.
"""
from __future__ import annotations

import itertools
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from sv_toolkit.data.manifests import write_trials
from sv_toolkit.data.prepare import load_trial_lists, ok_keys, skipped_and_notes, speakers_of, trial_keys, write_set
from sv_toolkit.data.scan import ScannedFile, iter_scanned, require_dir, scan_tree
from sv_toolkit.stages.common import mark_done, should_run
from sv_toolkit.utils.io import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)


def _dirs(value: Any) -> list[Path]:
    return [Path(v) for v in value] if isinstance(value, (list, ListConfig)) else [Path(value)]


def work_dir_for(manifest_dir: Path) -> Path:
    return manifest_dir.parent / f".{manifest_dir.name}.partial"


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.data.manifest_dir)
    work = work_dir_for(out_dir)
    if not should_run(out_dir, cfg.overwrite, "prepare"):
        return
    if cfg.overwrite and work.exists():
        shutil.rmtree(work)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*.tmp"):  # left by a run killed while writing
        shutil.rmtree(stale)
    d = cfg.data
    for root in [*_dirs(d.train_audio_dir), d.test_audio_dir, d.musan_dir, d.rirs_dir]:
        if root is not None:
            require_dir(root)
    load_trial_lists(dict(d.trials), None, d.check_trial_counts)  # format and sizes, before an hour of scanning

    def scan(root: Path, name: str, min_seconds: float, file_depth: int | None = 3, unit_depth: int = 1):
        units = scan_tree(root, work / name, d.sample_rate, min_seconds, d.skip_bad_audio, file_depth, unit_depth,
                          cfg.preparation.num_workers, cfg.progress, desc=f"scan {name}",
                          resample_on_read=d.resample_on_read)
        return lambda: iter_scanned(work / name, units)

    train_scans = [scan(root, f"train{i}", d.min_seconds) for i, root in enumerate(_dirs(d.train_audio_dir))]
    train_roots = [r.resolve() for r in _dirs(d.train_audio_dir)]
    if Path(d.test_audio_dir).resolve() in train_roots:
        i = train_roots.index(Path(d.test_audio_dir).resolve())
        if d.min_seconds > 0:
            log.info("test and train trees are the same: test utterances also obey data.min_seconds")
        test_scan = train_scans[i]
    else:
        test_scan = scan(Path(d.test_audio_dir), "test", 0.0)
    augment_scans = {
        name: scan(Path(root), name, 0.0, file_depth=None, unit_depth=2)
        for name, root in (("musan", d.musan_dir), ("rirs", d.rirs_dir)) if root is not None
    }
    _check_disjoint_speakers(train_scans, _dirs(d.train_audio_dir))

    trials = load_trial_lists(dict(d.trials), ok_keys(test_scan()))  # now every named utterance must exist
    needed = trial_keys(trials)
    with atomic_dir(out_dir) as tmp:
        test = write_set(tmp / "test", test_scan(), keep=lambda u: u.key in needed)
        test_speakers = set(test.speakers)
        dropped = Counter()

        def keep_train(u) -> bool:
            if u.speaker in test_speakers:
                dropped[u.speaker] += 1
                return False
            return True

        train = write_set(tmp / "train", itertools.chain.from_iterable(s() for s in train_scans), keep=keep_train)
        if dropped:
            log.info("dropped %d utterances of %d trial speakers from the training set",
                     sum(dropped.values()), len(dropped))
        augment = {
            name: write_set(tmp / "augment" / name, s(), with_speakers=False) for name, s in augment_scans.items()
        }
        for name, ts in trials.items():
            write_trials(tmp / "trials" / f"{name}.txt", ts)
        scans = [*train_scans, *([] if test_scan in train_scans else [test_scan]), *augment_scans.values()]
        named = [f for s in scans for f in skipped_and_notes(s())]
        summary = _summary(train, test, augment, trials, named, sum(dropped.values()))
        write_json_atomic(tmp / "summary.json", summary)
    shutil.rmtree(work)
    _log_summary(summary)
    for key in ("skipped_files", "noted_files"):
        summary.pop(key)
    mark_done(out_dir, cfg, summary)


def _check_disjoint_speakers(train_scans, roots: list[Path]) -> None:
    if len(roots) < 2:
        return
    seen: dict[str, Path] = {}
    for scan, root in zip(train_scans, roots):
        for spk in sorted(speakers_of(scan())):
            if spk in seen:
                raise ValueError(f"speaker {spk} is in two training trees, {seen[spk]} and {root}; keys would clash. "
                                 "Give each corpus once in data.train_audio_dir")
            seen[spk] = root


def _summary(train, test, augment, trials, named: list[ScannedFile], dropped: int) -> dict[str, Any]:
    skipped = [f for f in named if f.status == "skip"]
    notes = [f for f in named if f.status == "ok"]
    return {
        "train": train.summary(),
        "test": test.summary(),
        **{name: {"files": s.utterances, "hours": round(s.hours, 3),
                  "by_type": {k: v[0] for k, v in sorted(s.speakers.items())}} for name, s in augment.items()},
        "trials": {name: {"trials": len(ts), "target": sum(t.label for t in ts)} for name, ts in trials.items()},
        "dropped_trial_speaker_utterances": dropped,
        "skipped": {"count": len(skipped), "reasons": dict(Counter(f.category for f in skipped))},
        "notes": {"count": len(notes), "reasons": dict(Counter(f.category for f in notes))},
        "skipped_files": [{"path": f.path, "reason": f.reason} for f in skipped],
        "noted_files": [{"path": f.path, "note": f.reason} for f in notes],
    }


def _log_summary(s: dict[str, Any]) -> None:
    lines = ["prepare summary:"]
    for name in ("train", "test"):
        lines.append(f"  {name:6s} {s[name]['speakers']:>7,} speakers {s[name]['utterances']:>10,} utterances "
                     f"{s[name]['hours']:>9.2f} h")
    for name in ("musan", "rirs"):
        if name in s:
            lines.append(f"  {name:6s} {s[name]['files']:>10,} files {s[name]['hours']:>9.2f} h {s[name]['by_type']}")
    for name, t in s["trials"].items():
        lines.append(f"  trials {name}: {t['trials']:,} ({t['target']:,} target)")
    lines.append(f"  skipped {s['skipped']['count']} files: {s['skipped']['reasons'] or 'none'}")
    lines += [f"    {f['path']}: {f['reason']}" for f in s["skipped_files"][:20]]
    if len(s["skipped_files"]) > 20:
        lines.append(f"    ... {len(s['skipped_files']) - 20} more in summary.json")
    if s["notes"]["count"]:
        lines.append(f"  kept with a note {s['notes']['count']} files: {s['notes']['reasons']}")
        lines += [f"    {f['path']}: {f['note']}" for f in s["noted_files"][:20]]
    log.info("\n".join(lines))
