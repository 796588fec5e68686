"""compute_metrics: EER, minDCF (0.01, 0.05), minCllr and, for LLR scores, actDCF and Cllr of a score file.

    python scripts/compute_metrics.py exp/minivox/resnet10_w8/score/minivox_O.scores
    python scripts/compute_metrics.py scores.txt --trials veri_test2.txt --llr --json metrics.json --det det.png

The score file has ``enroll test score [label]`` lines (the score stage's format; Kaldi / wespeaker score files
too). With ``--trials`` (``label enroll test`` lines, the VoxCeleb format) the labels come from the trial list
and every trial must have a score; without it the score file must carry labels. Definitions:
:mod:`sv_toolkit.metrics`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sv_toolkit.cli.common import reports_errors
from sv_toolkit.data.manifests import read_trials
from sv_toolkit.errors import ConfigError
from sv_toolkit.metrics import llr_metrics, verification_metrics
from sv_toolkit.metrics.llr import compute_min_cllr
from sv_toolkit.scoring import match_scores_to_trials, read_scores
from sv_toolkit.utils.io import write_json_atomic


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compute_metrics", description=__doc__.split("\n\n")[0])
    p.add_argument("scores", type=Path, help="score file: 'enroll test score [label]' per line")
    p.add_argument("--trials", type=Path, help="trial list: 'label enroll test' per line")
    p.add_argument("--llr", action="store_true", help="scores are calibrated LLRs: also report actDCF and Cllr")
    p.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    p.add_argument("--det", type=Path, help="also draw the DET curve into this PNG (needs sv_toolkit[plot])")
    return p


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sf = read_scores(args.scores)
    if args.trials is not None:
        trials = read_trials(args.trials)
        scores, labels = match_scores_to_trials(sf, trials, str(args.scores), str(args.trials))
        extra = len(set(zip(sf.enroll, sf.test)) - {(t.enroll, t.test) for t in trials})
        if extra:
            print(f"note: {extra} scored pairs of {args.scores} are not in {args.trials} and are ignored")
    elif sf.labels is None:
        raise ConfigError(f"{args.scores} has no label column; give the trial list with --trials")
    else:
        scores, labels = sf.scores, sf.labels
    m = verification_metrics(scores, labels)
    m.update(llr_metrics(scores, labels) if args.llr else {"min_cllr": compute_min_cllr(scores, labels)})
    print(f"trials: {m['num_trials']} ({m['num_target']} target, {m['num_trials'] - m['num_target']} non-target)")
    print(f"EER: {100 * m['eer']:.4f}% (threshold {m['eer_threshold']:.6f})")
    for p in ("0.01", "0.05"):
        line = f"minDCF(p_target={p}): {m[f'min_dcf_{p}']:.4f} (threshold {m[f'min_dcf_{p}_threshold']:.6f})"
        if args.llr:
            line += f"; actDCF: {m[f'act_dcf_{p}']:.4f}"
        print(line)
    if args.llr:
        print(f"Cllr: {m['cllr']:.4f} bits")
    print(f"minCllr: {m['min_cllr']:.4f} bits")
    if args.json is not None:
        write_json_atomic(args.json, m)
    if args.det is not None:
        from sv_toolkit.reporting.det_plot import DetSeries, plot_det

        plot_det([DetSeries(args.scores.stem, args.scores.stem, "cosine", scores, labels)], args.det)
        print(f"DET plot: {args.det}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
