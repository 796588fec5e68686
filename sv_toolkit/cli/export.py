"""sv-export: a trained extractor as TorchScript or ONNX, checked against the eager model.

    sv-export --model exp/librimini/resnet10_w8/train/model_avg.pt --out resnet10.onnx
    sv-export --model model_avg.pt --out resnet10.ts --format torchscript

Input of the exported graph: mean-normalised fbank ``feats`` (batch, frames, bins); output ``embedding``
(batch, dim); batch and frames are dynamic (:mod:`sv_toolkit.export`). The number of bins and the rest of the
feature recipe (sample rate, frame length and shift) come from the model file and are written beside the
export as ``<out>.json``. After export, the embeddings of random inputs of two lengths are compared with the
eager model and the largest difference is printed; a difference above ``--tolerance`` is an error (and the
export is removed).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sv_toolkit.cli.common import reports_errors
from sv_toolkit.errors import UserError
from sv_toolkit.export import FORMATS, export_model, run_exported
from sv_toolkit.scoring import load_extractor
from sv_toolkit.utils.io import write_json_atomic


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sv-export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="model file (model_avg.pt or a train-stage checkpoint)")
    p.add_argument("--out", type=Path, required=True, help="output file (.onnx, or .ts / .pt for TorchScript)")
    p.add_argument("--format", choices=FORMATS, help="default: onnx for .onnx files, torchscript otherwise")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |exported - eager| (1e-4)")
    return p


class ExportMismatchError(UserError):
    """The exported graph's embeddings differ from the eager model's by more than --tolerance."""


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fmt = args.format or ("onnx" if args.out.suffix == ".onnx" else "torchscript")
    model, header = load_extractor(args.model, "cpu")
    bins = header.fbank_settings(str(args.model)).num_mel_bins
    export_model(model, args.out, fmt, bins)
    worst = 0.0
    for frames in (150, 437):
        feats = torch.randn(2, frames, bins, generator=torch.Generator().manual_seed(frames))
        feats = feats - feats.mean(dim=1, keepdim=True)
        with torch.no_grad():
            eager = model(feats).numpy()
        worst = max(worst, float(abs(run_exported(args.out, feats) - eager).max()))
    if worst > args.tolerance:
        args.out.unlink()
        raise ExportMismatchError(f"exported embeddings differ from eager by {worst:.2e} > --tolerance "
                                  f"{args.tolerance:g}; {args.out} removed")
    sidecar = args.out.with_name(args.out.name + ".json")
    write_json_atomic(sidecar, {"format": fmt, "input": "feats (batch, frames, num_mel_bins), mean-normalised fbank",
                                "features": header.features, "embed_dim": header.embed_dim,
                                "model_config": header.model_config, "sv_toolkit_version": header.sv_toolkit_version})
    print(f"{fmt} model written to {args.out}; max |exported - eager| = {worst:.2e} on 2 x (150, 437) frames")
    print(f"its input features (from the model file, also in {sidecar}): {header.features}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
