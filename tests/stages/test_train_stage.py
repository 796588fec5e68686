"""The train stage end to end on a tiny synthetic FeatureStore: torchrun DDP equals one process with gradient
accumulation, kill -9 + resume equals an uninterrupted run, outputs, knobs and their errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sv_toolkit
from sv_toolkit.features import FbankSettings
from sv_toolkit.model_file import load_model_file
from sv_toolkit.stages import train
from sv_toolkit.training.checkpoint import load_checkpoint

from tiny_training import REPO, run_train, stage_env, stage_overrides, write_tiny_corpus

torch.set_num_threads(1)  # the in-process stage runs train tiny models (subprocesses get OMP_NUM_THREADS=1)

# 1 process x batch 8 in 2 micro-batches of 4 == 2 processes x batch 4: same micro-batches (EpochSampler),
# same BatchNorm statistics (each over the same 4 samples), gradient = mean of the two micro-batch gradients.
COMMON = ["trainer.deterministic=true", "trainer.checkpoint_every=2"]
ONE_PROCESS = ["trainer.batch_size=8", "trainer.grad_accum=2", *COMMON]
TWO_PROCESSES = ["trainer.batch_size=4", *COMMON]


def _train_dir(exp_root: Path, system: str = "resnet10") -> Path:
    return exp_root / "minivox" / system / "train"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """One uninterrupted single-process run: 2 epochs x 6 steps of 2 micro-batches."""
    exp = tmp_path_factory.mktemp("reference")
    proc = run_train(stage_overrides(corpus, exp, *ONE_PROCESS), cwd=exp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _train_dir(exp)


def _losses(train_dir: Path) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(train_dir / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("train/loss")]


def _params_and_buffers(train_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    state = load_checkpoint(train_dir / "checkpoints" / "epoch_002.pt")
    named = {f"{k}.{n}": t for k in ("model", "head") for n, t in state[k].items()}
    buffers = {n: t for n, t in named.items() if "running_" in n or "num_batches_tracked" in n}
    return {n: t for n, t in named.items() if n not in buffers}, buffers


def _assert_same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        # Measured: bitwise equal (2-core CPU, 1 thread per process). The gloo all-reduce adds the same two
        # halves that accumulation adds; 1e-6 allows a platform whose kernels pick another summation order.
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_torchrun_two_processes_equal_one_process_with_accumulation(corpus, reference, tmp_path):
    proc = run_train(stage_overrides(corpus, tmp_path, *TWO_PROCESSES), cwd=tmp_path, torchrun_procs=2)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "gloo threads still run" not in proc.stderr  # both ranks freed the process group before exit
    ddp_params, ddp_buffers = _params_and_buffers(_train_dir(tmp_path))
    ref_params, ref_buffers = _params_and_buffers(reference)
    _assert_same_parameters(ddp_params, ref_params)
    # BatchNorm running statistics differ by design (they never enter training-mode forwards): DDP keeps rank
    # 0's (updated once per step from its 4 samples), accumulation updates them from both micro-batches.
    tracked = [n for n in ddp_buffers if n.endswith("num_batches_tracked")]
    assert tracked and all(ddp_buffers[n] == 12 and ref_buffers[n] == 24 for n in tracked)
    summary = json.loads((_train_dir(tmp_path) / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 8 and summary["steps"] == 12
    # rank 0 alone writes tensorboard and the log (two writers would give two event files, doubled lines)
    assert len(list((_train_dir(tmp_path) / "tensorboard").glob("events.*"))) == 1
    assert (_train_dir(tmp_path) / "train.log").read_text().count("epoch 2/2:") == 1


def test_kill_9_then_resume_gives_the_uninterrupted_weights(corpus, reference, tmp_path):
    script = str(REPO / "scripts" / "train.py")
    ckpts = _train_dir(tmp_path) / "checkpoints"
    victim = subprocess.Popen([sys.executable, script, *stage_overrides(corpus, tmp_path, *ONE_PROCESS)],
                              cwd=tmp_path, env=stage_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(ckpts.glob("mid_epoch_*.pt")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert not (ckpts / "epoch_002.pt").exists(), "the run finished before it could be killed"
    resumed = run_train(stage_overrides(corpus, tmp_path, *ONE_PROCESS), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    got_params, got_buffers = _params_and_buffers(_train_dir(tmp_path))
    ref_params, ref_buffers = _params_and_buffers(reference)
    for name in {**ref_params, **ref_buffers}:  # bitwise, BatchNorm buffers included
        assert torch.equal({**got_params, **got_buffers}[name], {**ref_params, **ref_buffers}[name]), name
    # tensorboard: the killed run's events after its checkpoint are purged, so every step appears once, with
    # the uninterrupted run's loss
    assert _losses(_train_dir(tmp_path)) == _losses(reference)
    averaged = load_checkpoint(_train_dir(tmp_path) / "model_avg.pt")
    ref_avg = load_checkpoint(reference / "model_avg.pt")
    assert all(torch.equal(averaged["model"][n], t) for n, t in ref_avg["model"].items())


def test_stage_writes_log_summary_and_every_scalar(reference):
    summary = json.loads((reference / "summary.json").read_text())
    for kind in ("memory", "memory_predicted"):
        assert set(summary[kind]) == {"weights", "grads", "optimizer_states", "activations_saved", "peak_live"}
        assert all(v > 0 for v in summary[kind].values())
    assert summary["grad_accum"] == 2 and summary["lr_scale"] == 8 / 64
    log = (reference / "train.log").read_text()
    assert "memory prediction for micro-batch 4" in log and "epoch 2/2" in log
    acc = EventAccumulator(str(reference / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("loss", "accuracy", "lr", "margin", "grad_norm", "samples_per_second"):
        assert f"train/{tag}" in tags
    assert {f"memory/{k}/peak_live" for k in ("predicted", "measured")} <= tags
    header, state = load_model_file(reference / "model_avg.pt")
    assert set(state) == {"model", "head"}
    assert header.model_config["name"] == "resnet10" and header.embed_dim == 16
    assert header.fbank_settings() == FbankSettings() and header.sv_toolkit_version == sv_toolkit.__version__


def _run_in_process(corpus: Path, exp_root: Path, *extra: str) -> None:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=stage_overrides(corpus, exp_root, *extra))
    train.run(cfg)


def test_resume_false_starts_an_unfinished_run_again(corpus, reference, tmp_path):
    train_dir = _train_dir(tmp_path)
    (train_dir / "checkpoints").mkdir(parents=True)
    (train_dir / "checkpoints" / "epoch_001.pt").write_bytes((reference / "checkpoints" / "epoch_001.pt").read_bytes())
    (train_dir / "tensorboard").mkdir()
    (train_dir / "tensorboard" / "events.out.tfevents.0.old").write_bytes(b"")
    _run_in_process(corpus, tmp_path, "resume=false", "trainer.epochs=1", "trainer.average_last=1")
    assert not (train_dir / "tensorboard" / "events.out.tfevents.0.old").exists()
    assert [step for step, _ in _losses(train_dir)] == list(range(1, 7))  # 6 fresh steps, nothing resumed


def test_init_from_loads_model_and_head(corpus, reference, tmp_path):
    """Large-margin fine-tuning starts from model_avg.pt: with lr 1e-30 the weights stay those (to 1e-12)."""
    _run_in_process(corpus, tmp_path, f"trainer.init_from={reference / 'model_avg.pt'}", "optim.lr=1e-30",
                    "optim.weight_decay=0.0", "trainer.epochs=1", "trainer.average_last=1", "sched.lr.final_lr=1e-30")
    start = load_checkpoint(reference / "model_avg.pt")
    end = load_checkpoint(_train_dir(tmp_path) / "checkpoints" / "epoch_001.pt")
    for key in ("model", "head"):
        for name, tensor in start[key].items():
            if "running_" not in name and "num_batches" not in name:
                torch.testing.assert_close(end[key][name], tensor, rtol=0, atol=1e-12, msg=name)


@pytest.mark.parametrize("override,message", [
    ("model=revnet10_ii", "trainer.gradient_checkpointing=true: gradient checkpointing is implemented for the vanilla"),
    ("trainer.precision=fp16", "trainer.precision=fp16 needs a CUDA device"),
    ("trainer.grad_accum=3", "trainer.batch_size=8 is not divisible by trainer.grad_accum=3"),
    ("trainer.channels_last=true", "trainer.channels_last=true is for CUDA devices"),
])
def test_bad_knobs_are_named(corpus, tmp_path, override, message):
    extra = [override, "trainer.gradient_checkpointing=true"] if override.startswith("model=") else [override]
    with pytest.raises(ValueError, match=message):
        _run_in_process(corpus, tmp_path, *extra)


def test_gradient_checkpointing_and_bf16_train(corpus, tmp_path):
    _run_in_process(corpus, tmp_path, "trainer.gradient_checkpointing=true", "trainer.precision=bf16",
                    "trainer.epochs=1", "trainer.average_last=1")
    summary = json.loads((_train_dir(tmp_path) / "summary.json").read_text())
    assert summary["precision"] == "bf16" and summary["final_loss"] == summary["final_loss"]


@pytest.mark.slow
def test_torchrun_reversible_model_8bit_optimizer_find_unused(corpus, tmp_path):
    """Type II RevNet + SGD8bit + find_unused_parameters under 2 gloo processes == 1 process (measured: bitwise)."""
    extra = ["model=revnet10_ii", "optim=sgd8bit", "optim.min_8bit_size=256", "trainer.ddp.find_unused_parameters=true"]
    one, two = tmp_path / "one", tmp_path / "two"
    p1 = run_train(stage_overrides(corpus, one, *ONE_PROCESS, *extra), cwd=tmp_path)
    p2 = run_train(stage_overrides(corpus, two, *TWO_PROCESSES, *extra), cwd=tmp_path, torchrun_procs=2)
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr[-3000:] + p2.stderr[-3000:]
    a, _ = _params_and_buffers(_train_dir(one, "revnet10_ii"))
    b, _ = _params_and_buffers(_train_dir(two, "revnet10_ii"))
    _assert_same_parameters(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_channels_last_gradient_checkpointing(corpus, tmp_path):
    _run_in_process(corpus, tmp_path, "trainer.device=cuda", "trainer.precision=fp16", "trainer.channels_last=true",
                    "trainer.gradient_checkpointing=true", "trainer.epochs=1", "trainer.average_last=1")
    summary = json.loads((_train_dir(tmp_path) / "summary.json").read_text())
    assert summary["precision"] == "fp16" and summary["cuda_max_allocated"] > 0
    assert summary["memory"]["peak_live"] > 0 and summary["memory_predicted"]["peak_live"] > 0
    acc = EventAccumulator(str(_train_dir(tmp_path) / "tensorboard"))
    acc.Reload()
    assert {"train/loss_scale", "memory/cuda_max_allocated"} <= set(acc.Tags()["scalars"])
