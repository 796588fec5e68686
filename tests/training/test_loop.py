"""Trainer: mid-epoch resume is exact, the NaN guard names step and checkpoint, tensorboard has every scalar."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch.utils.data import DataLoader

from sv_toolkit.data.dataset import EpochSampler, RandomChunkDataset
from sv_toolkit.errors import ConfigError
from sv_toolkit.data.manifests import read_speakers
from sv_toolkit.features.store import FbankSettings, FeatureStore
from sv_toolkit.losses import AAMSoftmax, MarginScheduler
from sv_toolkit.model_file import ModelHeader, load_model_file, save_model_file
from sv_toolkit.models import build_model
from sv_toolkit.optim import warmup_exponential
from sv_toolkit.training.checkpoint import latest_checkpoint, load_checkpoint
from sv_toolkit.training.loop import NonFiniteLossError, Trainer, TrainerOptions
from sv_toolkit.training.memory_report import predict_training_memory
from sv_toolkit.stages.train_data import TrainData
from sv_toolkit.training.step import SpeakerNet

CPU = torch.device("cpu")
SCALARS = ["train/loss", "train/accuracy", "train/lr", "train/margin", "train/grad_norm",
           "train/samples_per_second", "epoch/loss", "epoch/accuracy"]
COMPONENTS = ["weights", "grads", "optimizer_states", "activations_saved", "peak_live"]


def _setup(corpus: Path, out_dir: Path, grad_accum: int = 1, checkpoint_every: int = 0, epochs: int = 2):
    torch.manual_seed(0)
    speakers = read_speakers(corpus / "manifests" / "train" / "speakers.tsv")
    store = FeatureStore(corpus / "fbank" / "train")
    dataset = RandomChunkDataset(store, speakers, 40, seed=11)
    sampler = EpochSampler(len(store), 8, seed=11)
    batches = DataLoader(dataset, sampler=sampler, batch_size=8 // grad_accum, drop_last=True)
    loader = TrainData(batches, len(speakers), len(speakers), len(store), sampler.steps_per_epoch, "features",
                       sampler, grad_accum)
    model = build_model("resnet10", base_width=4, embed_dim=16)
    head = AAMSoftmax(16, len(speakers))
    optimizer = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.1, momentum=0.9,
                                nesterov=True, weight_decay=1e-4)
    steps = sampler.steps_per_epoch
    sched = warmup_exponential(optimizer, 1e-3, total_steps=epochs * steps, warmup_steps=3)
    margin = MarginScheduler(head, 0.0, 0.2, 1, 2)
    options = TrainerOptions(epochs=epochs, steps_per_epoch=steps, grad_accum=grad_accum, log_every=1,
                             keep_last=2, checkpoint_every=checkpoint_every, progress=False)
    header = ModelHeader.create({"_target_": "sv_toolkit.models.build_model", "name": "resnet10", "base_width": 4,
                                 "embed_dim": 16}, FbankSettings())
    return Trainer(model, head, optimizer, sched, margin, out_dir, CPU, options, header=header), loader


class _Interrupt(Exception):
    pass


class _FailingLoader:
    """Passes a loader's hooks through; raises (``crash``) or feeds NaN (``nan``) at micro-batch ``at`` of epoch 0."""

    def __init__(self, loader: TrainData, at: int, mode: str) -> None:
        self.loader, self.at, self.mode, self.epoch = loader, at, mode, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for i, (feats, labels) in enumerate(self.loader):
            if self.epoch == 0 and i == self.at:
                if self.mode == "crash":
                    raise _Interrupt
                feats = torch.full_like(feats, float("nan"))
            yield feats, labels


def _states_equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


@pytest.fixture(scope="module")
def uninterrupted(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    trainer, loader = _setup(tiny_corpus, out, checkpoint_every=4)
    prediction = predict_training_memory(trainer.net, lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
                                         8, 40, 80, 6, CPU)
    trainer.log_prediction(prediction)
    trainer.fit(loader)
    trainer.close()
    return out, trainer


def test_mid_epoch_resume_gives_the_uninterrupted_weights(tiny_corpus, tmp_path, uninterrupted):
    full_dir, full = uninterrupted
    crashed, loader = _setup(tiny_corpus, tmp_path, checkpoint_every=4)
    with pytest.raises(_Interrupt):
        crashed.fit(_FailingLoader(loader, at=5, mode="crash"))  # after the step-4 checkpoint
    crashed.close()
    latest = latest_checkpoint(tmp_path / "checkpoints")
    assert latest is not None and latest.name == "mid_epoch_001_step_000004.pt"
    resumed, loader = _setup(tiny_corpus, tmp_path, checkpoint_every=4)
    resumed.resume(latest)
    assert (resumed.epoch, resumed.step_in_epoch, resumed.global_step) == (0, 4, 4)
    resumed.fit(loader)
    resumed.close()
    assert resumed.global_step == full.global_step == 12
    a = load_checkpoint(full_dir / "checkpoints" / "epoch_002.pt")
    b = load_checkpoint(tmp_path / "checkpoints" / "epoch_002.pt")
    assert _states_equal(a["model"], b["model"]) and _states_equal(a["head"], b["head"])  # bitwise
    assert a["lr_scheduler"] == b["lr_scheduler"] and a["margin_scheduler"] == b["margin_scheduler"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


def test_checkpoints_hold_position_and_every_rank_rng(uninterrupted):
    out, _ = uninterrupted
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["epoch_001.pt", "epoch_002.pt"]  # mid-epoch ones are superseded by the epoch end
    state = load_checkpoint(out / "checkpoints" / "epoch_002.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"], state["world_size"]) == (2, 0, 12, 1)
    assert len(state["rng"]) == 1 and {"torch", "numpy", "python"} <= set(state["rng"][0])


def test_tensorboard_has_every_scalar(uninterrupted):
    out, _ = uninterrupted
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = SCALARS + [f"memory/{kind}/{c}" for kind in ("predicted", "measured") for c in COMPONENTS]
    assert set(expected) <= tags, sorted(set(expected) - tags)
    assert len(acc.Scalars("train/loss")) == 12 and len(acc.Scalars("epoch/loss")) == 2
    assert all(e.value > 0 for e in acc.Scalars("memory/measured/peak_live"))
    lrs = [e.value for e in acc.Scalars("train/lr")]
    assert lrs[0] == 0.0 and lrs[3] == pytest.approx(0.1 * 0.01 ** (3 / 12))  # warm-up from 0, then decay
    assert (out / "train.log").read_text().count("epoch 2 step 6/6") == 1


def test_nan_guard_names_the_step_and_the_last_good_checkpoint(tiny_corpus, tmp_path):
    trainer, loader = _setup(tiny_corpus, tmp_path, checkpoint_every=4)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(_FailingLoader(loader, at=4, mode="nan"))
    trainer.close()
    msg = str(err.value)
    assert "the loss is nan at step 5 (epoch 1, step 5 of 6)" in msg
    assert str(tmp_path / "checkpoints" / "mid_epoch_001_step_000004.pt") in msg
    saved = load_checkpoint(tmp_path / "checkpoints" / "mid_epoch_001_step_000004.pt")
    # the bad step applied no update (BatchNorm buffers did see the NaN batch: resume from the checkpoint)
    assert all(torch.equal(saved["model"][n], p) for n, p in trainer.model.named_parameters())


def test_loader_that_runs_short_is_named(tiny_corpus, tmp_path):
    trainer, loader = _setup(tiny_corpus, tmp_path, grad_accum=2)
    short = [batch for _, batch in zip(range(3), loader)]
    with pytest.raises(RuntimeError, match="ran out in epoch 1 at step 2"):
        trainer.fit(short)
    trainer.close()


def test_fine_tuning_without_speed_copies_keeps_the_unperturbed_head_rows(tiny_corpus, tmp_path):
    trainer, _ = _setup(tiny_corpus, tmp_path / "ft")
    head = trainer.head.weight
    tripled = torch.randn(3 * head.shape[0], head.shape[1])  # speaker + k x speakers, k = 0 unperturbed
    model_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    save_model_file(tmp_path / "avg.pt", {"model": model_state, "head": {"weight": tripled}}, trainer.header)
    trainer.load_weights(tmp_path / "avg.pt")
    assert torch.equal(trainer.head.weight.detach(), tripled[: head.shape[0]])
    save_model_file(tmp_path / "bad.pt", {"model": model_state, "head": {"weight": tripled[:-1]}}, trainer.header)
    with pytest.raises(ValueError, match="not a multiple"):
        trainer.load_weights(tmp_path / "bad.pt")
    trainer.close()


def test_checkpoints_carry_the_header_and_resume_refuses_other_features(tiny_corpus, tmp_path, uninterrupted):
    full_dir, full = uninterrupted
    path = full_dir / "checkpoints" / "epoch_002.pt"
    header, state = load_model_file(path)  # torch.load(weights_only=True): RNG states are tensors
    assert header == full.header and isinstance(state["rng"][0]["numpy"]["key"], torch.Tensor)
    trainer, _ = _setup(tiny_corpus, tmp_path)
    trainer.header = dataclasses.replace(trainer.header, features=FbankSettings(frame_shift_ms=12.0).recipe())
    with pytest.raises(ConfigError, match=r"epoch_002.pt was written with features .*'frame_shift_ms': 10.0"):
        trainer.resume(path)
    trainer.close()
