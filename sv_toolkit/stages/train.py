"""Stage train: embedding extractor + classification head + optimizer on random chunks (sv_toolkit.stages.train_data).

One process, or one per device under ``torchrun`` (DDP; nccl on CUDA, gloo on CPU); rank 0 writes the logs,
tensorboard, checkpoints, ``model_avg.pt`` and ``summary.json``. Checkpoints and ``model_avg.pt`` are model files
(sv_toolkit.model_file) whose header carries the model config and the feature settings.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sv_toolkit.losses import MarginScheduler
from sv_toolkit.models import set_gradient_checkpointing
from sv_toolkit.model_file import ModelHeader
from sv_toolkit.stages.common import fbank_settings, mark_done, resolve_device, should_run, to_container
from sv_toolkit.stages.train_data import build_train_data
from sv_toolkit.training.checkpoint import average_states, epoch_checkpoints, latest_checkpoint, save_checkpoint
from sv_toolkit.training.distributed import (DistEnv, broadcast_object, env_from_torchrun, init_distributed,
                                             process_device, shutdown)
from sv_toolkit.training.logs import TrainLog
from sv_toolkit.training.loop import EpochStats, Trainer, TrainerOptions
from sv_toolkit.training.memory_report import MemoryPrediction, predict_training_memory
from sv_toolkit.training.step import SpeakerNet, autocast_dtype
from sv_toolkit.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def lr_scale(cfg: DictConfig, world_size: int) -> float:
    """wespeaker's LR scaling: world_size x batch_size / lr_reference_batch (1 when trainer.lr_scaling=false)."""
    t = cfg.trainer
    return world_size * t.batch_size / t.lr_reference_batch if t.lr_scaling else 1.0


def model_header(cfg: DictConfig) -> ModelHeader:
    """What every checkpoint and model_avg.pt says about the model: its config and the features it is fed."""
    return ModelHeader.create(to_container(cfg.model), fbank_settings(cfg))


def _quiet_other_ranks() -> None:
    """Ranks other than 0 log warnings only, to the console only."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
    logging.getLogger("sv_toolkit").setLevel(logging.WARNING)


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "train"
    t = cfg.trainer
    env = env_from_torchrun()
    device = process_device(env, resolve_device(t.device))
    if not env.is_main:
        _quiet_other_ranks()
    init_distributed(env, device, t.ddp.backend)
    try:
        if broadcast_object(env, _should_train(cfg, out_dir) if env.is_main else None):
            _train(cfg, env, device, out_dir)
    finally:
        shutdown(env)


def _should_train(cfg: DictConfig, out_dir: Path) -> bool:
    """should_run, and with resume=false the outputs of an unfinished earlier run removed (checkpoints,
    tensorboard events, log), so that nothing of it mixes with the new run."""
    if not should_run(out_dir, cfg.overwrite, "train"):
        return False
    if not cfg.resume and out_dir.exists():
        log.info("resume=false: removing %s, an unfinished earlier run", out_dir)
        shutil.rmtree(out_dir)
    for stale in (out_dir / "checkpoints").glob(".*.tmp"):  # a checkpoint being written when a run was killed
        stale.unlink()
    return True


def _train(cfg: DictConfig, env: DistEnv, device: torch.device, out_dir: Path) -> None:
    t = cfg.trainer
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    torch.manual_seed(cfg.seed)
    train_log = TrainLog(out_dir, enabled=env.is_main, progress=cfg.progress)
    trainer: Trainer | None = None
    try:
        data = build_train_data(cfg, env.rank, env.world_size, cfg.seed)
        steps_per_epoch, num_classes = data.steps_per_epoch, data.num_classes
        model = instantiate(cfg.model)
        if t.gradient_checkpointing:
            try:
                set_gradient_checkpointing(model, True)
            except TypeError as err:
                raise ValueError(f"trainer.gradient_checkpointing=true: {err}") from err
        head = instantiate(cfg.head, embed_dim=cfg.model.embed_dim, num_classes=num_classes)
        scale = lr_scale(cfg, env.world_size)
        optim_factory = instantiate(cfg.optim, lr=cfg.optim.lr * scale)
        params = sum(p.numel() for p in model.parameters())
        micro_batch = t.batch_size // t.grad_accum
        log.info("model %s: %.3fM parameters; %d speakers (%d classes), %d utterances; %d process(es) x batch %d "
                 "(%d micro-batches of %d), %d steps per epoch; %s; lr %.3g x %.3g (trainer.lr_scaling=%s)",
                 cfg.model.name, params / 1e6, data.num_speakers, num_classes, data.num_utterances, env.world_size,
                 t.batch_size, t.grad_accum, micro_batch, steps_per_epoch, t.precision, cfg.optim.lr, scale,
                 t.lr_scaling)
        prediction = None
        if t.measure_memory and env.is_main:  # before the model moves to the device (see predict_training_memory)
            prediction = predict_training_memory(
                SpeakerNet(model, head, autocast_dtype(t.precision, device)), optim_factory, micro_batch,
                t.chunk_frames, cfg.features.num_mel_bins, num_classes, device,
            )
        optimizer = optim_factory(params=list(model.parameters()) + list(head.parameters()))
        lr_scheduler = instantiate(cfg.sched.lr, final_lr=cfg.sched.lr.final_lr * scale)(
            optimizer, total_steps=t.epochs * steps_per_epoch,
            warmup_steps=int(round(cfg.sched.warmup_epochs * steps_per_epoch)),
        )
        m = cfg.sched.margin
        margin_scheduler = MarginScheduler(head, m.initial, m.final, m.start_epoch, m.end_epoch)
        options = TrainerOptions(
            epochs=t.epochs, steps_per_epoch=steps_per_epoch, grad_accum=t.grad_accum, precision=t.precision,
            grad_clip=t.grad_clip, log_every=t.log_every, keep_last=t.keep_last, checkpoint_every=t.checkpoint_every,
            channels_last=t.channels_last, find_unused_parameters=t.ddp.find_unused_parameters,
            sync_buffers=t.ddp.sync_buffers, measure_memory=t.measure_memory, progress=cfg.progress,
        )
        trainer = Trainer(
            model, head, optimizer, lr_scheduler, margin_scheduler, out_dir, device, options, env, train_log,
            header=model_header(cfg),
        )
        _start_or_resume(cfg, env, trainer, out_dir / "checkpoints")
        if prediction is not None:
            trainer.log_prediction(prediction)
        history = trainer.fit(data)
        if env.is_main:
            _finish(cfg, env, trainer, history, out_dir, params, prediction, scale)
    finally:
        if trainer is not None:
            trainer.close()  # drops the DDP wrapper before shutdown destroys the process group
        train_log.close()


def _start_or_resume(cfg: DictConfig, env: DistEnv, trainer: Trainer, ckpt_dir: Path) -> None:
    latest = broadcast_object(env, latest_checkpoint(ckpt_dir) if env.is_main else None)
    if latest is not None:  # resume=false removed the folder in _should_train
        trainer.resume(latest)
    elif cfg.trainer.init_from:
        trainer.load_weights(Path(cfg.trainer.init_from))


def _finish(cfg: DictConfig, env: DistEnv, trainer: Trainer, history: list[EpochStats], out_dir: Path,
            params: int, prediction: MemoryPrediction | None, scale: float) -> None:
    t = cfg.trainer
    to_average = epoch_checkpoints(out_dir / "checkpoints")[-t.average_last :]
    averaged = average_states(to_average, keys=("model", "head"))
    save_checkpoint(out_dir / "model_avg.pt", averaged, trainer.header)
    measured = trainer.measured_memory
    summary = {
        "system": cfg.system,
        "model": cfg.model.name,
        "params": params,
        "optimizer": OmegaConf.select(cfg, "optim._target_").rsplit(".", 1)[-1],
        "epochs": t.epochs,
        "steps": trainer.global_step,
        "world_size": env.world_size,
        "global_batch": env.world_size * t.batch_size,
        "grad_accum": t.grad_accum,
        "precision": t.precision,
        "lr_scale": scale,
        "averaged_checkpoints": [p.name for p in to_average],
        "memory": measured.as_dict() if measured is not None else None,
        "memory_predicted": prediction.components() if prediction is not None else None,
        "final_loss": history[-1].loss if history else math.nan,
        "final_accuracy": history[-1].accuracy if history else math.nan,
        "seconds": sum(h.seconds for h in history),
    }
    if trainer.device.type == "cuda":
        summary["cuda_max_allocated"] = torch.cuda.max_memory_allocated(trainer.device)
    write_json_atomic(out_dir / "summary.json", summary)
    mark_done(out_dir, cfg, {k: summary[k] for k in ("model", "params", "steps", "final_loss", "seconds")})
