"""Checkpoints: atomic save, epoch and mid-epoch file names, keep-last-N rotation, weight averaging.

Checkpoints are model files (sv_toolkit.model_file): a header saying how to build and feed the model, and
states of tensors and plain values only, loaded with ``torch.load(weights_only=True)``.

File names in a run's ``checkpoints/`` folder:

- ``epoch_<E>.pt``: written when epoch E (1-based) ends; these are rotated (keep last N) and averaged.
- ``mid_epoch_<E>_step_<S>.pt``: written every N steps inside epoch E, after its S-th step; only for resuming
  long epochs, so only the newest is kept and none is averaged (wespeaker averages epoch checkpoints).

A checkpoint's position is (epochs finished, steps into the next epoch): (E, 0) and (E - 1, S) respectively.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from sv_toolkit.errors import ModelFileError
from sv_toolkit.model_file import ModelHeader, load_model_file, save_model_file

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")
_MID_FILE = re.compile(r"^mid_epoch_(\d+)_step_(\d+)\.pt$")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], header: ModelHeader) -> None:
    """Save ``state`` (tensors and plain values) with the model-file ``header``, atomically: a killed run never
    leaves a truncated checkpoint."""
    save_model_file(path, state, header)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The states of a checkpoint or ``model_avg.pt`` (loaded with weights_only=True; header left out)."""
    return load_model_file(path, map_location)[1]


def epoch_checkpoint_name(epoch: int) -> str:
    """Name of the checkpoint written when ``epoch`` (1-based) ends."""
    return f"epoch_{epoch:03d}.pt"


def mid_epoch_checkpoint_name(epoch: int, step: int) -> str:
    """Name of the checkpoint written after step ``step`` (1-based) of epoch ``epoch`` (1-based)."""
    return f"mid_epoch_{epoch:03d}_step_{step:06d}.pt"


def checkpoint_position(path: Path) -> tuple[int, int] | None:
    """(epochs finished, steps into the next epoch) of a checkpoint file name, None for other files."""
    if m := _EPOCH_FILE.match(path.name):
        return int(m.group(1)), 0
    if m := _MID_FILE.match(path.name):
        return int(m.group(1)) - 1, int(m.group(2))
    return None


def epoch_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``epoch_<n>.pt`` files in ``directory`` sorted by epoch number."""
    found = [(pos, p) for p in Path(directory).glob("epoch_*.pt") if (pos := checkpoint_position(p))]
    return [p for _, p in sorted(found)]


def mid_epoch_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """``mid_epoch_*.pt`` files in ``directory`` sorted by position."""
    found = [(pos, p) for p in Path(directory).glob("mid_epoch_*.pt") if (pos := checkpoint_position(p))]
    return [p for _, p in sorted(found)]


def all_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Epoch and mid-epoch checkpoints, oldest position first."""
    paths = epoch_checkpoints(directory) + mid_epoch_checkpoints(directory)
    return sorted(paths, key=lambda p: checkpoint_position(p))  # type: ignore[arg-type, return-value]


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint furthest into training, or None."""
    paths = all_checkpoints(directory)
    return paths[-1] if paths else None


def rotate_checkpoints(directory: str | os.PathLike, keep_last: int) -> None:
    """Keep the newest ``keep_last`` epoch checkpoints (<= 0 keeps all) and only mid-epoch checkpoints newer
    than the newest epoch checkpoint, of which only the newest."""
    epochs = epoch_checkpoints(directory)
    if keep_last > 0:
        for p in epochs[:-keep_last]:
            p.unlink()
    newest_epoch = checkpoint_position(epochs[-1]) if epochs else (-1, 0)
    mids = mid_epoch_checkpoints(directory)
    for p in mids:
        if p != mids[-1] or checkpoint_position(p) <= newest_epoch:  # type: ignore[operator]
            p.unlink()


def average_states(paths: list[Path], keys: tuple[str, ...] = ("model",)) -> dict[str, dict[str, torch.Tensor]]:
    """Element-wise mean of the ``keys`` state dicts of ``paths`` (integer buffers taken from the last file).

    Files are read one at a time and summed in float64, so memory stays at about two copies of the state.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    sums: dict[str, dict[str, torch.Tensor]] = {key: {} for key in keys}
    dtypes: dict[str, dict[str, torch.dtype]] = {key: {} for key in keys}
    for i, path in enumerate(paths):
        state = load_checkpoint(path)
        for key in keys:
            if key not in state:
                raise ModelFileError(f"checkpoint {path} has no {key!r} state; it was not written by the train stage")
            for name, t in state[key].items():
                dtypes[key][name] = t.dtype
                if not t.is_floating_point():
                    sums[key][name] = t.clone()  # integer buffers (num_batches_tracked): the last file's value
                elif i == 0:
                    sums[key][name] = t.double()
                else:
                    sums[key][name] += t.double()
    return {
        key: {n: (t / len(paths)).to(dtypes[key][n]) if t.is_floating_point() else t for n, t in acc.items()}
        for key, acc in sums.items()
    }
