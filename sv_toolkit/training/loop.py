"""The training loop: embedding model + classification head, per-step LR / margin schedules, checkpoints, logs."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from sv_toolkit.losses.aam import MarginScheduler
from sv_toolkit.training.checkpoint import load_checkpoint, rotate_checkpoints, save_checkpoint

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss becomes NaN or Inf."""


@dataclass
class EpochStats:
    epoch: int
    loss: float
    accuracy: float
    lr: float
    margin: float
    seconds: float
    samples_per_second: float


class Trainer:
    """Trains ``model`` (features -> embeddings) with ``head`` (embeddings, labels -> loss, logits)."""

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
        margin_scheduler: MarginScheduler | None,
        out_dir: Path,
        device: torch.device,
        log_every: int = 10,
        grad_clip: float = 0.0,
        keep_last: int = 5,
        progress: bool = True,
        extra_state: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.head = model.to(device), head.to(device)
        self.optimizer, self.lr_scheduler, self.margin_scheduler = optimizer, lr_scheduler, margin_scheduler
        self.out_dir, self.device = Path(out_dir), device
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.log_every, self.grad_clip, self.keep_last, self.progress = log_every, grad_clip, keep_last, progress
        self.extra_state = extra_state or {}
        self.epoch = 0
        self.global_step = 0
        self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def resume(self, path: Path) -> None:
        """Continue from an epoch checkpoint written by :meth:`fit`."""
        state = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        torch.set_rng_state(state["rng_cpu"])
        log.info("resumed from %s (epoch %d, step %d)", path, self.epoch, self.global_step)

    def _save(self) -> Path:
        path = self.ckpt_dir / f"epoch_{self.epoch:03d}.pt"
        save_checkpoint(
            path,
            {
                "model": self.model.state_dict(),
                "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "epoch": self.epoch,
                "global_step": self.global_step,
                "rng_cpu": torch.get_rng_state(),
                **self.extra_state,
            },
        )
        rotate_checkpoints(self.ckpt_dir, self.keep_last)
        return path

    def _train_step(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        feats, labels = feats.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        loss, logits = self.head(self.model(feats), labels)
        if not torch.isfinite(loss):
            last = self.ckpt_dir / f"epoch_{self.epoch:03d}.pt"
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step} (epoch {self.epoch + 1}); last good checkpoint: "
                f"{last if last.exists() else 'none'}. Lower optim.lr or set trainer.grad_clip."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            params = list(self.model.parameters()) + list(self.head.parameters())
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        self.lr_scheduler.step()
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return loss.item(), accuracy.item()

    def fit(self, loader: Iterable, epochs: int, steps_per_epoch: int) -> list[EpochStats]:
        """Train until ``epochs`` epochs are done, writing a checkpoint after each; returns per-epoch stats."""
        history = []
        self.model.train()
        self.head.train()
        while self.epoch < epochs:
            start, n_samples, sum_loss, sum_acc, n_batches = time.perf_counter(), 0, 0.0, 0.0, 0
            margin = math.nan
            bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {self.epoch + 1}/{epochs}", disable=not self.progress)
            for i, (feats, labels) in enumerate(bar):
                if self.margin_scheduler is not None:
                    margin = self.margin_scheduler.step(self.epoch + i / steps_per_epoch)
                loss, acc = self._train_step(feats, labels)
                self.global_step += 1
                n_samples += labels.shape[0]
                sum_loss, sum_acc, n_batches = sum_loss + loss, sum_acc + acc, n_batches + 1
                if self.global_step % self.log_every == 0:
                    self._log_step(loss, acc, margin, n_samples / (time.perf_counter() - start))
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", lr=f"{self._lr():.2e}")
            self.epoch += 1
            seconds = time.perf_counter() - start
            stats = EpochStats(
                self.epoch, sum_loss / max(n_batches, 1), sum_acc / max(n_batches, 1), self._lr(), margin, seconds,
                n_samples / seconds,
            )
            history.append(stats)
            self.writer.add_scalar("epoch/loss", stats.loss, self.epoch)
            self.writer.add_scalar("epoch/accuracy", stats.accuracy, self.epoch)
            log.info(
                "epoch %d/%d: loss %.4f, accuracy %.3f, lr %.2e, margin %.3f, %.1f s (%.0f samples/s)",
                self.epoch, epochs, stats.loss, stats.accuracy, stats.lr, margin, seconds, stats.samples_per_second,
            )
            self._save()
        self.writer.flush()
        return history

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_step(self, loss: float, acc: float, margin: float, samples_per_s: float) -> None:
        step = self.global_step
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/accuracy", acc, step)
        self.writer.add_scalar("train/lr", self._lr(), step)
        if not math.isnan(margin):
            self.writer.add_scalar("train/margin", margin, step)
        self.writer.add_scalar("train/samples_per_second", samples_per_s, step)

    def close(self) -> None:
        self.writer.close()
