"""What a training run shows (rank 0 only): tensorboard scalars, a plain-text log file, progress bars."""
from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class NullBar:
    """The part of tqdm's interface the training loop uses, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values: object) -> None:
        pass

    def close(self) -> None:
        pass


class TrainLog:
    """Tensorboard events in ``out_dir/tensorboard``, and every ``sv_toolkit`` log line also in ``out_dir/train.log``
    (appended, so a resumed run continues the same file). On ranks other than 0 all of it is off."""

    def __init__(self, out_dir: Path, enabled: bool = True, progress: bool = True) -> None:
        self.enabled, self.progress = enabled, progress and enabled
        self.out_dir = out_dir
        self.writer: SummaryWriter | None = None
        self._purge_step: int | None = None
        self._handler: logging.Handler | None = None
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._handler = logging.FileHandler(out_dir / "train.log", mode="a", encoding="utf-8")
            self._handler.setFormatter(logging.Formatter(LOG_FORMAT))
            package = logging.getLogger("sv_toolkit")
            package.addHandler(self._handler)
            if package.getEffectiveLevel() > logging.INFO:
                package.setLevel(logging.INFO)

    def resume_at(self, step: int) -> None:
        """Hide the events of steps >= ``step`` that a killed run wrote after its last checkpoint (tensorboard's
        purge_step); call before the first scalar."""
        if self.writer is not None:
            raise RuntimeError("resume_at must be called before the first scalar is written")
        self._purge_step = step

    def scalars(self, values: dict[str, float], step: int) -> None:
        """``tag -> value`` at ``step`` (rank 0)."""
        if not self.enabled:
            return
        if self.writer is None:
            self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"), purge_step=self._purge_step)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def progress_bar(self, total: int, initial: int, desc: str) -> tqdm | NullBar:
        """A tqdm bar (rate and ETA) for ``total`` steps starting at ``initial``; a no-op off rank 0 or with
        progress off (even a disabled tqdm starts tqdm's monitor thread, which would outlive the run)."""
        if not self.progress:
            return NullBar()
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
        if self._handler is not None:
            self._handler.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._handler is not None:
            logging.getLogger("sv_toolkit").removeHandler(self._handler)
            self._handler.close()
            self._handler = None
