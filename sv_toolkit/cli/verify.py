"""sv-verify: are two audio files the same speaker? Scores them with a trained extractor and decides.

    sv-verify --exp-dir exp/librimini/resnet10_w8 a.wav b.wav            # calibrated: LLR, Bayes decision
    sv-verify --model model_avg.pt --threshold 0.45 a.wav b.wav           # cosine score against a threshold

The score is the cosine similarity of the two whole-utterance embeddings after subtracting the training-set
mean (``--mean``; ``embed/train_mean.npy`` of the experiment). With ``--calibration`` (the score stage's
``calibration.json``) the score is also turned into a log-likelihood ratio and the decision is taken at the
Bayes threshold for ``--p-target`` unless ``--threshold`` is given, which always applies to the cosine score.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sv_toolkit.cli.common import embed_audio_files, reports_errors
from sv_toolkit.errors import ConfigError, MissingFileError
from sv_toolkit.metrics import bayes_threshold
from sv_toolkit.scoring import load_calibration, load_extractor, prepare_embeddings
from sv_toolkit.stages.common import resolve_device


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sv-verify", description=__doc__.split("\n\n")[0])
    p.add_argument("enroll", help="first audio file (any rate: resampled to the model's)")
    p.add_argument("test", help="second audio file")
    p.add_argument("--exp-dir", type=Path, help="experiment folder: sets --model, --mean, --calibration from it")
    p.add_argument("--model", type=Path, help="model file (model_avg.pt or a train-stage checkpoint)")
    p.add_argument("--mean", type=Path, help="training-set mean embedding (embed/train_mean.npy)")
    p.add_argument("--calibration", type=Path, help="calibration.json of the score stage")
    p.add_argument("--calibration-scores", default="cosine", help="which calibration of that file (default cosine)")
    p.add_argument("--threshold", type=float, help="decide 'same speaker' when the cosine score >= this")
    p.add_argument("--p-target", type=float, default=0.01, help="prior of the Bayes decision on the LLR (0.01)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    return p


def _from_exp_dir(args: argparse.Namespace) -> None:
    d = args.exp_dir
    if d is None:
        return
    if not d.is_dir():
        raise MissingFileError(f"experiment folder {d} does not exist")
    args.model = args.model or d / "train" / "model_avg.pt"
    if args.mean is None and (d / "embed" / "train_mean.npy").is_file():
        args.mean = d / "embed" / "train_mean.npy"
    if args.calibration is None and (d / "score" / "calibration.json").is_file():
        args.calibration = d / "score" / "calibration.json"


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _from_exp_dir(args)
    if args.model is None:
        raise ConfigError("give --model (a model_avg.pt) or --exp-dir")
    if args.threshold is None and args.calibration is None:
        raise ConfigError("give --threshold (on the cosine score) or --calibration (decide on the LLR)")
    device = resolve_device(args.device)
    model, header = load_extractor(args.model, device)
    emb = embed_audio_files(model, {"enroll": args.enroll, "test": args.test}, header, device, progress=False)
    mean = np.load(args.mean) if args.mean is not None else None
    e, t = prepare_embeddings(emb, mean)
    score = float(e @ t)
    print(f"score: {score:.6f} (cosine{', training-set mean subtracted' if mean is not None else ''})")
    if args.calibration is not None:
        llr = float(load_calibration(args.calibration, args.calibration_scores)(np.array([score]))[0])
        print(f"llr: {llr:.4f} (calibrated log-likelihood ratio)")
    if args.threshold is not None:
        same, rule = score >= args.threshold, f"cosine score >= {args.threshold:g}"
    else:
        theta = bayes_threshold(args.p_target)
        same, rule = llr >= theta, f"llr >= {theta:.4f} (Bayes threshold at p_target {args.p_target:g})"
    print(f"decision: {'same speaker' if same else 'different speakers'} ({rule})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
