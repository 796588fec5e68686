"""sv-embed: embeddings of a list of audio files with a trained extractor, into an .npz embedding file.

    sv-embed --model exp/librimini/resnet10_w8/train/model_avg.pt --list wavs.txt --out emb.npz

The list has one file per line, ``path`` or ``key path`` (the key names the row; default the path). The output
is the embedding-file format of :mod:`sv_toolkit.scoring.embeddings` (``keys``, ``embeddings`` (N, D) float32),
raw embeddings (no mean subtracted). Batches are saved in ``<out>.partial/`` as they finish: run the same
command again after an interruption and it continues.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from sv_toolkit.cli.common import embed_audio_files, reports_errors
from sv_toolkit.errors import InputFileError, MissingFileError
from sv_toolkit.scoring import load_extractor, save_embeddings
from sv_toolkit.scoring.extractor import file_fingerprint
from sv_toolkit.scoring.sources import audio_source_from_list
from sv_toolkit.stages.common import resolve_device


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sv-embed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="model file (model_avg.pt or a train-stage checkpoint)")
    p.add_argument("--list", type=Path, required=True, help="text file: 'path' or 'key path' per line")
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--max-crop", type=float, default=0.0,
                   help="largest fraction of an utterance's frames cropped to batch it with shorter ones (default 0)")
    p.add_argument("--num-workers", type=int, default=0, help="processes computing fbank (default 0)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    return p


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.list.is_file():
        raise MissingFileError(f"file list {args.list} does not exist")
    try:
        source = audio_source_from_list(args.list.read_text().splitlines())
    except InputFileError as err:
        raise InputFileError(f"{args.list}: {err}") from None
    device = resolve_device(args.device)
    model, header = load_extractor(args.model, device)
    partial = args.out.with_name(args.out.name + ".partial")
    emb = embed_audio_files(
        model, dict(zip(source.keys, source.paths)), header, device, max_crop=args.max_crop,
        num_workers=args.num_workers, resume_dir=partial, progress=args.progress,
        fingerprint={"checkpoint_sha256": file_fingerprint(args.model), "list": [source.keys, source.paths]},
    )
    save_embeddings(args.out, source.keys, emb)
    shutil.rmtree(partial, ignore_errors=False)
    print(f"{len(source.keys)} embeddings of dimension {emb.shape[1]} written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
