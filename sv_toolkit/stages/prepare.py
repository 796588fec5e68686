"""Stage prepare: utterance / speaker / trial manifests of the train and test sets, with durations."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from sv_toolkit.data.manifests import speaker_counts, write_speakers, write_trials, write_utterances
from sv_toolkit.data.prepare import load_trial_lists, scan_audio_dir, split_train_test
from sv_toolkit.stages.common import mark_done, should_run
from sv_toolkit.utils.io import atomic_dir, write_json_atomic

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.data.manifest_dir)
    if not should_run(out_dir, cfg.overwrite, "prepare"):
        return
    d = cfg.data
    train_all, skipped = scan_audio_dir(d.train_audio_dir, d.sample_rate, d.min_seconds, d.skip_bad_audio)
    if Path(d.test_audio_dir).resolve() == Path(d.train_audio_dir).resolve():
        test_all = train_all
    else:
        test_all, skipped_test = scan_audio_dir(d.test_audio_dir, d.sample_rate, 0.0, d.skip_bad_audio)
        skipped += skipped_test
    trials = load_trial_lists(dict(d.trials), {u.key for u in test_all})
    train, test = split_train_test(train_all, test_all, trials)
    for s in skipped:
        log.warning("skipped %s: %s", s.path, s.reason)
    summary = {
        "train": {
            "speakers": len(speaker_counts(train)),
            "utterances": len(train),
            "hours": round(sum(u.duration for u in train) / 3600, 3),
        },
        "test": {
            "speakers": len(speaker_counts(test)),
            "utterances": len(test),
            "hours": round(sum(u.duration for u in test) / 3600, 3),
        },
        "trials": {name: {"trials": len(ts), "target": sum(t.label for t in ts)} for name, ts in trials.items()},
        "skipped": {"count": len(skipped), "reasons": dict(Counter(s.reason.split(":")[0] for s in skipped))},
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in skipped],
    }
    with atomic_dir(out_dir) as tmp:
        for split, utts in (("train", train), ("test", test)):
            write_utterances(tmp / split / "utterances.tsv", utts)
            write_speakers(tmp / split / "speakers.tsv", utts)
        for name, ts in trials.items():
            write_trials(tmp / "trials" / f"{name}.txt", ts)
        write_json_atomic(tmp / "summary.json", summary)
    summary.pop("skipped_files")
    mark_done(out_dir, cfg, summary)
