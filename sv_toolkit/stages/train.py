"""Stage train: embedding extractor + classification head + optimizer on random fbank chunks."""
from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sv_toolkit.losses import MarginScheduler
from sv_toolkit.stages.common import mark_done, resolve_device, should_run, to_container
from sv_toolkit.stages.train_data import build_train_data
from sv_toolkit.training.checkpoint import average_model_states, epoch_checkpoints, save_checkpoint
from sv_toolkit.training.loop import Trainer
from sv_toolkit.training.memory import measure_training_step
from sv_toolkit.utils.io import write_json_atomic

log = logging.getLogger(__name__)


def _memory_report(model, head, optim_factory, cfg: DictConfig, num_classes: int, device) -> dict[str, int]:
    """Memory of one training step at the configured batch size, on copies (the real model is untouched)."""
    model_c, head_c = copy.deepcopy(model).to(device), copy.deepcopy(head).to(device)
    opt = optim_factory(params=list(model_c.parameters()) + list(head_c.parameters()))
    t = cfg.trainer
    feats = torch.randn(t.batch_size, t.chunk_frames, cfg.features.num_mel_bins, device=device)
    labels = torch.randint(num_classes, (t.batch_size,), device=device)

    class HeadLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head_c

        def forward(self, emb: torch.Tensor) -> torch.Tensor:
            return self.head(emb, labels)[0]

    report = measure_training_step(model_c, HeadLoss(), feats, opt).as_dict()
    log.info("training memory per step (bytes, batch %d x %d frames): %s", t.batch_size, t.chunk_frames, report)
    return report


def run(cfg: DictConfig) -> None:
    out_dir = Path(cfg.exp_dir) / "train"
    if not should_run(out_dir, cfg.overwrite, "train"):
        return
    t = cfg.trainer
    torch.manual_seed(cfg.seed)
    device = resolve_device(t.device)
    data = build_train_data(cfg, rank=0, world_size=1, seed=cfg.seed)
    steps_per_epoch, num_classes = data.steps_per_epoch, data.num_classes

    model = instantiate(cfg.model)
    head = instantiate(cfg.head, embed_dim=cfg.model.embed_dim, num_classes=num_classes)
    optim_factory = instantiate(cfg.optim)
    params = sum(p.numel() for p in model.parameters())
    memory = _memory_report(model, head, optim_factory, cfg, num_classes, device) if t.measure_memory else None
    optimizer = optim_factory(params=list(model.parameters()) + list(head.parameters()))
    total_steps = t.epochs * steps_per_epoch
    lr_scheduler = instantiate(cfg.sched.lr)(
        optimizer, total_steps=total_steps, warmup_steps=int(round(cfg.sched.warmup_epochs * steps_per_epoch))
    )
    m = cfg.sched.margin
    margin_scheduler = MarginScheduler(head, m.initial, m.final, m.start_epoch, m.end_epoch)
    log.info("model %s: %.3fM parameters; %d speakers (%d classes), %d utterances, %d steps per epoch",
             cfg.model.name, params / 1e6, data.num_speakers, num_classes, data.num_utterances, steps_per_epoch)

    trainer = Trainer(
        model, head, optimizer, lr_scheduler, margin_scheduler, out_dir, device, t.log_every, t.grad_clip,
        t.keep_last, cfg.progress, extra_state={"model_config": to_container(cfg.model)},
    )
    existing = epoch_checkpoints(out_dir / "checkpoints")
    if existing and cfg.resume:
        trainer.resume(existing[-1])
    elif existing:
        log.info("resume=false: removing %d checkpoints of an unfinished earlier run", len(existing))
        for p in existing:
            p.unlink()
    history = trainer.fit(data.epoch_loader(lambda: trainer.epoch), t.epochs, steps_per_epoch)
    trainer.close()

    to_average = epoch_checkpoints(out_dir / "checkpoints")[-t.average_last :]
    averaged = average_model_states(to_average)
    save_checkpoint(out_dir / "model_avg.pt", {"model": averaged, "model_config": to_container(cfg.model)})
    summary = {
        "system": cfg.system,
        "model": cfg.model.name,
        "params": params,
        "optimizer": OmegaConf.select(cfg, "optim._target_").rsplit(".", 1)[-1],
        "epochs": t.epochs,
        "steps": trainer.global_step,
        "averaged_checkpoints": [p.name for p in to_average],
        "memory": memory,
        "final_loss": history[-1].loss if history else math.nan,
        "final_accuracy": history[-1].accuracy if history else math.nan,
        "seconds": sum(h.seconds for h in history),
    }
    write_json_atomic(out_dir / "summary.json", summary)
    mark_done(out_dir, cfg, {k: summary[k] for k in ("model", "params", "steps", "final_loss", "seconds")})
