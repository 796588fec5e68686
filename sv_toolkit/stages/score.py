"""Stage score: cosine scoring of every trial list (training-set mean subtracted), cohort normalisation
(AS-norm or S-norm) and calibration to LLRs; EER, minDCF, actDCF and Cllr in ``metrics.json``.

Writes into ``${exp_dir}/score/``, per trial list ``<name>``: ``<name>.scores`` (cosine), ``<name>.<norm>.scores``
(normalised, when ``scoring.norm`` is not none) and ``<name>[.<norm>].llr.scores`` (calibrated, when
``scoring.calibration.enabled``), all ``enroll test score label``; ``calibration.json`` (the fitted
calibrations) and ``metrics.json``:
``{<name>: {num_trials, num_target, eer, eer_threshold, min_dcf_0.01, min_dcf_0.05, ..., calibrated: {act_dcf_0.01,
act_dcf_0.05, cllr, min_cllr}, <norm>: {top_n, cohort_size, eer, ..., calibrated: {...}}}}``.
"""
from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from omegaconf import DictConfig

from sv_toolkit.data.manifests import read_trials
from sv_toolkit.metrics import llr_metrics, verification_metrics
from sv_toolkit.scoring import (
    LinearCalibration,
    cosine_scores,
    fit_linear_calibration,
    load_embedding_arrays,
    load_embeddings,
    normalise_scores,
    prepare_embeddings,
    sample_training_trials,
    save_calibrations,
    trial_indices,
    write_scores,
)
from sv_toolkit.stages.common import mark_done, should_run
from sv_toolkit.utils.io import write_json_atomic

log = logging.getLogger(__name__)

NORMS = ("none", "asnorm", "snorm")


class Scorer:
    """Raw and normalised scores of index pairs into one set of length-normalised embeddings."""

    def __init__(self, embeddings: np.ndarray, cohort: np.ndarray | None, top_n: int | None, block_size: int,
                 exclude: np.ndarray | None = None) -> None:
        self.embeddings, self.cohort, self.top_n = embeddings, cohort, top_n
        self.block_size, self.exclude = block_size, exclude

    def raw(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        return cosine_scores(self.embeddings, enroll, test)

    def normalised(self, raw: np.ndarray, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        return normalise_scores(raw, self.embeddings, enroll, test, self.cohort, self.top_n, self.block_size, self.exclude)


def _top_n(norm: str, requested: int, cohort_size: int, what: str) -> int | None:
    if norm == "snorm":
        return None
    if requested > cohort_size:
        log.warning("scoring.top_n=%d exceeds the %d cohort speakers available for %s; using all %d (S-norm)",
                    requested, cohort_size, what, cohort_size)
        return cohort_size
    return requested


def _calibration_sessions(mode: bool | str, keys: list[str], speakers: list[str]) -> list[str] | None:
    """Session ids (the key's folder: VoxCeleb ``<speaker>/<video>/<n>.wav``) when target calibration trials are to
    pair different sessions: always (true), never (false), or when most training speakers have 2+ sessions (auto)."""
    if mode not in (True, False, "auto"):
        raise ValueError(f"scoring.calibration.cross_session={mode!r} must be true, false or auto")
    if mode is False:
        return None
    sessions = [str(PurePosixPath(k).parent) for k in keys]
    per_speaker: dict[str, set[str]] = {}
    for spk, sess in zip(speakers, sessions):
        per_speaker.setdefault(spk, set()).add(sess)
    multi = sum(len(v) >= 2 for v in per_speaker.values())
    use = mode is True or multi >= len(per_speaker) / 2
    log.info("calibration target trials: %s (%d of %d training speakers have 2+ sessions; cross_session=%s)",
             "different sessions" if use else "any two utterances", multi, len(per_speaker), mode)
    return sessions if use else None


def _fit_calibrations(cfg: DictConfig, embed_dir: Path, mean: np.ndarray | None, cohort: np.ndarray | None,
                      cohort_ids: list[str], norm: str) -> dict[str, LinearCalibration]:
    """Calibrations of the cosine (and normalised) scores, fitted on trials among training utterances."""
    c, s = cfg.scoring.calibration, cfg.scoring
    train = load_embedding_arrays(embed_dir / "train.npz")
    if "speakers" not in train:
        raise ValueError(f"{embed_dir / 'train.npz'} has no speakers; re-run scripts/embed.py with overwrite=true")
    speakers = [str(x) for x in train["speakers"]]
    sessions = _calibration_sessions(c.cross_session, [str(k) for k in train["keys"]], speakers)
    enroll, test, labels = sample_training_trials(speakers, c.num_target, c.num_nontarget, c.seed, sessions)
    exclude = None
    top_n = None
    if cohort is not None:
        row = {spk: i for i, spk in enumerate(cohort_ids)}
        exclude = np.array([row[spk] for spk in speakers], dtype=np.int64)  # leave each utterance's own speaker out
        top_n = _top_n(norm, s.top_n, cohort.shape[0] - 1, "calibration trials")
    scorer = Scorer(prepare_embeddings(train["embeddings"], mean), cohort, top_n, s.block_size, exclude)
    raw = scorer.raw(enroll, test)
    out = {"cosine": fit_linear_calibration(raw, labels, c.prior)}
    if cohort is not None:
        out[norm] = fit_linear_calibration(scorer.normalised(raw, enroll, test), labels, c.prior)
    return out


def _evaluate(scores: np.ndarray, labels: np.ndarray, calibration: LinearCalibration | None, trials, out_base: Path,
              ) -> dict[str, Any]:
    metrics: dict[str, Any] = verification_metrics(scores, labels)
    if calibration is not None:
        llrs = calibration(scores)
        write_scores(out_base.with_name(out_base.name + ".llr.scores"), trials, llrs)
        metrics["calibrated"] = llr_metrics(llrs, labels)
    return metrics


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "score"
    if not should_run(out_dir, cfg.overwrite, "score"):
        return
    s = cfg.scoring
    if s.norm not in NORMS:
        raise ValueError(f"scoring.norm={s.norm!r} is not one of {NORMS}")
    embed_dir = Path(cfg.exp_dir) / "embed"
    keys, emb = load_embeddings(embed_dir / "test.npz")
    mean = np.load(embed_dir / "train_mean.npy") if s.mean_subtraction else None
    cohort, cohort_ids, top_n = None, [], None
    if s.norm != "none":
        cohort_ids, cohort_raw = load_embeddings(embed_dir / "cohort.npz")
        cohort = prepare_embeddings(cohort_raw, mean)
        top_n = _top_n(s.norm, s.top_n, cohort.shape[0], "test embeddings")
    calibrations = _fit_calibrations(cfg, embed_dir, mean, cohort, cohort_ids, s.norm) if s.calibration.enabled else {}
    if calibrations:
        save_calibrations(out_dir / "calibration.json", calibrations)
    scorer = Scorer(prepare_embeddings(emb, mean), cohort, top_n, s.block_size)

    metrics = {}
    for name in cfg.data.trials:
        trial_file = Path(cfg.data.manifest_dir) / "trials" / f"{name}.txt"
        trials = read_trials(trial_file)
        labels = np.array([t.label for t in trials])
        enroll, test = trial_indices(keys, trials, source=str(trial_file))
        raw = scorer.raw(enroll, test)
        write_scores(out_dir / f"{name}.scores", trials, raw)
        m = _evaluate(raw, labels, calibrations.get("cosine"), trials, out_dir / name)
        if cohort is not None:
            normed = scorer.normalised(raw, enroll, test)
            write_scores(out_dir / f"{name}.{s.norm}.scores", trials, normed)
            m[s.norm] = {"top_n": top_n if top_n is not None else cohort.shape[0], "cohort_size": cohort.shape[0],
                         **_evaluate(normed, labels, calibrations.get(s.norm), trials, out_dir / f"{name}.{s.norm}")}
        metrics[name] = m
        line = f"{cfg.system} {name}: EER {100 * m['eer']:.3f}%, minDCF(0.01) {m['min_dcf_0.01']:.4f}"
        if cohort is not None:
            line += f"; {s.norm}: EER {100 * m[s.norm]['eer']:.3f}%, minDCF(0.01) {m[s.norm]['min_dcf_0.01']:.4f}"
        if "calibrated" in m:
            line += f"; calibrated Cllr {m['calibrated']['cllr']:.3f}, actDCF(0.01) {m['calibrated']['act_dcf_0.01']:.4f}"
        log.info("%s (%d trials)", line, len(trials))
    write_json_atomic(out_dir / "metrics.json", metrics)
    mark_done(out_dir, cfg, {name: {k: v for k, v in m.items() if k in ("eer", "min_dcf_0.01")} for name, m in metrics.items()})
