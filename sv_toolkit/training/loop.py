"""The training loop: epochs of optimizer steps over micro-batches, schedules, checkpoints, resume, logs.

The loader is any iterable of ``(feats (b, T, F), labels (b,))`` micro-batches giving ``steps_per_epoch x
grad_accum`` of them per epoch (per process), with two optional hooks:

- ``set_epoch(epoch)`` (0-based), called before each epoch: the epoch's content should depend on it only;
- ``skip_batches(n)``, called after ``set_epoch`` when a run resumes n micro-batches into an epoch: the next
  pass must start at micro-batch n. Without it the Trainer draws and drops n micro-batches (exact when the
  epoch's content depends only on the epoch, but slower).
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from sv_toolkit.errors import ConfigError, ModelFileError
from sv_toolkit.losses.aam import MarginScheduler
from sv_toolkit.model_file import ModelHeader, load_model_file
from sv_toolkit.training.checkpoint import (epoch_checkpoint_name, mid_epoch_checkpoint_name, rotate_checkpoints,
                                            save_checkpoint)
from sv_toolkit.training.distributed import DistEnv, gather_objects, wrap_ddp
from sv_toolkit.training.logs import TrainLog
from sv_toolkit.training.memory import MemoryReport
from sv_toolkit.training.memory_report import MemoryPrediction, StepMemoryMeter
from sv_toolkit.training.rng import capture_rng_state, restore_rng_state
from sv_toolkit.training.step import (NonFiniteError, SpeakerNet, StepResult, autocast_dtype, make_grad_scaler,
                                     train_step)

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss or gradient norm becomes NaN or Inf."""


@dataclass(frozen=True)
class TrainerOptions:
    epochs: int
    steps_per_epoch: int
    grad_accum: int = 1              # micro-batches per optimizer step
    precision: str = "fp32"          # fp32 | bf16 | fp16 (CUDA, with GradScaler)
    grad_clip: float = 0.0           # max global L2 norm of the gradients; 0 = off
    log_every: int = 20              # steps between logged scalars
    keep_last: int = 10              # epoch checkpoints kept
    checkpoint_every: int = 0        # steps between mid-epoch checkpoints; 0 = at epoch ends only
    channels_last: bool = False      # CUDA: weights (hence conv activations) in channels-last layout
    find_unused_parameters: bool = False
    sync_buffers: bool = True        # DDP: rank 0's BatchNorm buffers broadcast before every forward
    measure_memory: bool = True      # measure one real step (the second of the run)
    progress: bool = True


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
    """Trains ``model`` (features -> embeddings) with ``head`` (embeddings, labels -> loss, logits).

    ``header`` describes the model (sv_toolkit.model_file) and goes into every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: torch.optim.lr_scheduler.LRScheduler,
        margin_scheduler: MarginScheduler | None,
        out_dir: Path,
        device: torch.device,
        options: TrainerOptions,
        env: DistEnv = DistEnv(),
        train_log: TrainLog | None = None,
        *,
        header: ModelHeader,
    ) -> None:
        if options.grad_accum < 1 or options.steps_per_epoch < 1:
            raise ValueError(f"grad_accum and steps_per_epoch must be >= 1, got {options}")
        self.options, self.env, self.device = options, env, device
        self.scaler = make_grad_scaler(options.precision, device)
        if options.channels_last:
            if device.type != "cuda":
                # torch 2.14.1 on CPU: the weight gradient of a strided 1x1 conv in channels-last layout
                # (ResNet shortcuts) corrupts the heap (double free / segfault); it is a GPU knob anyway.
                raise ValueError("trainer.channels_last=true is for CUDA devices; set it to false on CPU")
            model.to(memory_format=torch.channels_last)
        self.net = SpeakerNet(model, head, autocast_dtype(options.precision, device)).to(device)
        self.ddp_net = wrap_ddp(self.net, env, device, options.find_unused_parameters, options.sync_buffers)
        self.optimizer, self.lr_scheduler, self.margin_scheduler = optimizer, lr_scheduler, margin_scheduler
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.log = train_log or TrainLog(self.out_dir, enabled=env.is_main, progress=options.progress)
        self.header = header  # written into every checkpoint: model config, feature settings, version
        self.meter = StepMemoryMeter(self.net, optimizer, device, persistent_grads=env.enabled)
        self.epoch = 0            # epochs finished
        self.step_in_epoch = 0    # optimizer steps done in the current epoch
        self.global_step = 0
        self.last_checkpoint: Path | None = None

    @property
    def model(self) -> nn.Module:
        return self.net.model

    @property
    def head(self) -> nn.Module:
        return self.net.head

    # ---------------------------------------------------------------- checkpoints
    def load_weights(self, path: Path) -> None:
        """Start from the model and head weights of ``path`` (e.g. ``model_avg.pt`` for fine-tuning), which must
        have been trained on the same features as this run."""
        header, state = load_model_file(path, map_location=self.device)
        self._check_same(header, path, ("features",))
        for key, module in (("model", self.model), ("head", self.head)):
            if key not in state:
                raise ModelFileError(f"{path} has no {key!r} weights; give a checkpoint written by the train stage")
            weights = dict(state[key])
            if key == "head":
                weights = _unperturbed_classes(weights, module, path)
            try:
                module.load_state_dict(weights)
            except RuntimeError as err:
                raise ConfigError(f"{key} weights of {path} do not fit the configured {key}: {err}") from err
        log.info("initialised model and head from %s", path)

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint written by :meth:`fit` (epoch end or mid-epoch) of the same model and features."""
        header, state = load_model_file(path, map_location=self.device)
        self._check_same(header, path, ("model_config", "features"))
        if "step_in_epoch" not in state:
            raise ModelFileError(f"{path} was written by an earlier version of the train stage and cannot be resumed; "
                             "pass resume=false to start again")
        for key, now in (("world_size", self.env.world_size), ("steps_per_epoch", self.options.steps_per_epoch)):
            if state[key] != now:
                raise ConfigError(
                    f"{path} was written with {key}={state[key]} but this run has {key}={now}; resume with the "
                    "same number of processes and batch settings, or pass resume=false to start again"
                )
        self.model.load_state_dict(state["model"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if self.margin_scheduler is not None and state.get("margin_scheduler") is not None:
            self.margin_scheduler.load_state_dict(state["margin_scheduler"])
        if self.scaler is not None and state.get("grad_scaler") is not None:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step = state["global_step"]
        restore_rng_state(state["rng"][self.env.rank], self.device)
        self.log.resume_at(self.global_step + 1)
        self.last_checkpoint = path
        log.info("resumed from %s (epoch %d, step %d of it; global step %d)",
                 path, self.epoch + 1, self.step_in_epoch, self.global_step)

    def _check_same(self, header: ModelHeader, path: Path, fields: tuple[str, ...]) -> None:
        for name in fields:
            then, now = getattr(header, name), getattr(self.header, name)
            if then != now:
                raise ConfigError(f"{path} was written with {name} {then}, but this run has {now}; use the same "
                                  "model and features settings, or pass resume=false to start again")

    def _save(self, name: str) -> Path:
        path = self.ckpt_dir / name
        rng = gather_objects(self.env, capture_rng_state(self.device))  # every rank's, in rank order
        if self.env.is_main:
            state = {
                "model": self.model.state_dict(),
                "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "margin_scheduler": self.margin_scheduler.state_dict() if self.margin_scheduler else None,
                "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "steps_per_epoch": self.options.steps_per_epoch,
                "world_size": self.env.world_size,
                "rng": rng,
            }
            save_checkpoint(path, state, self.header)
            rotate_checkpoints(self.ckpt_dir, self.options.keep_last)
        self.last_checkpoint = path
        return path

    # ---------------------------------------------------------------- training
    def _epoch_batches(self, loader: Iterable) -> Iterator[Any]:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(self.epoch)
        skip = self.step_in_epoch * self.options.grad_accum
        if skip and hasattr(loader, "skip_batches"):
            loader.skip_batches(skip)
            skip = 0
        batches = iter(loader)
        for _ in range(skip):
            next(batches)
        return batches

    def _next_step_batches(self, batches: Iterator[Any]) -> list[Any]:
        accum = self.options.grad_accum
        micro = list(zip(range(accum), batches))
        if len(micro) < accum:
            raise RuntimeError(
                f"the training loader ran out in epoch {self.epoch + 1} at step {self.step_in_epoch + 1}; it must "
                f"give steps_per_epoch x grad_accum = {self.options.steps_per_epoch * accum} micro-batches per epoch"
            )
        return [batch for _, batch in micro]

    def fit(self, loader: Iterable) -> list[EpochStats]:
        """Train until ``options.epochs`` epochs are done; a checkpoint after each epoch (and every
        ``checkpoint_every`` steps). Returns the per-epoch stats of this run."""
        o, steps = self.options, self.options.steps_per_epoch
        history: list[EpochStats] = []
        self.net.train()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        remaining = (o.epochs - self.epoch) * steps - self.step_in_epoch
        measure_at = 1 if remaining >= 2 else 0  # the second step of the run: optimizer states exist
        steps_this_run, run_start = 0, time.perf_counter()
        while self.epoch < o.epochs:
            batches = self._epoch_batches(loader)
            bar = self.log.progress_bar(steps, self.step_in_epoch, f"epoch {self.epoch + 1}/{o.epochs}")
            start = interval_start = time.perf_counter()
            sums = {"loss": 0.0, "correct": 0.0, "samples": 0, "interval_samples": 0}
            margin = math.nan
            while self.step_in_epoch < steps:
                micro = self._next_step_batches(batches)
                if self.margin_scheduler is not None:
                    margin = self.margin_scheduler.step(self.epoch + self.step_in_epoch / steps)
                lr = self._lr()
                measure = o.measure_memory and steps_this_run == measure_at
                result = self._step(micro, measure)
                steps_this_run += 1
                sums["loss"] += result.loss * result.samples
                sums["correct"] += result.accuracy * result.samples
                sums["samples"] += result.samples
                sums["interval_samples"] += result.samples
                if measure and self.meter.report is not None:
                    self._log_memory("measured", self.meter.report.as_dict())
                if self.global_step % o.log_every == 0:
                    now = time.perf_counter()
                    per_step = (now - run_start) / steps_this_run
                    etas = (per_step * (steps - self.step_in_epoch), per_step * (remaining - steps_this_run))
                    self._log_step(result, lr, margin, sums["interval_samples"] / (now - interval_start), etas)
                    interval_start, sums["interval_samples"] = now, 0
                bar.update(1)
                bar.set_postfix(loss=f"{result.loss:.3f}", acc=f"{result.accuracy:.3f}", lr=f"{lr:.2e}")
                if o.checkpoint_every and self.global_step % o.checkpoint_every == 0 and self.step_in_epoch < steps:
                    self._save(mid_epoch_checkpoint_name(self.epoch + 1, self.step_in_epoch))
            bar.close()
            self.epoch += 1
            self.step_in_epoch = 0
            seconds = time.perf_counter() - start
            n = max(sums["samples"], 1)
            stats = EpochStats(self.epoch, sums["loss"] / n, sums["correct"] / n, self._lr(), margin, seconds,
                               sums["samples"] / seconds)
            history.append(stats)
            self.log.scalars({"epoch/loss": stats.loss, "epoch/accuracy": stats.accuracy}, self.epoch)
            log.info("epoch %d/%d: loss %.4f, accuracy %.3f, lr %.2e, margin %.3f, %.1f s (%.0f samples/s)",
                     self.epoch, o.epochs, stats.loss, stats.accuracy, stats.lr, margin, seconds,
                     stats.samples_per_second)
            self._save(epoch_checkpoint_name(self.epoch))
        self.log.flush()
        return history

    def _step(self, micro: list[Any], measure: bool) -> StepResult:
        """One optimizer step (memory-measured if ``measure``), then the LR schedule and the counters."""
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with self.meter.measure() if measure else contextlib.nullcontext():
                result = train_step(
                    self.ddp_net, self.optimizer, micro, self.device, self.env, self.scaler, self.options.grad_clip,
                    forward_context=self.meter.forward if measure else contextlib.nullcontext,
                )
        except NonFiniteError as err:
            raise NonFiniteLossError(
                f"{err} at step {self.global_step + 1} (epoch {self.epoch + 1}, step {self.step_in_epoch + 1} of "
                f"{self.options.steps_per_epoch}); no update was applied. Last good checkpoint: "
                f"{self.last_checkpoint or 'none (none written yet)'}. Lower optim.lr, set trainer.grad_clip, or "
                "train in trainer.precision=fp32."
            ) from err
        self.lr_scheduler.step()
        self.global_step += 1
        self.step_in_epoch += 1
        return result

    # ---------------------------------------------------------------- logging
    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_step(self, result: StepResult, lr: float, margin: float, samples_per_s: float,
                  etas: tuple[float, float]) -> None:
        values = {
            "train/loss": result.loss, "train/accuracy": result.accuracy, "train/lr": lr,
            "train/grad_norm": result.grad_norm, "train/samples_per_second": samples_per_s,
        }
        if not math.isnan(margin):
            values["train/margin"] = margin
        if self.scaler is not None:
            values["train/loss_scale"] = float(self.scaler.get_scale())
        if self.device.type == "cuda":
            values["memory/cuda_max_allocated"] = float(torch.cuda.max_memory_allocated(self.device))
        self.log.scalars(values, self.global_step)
        log.info("epoch %d step %d/%d (global %d): loss %.4f acc %.3f lr %.3e margin %.3f grad_norm %.3g "
                 "%.0f samples/s%s; ETA epoch %.0f s, run %.0f s", self.epoch + 1, self.step_in_epoch,
                 self.options.steps_per_epoch, self.global_step, result.loss, result.accuracy, lr, margin,
                 result.grad_norm, samples_per_s, " (skipped: inf/NaN gradients)" if result.skipped else "", *etas)

    def _log_memory(self, kind: str, components: dict[str, int]) -> None:
        self.log.scalars({f"memory/{kind}/{k}": float(v) for k, v in components.items()}, self.global_step)
        log.info("training memory %s (MiB): %s", kind,
                 ", ".join(f"{k} {v / 2**20:.1f}" for k, v in components.items()))

    def log_prediction(self, prediction: MemoryPrediction) -> None:
        """Write the predicted memory report to tensorboard and the log."""
        log.info("memory prediction for micro-batch %d (probes at batches %s)", prediction.batch,
                 prediction.probe_batches)
        self._log_memory("predicted", prediction.components())

    @property
    def measured_memory(self) -> MemoryReport | None:
        return self.meter.report

    def close(self) -> None:
        """Close the log and drop the DDP wrapper, which holds the process group's backend and its threads
        (sv_toolkit.training.distributed.shutdown frees them); the Trainer cannot step after this."""
        self.ddp_net = self.net
        self.log.close()


def _unperturbed_classes(weights: dict[str, torch.Tensor], head: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """A head trained with speed-perturbed copies as new classes (speaker + k x speakers, k = 0 the unperturbed
    factor 1.0, sv_toolkit.data.chunking) fine-tuned without them: keep the rows of the original speakers."""
    have, want = weights.get("weight"), getattr(head, "weight", None)
    if have is None or want is None or have.shape[1:] != want.shape[1:] or have.shape[0] <= want.shape[0]:
        return weights
    if have.shape[0] % want.shape[0]:
        raise ValueError(f"head weights of {path} have {have.shape[0]} classes, not a multiple of the configured "
                         f"{want.shape[0]}; the head cannot be matched to this training set")
    log.info("head of %s: %d classes (speed-perturbed copies), keeping the first %d (the unperturbed speakers)",
             path, have.shape[0], want.shape[0])
    return {**weights, "weight": have[: want.shape[0]]}
