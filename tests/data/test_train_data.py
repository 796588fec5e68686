"""build_train_data: the three training inputs (stored fbank, raw audio, shards) from the config, and a train run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from fake_corpora import make_musan, make_rirs, make_voxceleb_tree, voxceleb_speakers, write_trial_list
from sv_toolkit.stages import prepare as prepare_stage
from sv_toolkit.stages import shard as shard_stage
from sv_toolkit.stages import train as train_stage
from sv_toolkit.stages.features import run as features_run
from sv_toolkit.stages.train_data import build_train_data

CONF = Path(__file__).resolve().parents[2] / "conf"
SPEAKERS = 5


def compose_cfg(stage: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=stage, overrides=["progress=false", *overrides])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Prepared manifests (5 fake speakers x 4 utterances of 1.2-2.5 s; a fake VoxCeleb1 test set), MUSAN / RIR
    lists, stored fbank and audio shards."""
    root = tmp_path_factory.mktemp("traindata")
    wav = root / "wav"
    for i in range(SPEAKERS):
        make_voxceleb_tree(wav, [f"id0{i + 1:04d}"], videos=2, utts=2, seconds=1.2 + 0.3 * i, seed=100 * i)
    make_musan(root / "musan")
    make_rirs(root / "rirs")
    vox1 = root / "voxceleb1"
    trials = write_trial_list(root / "trials.txt", make_voxceleb_tree(vox1, voxceleb_speakers(2, version=1),
                                                                      videos=1, utts=2, seed=900))
    base = [f"data.dir={root}/data", f"data.train_audio_dir={wav}", f"data.test_audio_dir={vox1}", "~data.trials",
            f"+data.trials={{t: {trials}}}", f"data.musan_dir={root / 'musan'}", f"data.rirs_dir={root / 'rirs'}",
            "data.min_seconds=1.0", "trainer.num_workers=0", "trainer.device=cpu"]
    prepare_stage.run(compose_cfg("prepare", ["data=voxceleb", "preparation.num_workers=1", *base]))
    features_run(compose_cfg("features", ["data=voxceleb", "data.feature_splits=[train,test]", *base]))
    shard_stage.run(compose_cfg("shard", ["data=voxceleb", "preparation.shard_size=6", "preparation.num_workers=1",
                                          *base]))
    return root, base


def _batches(data, epoch: int = 0):
    data.set_epoch(epoch)
    return [(f, y) for f, y in data.loader]


def test_stored_features_mode(corpus):
    _, base = corpus
    cfg = compose_cfg("train", ["data=voxceleb", "data.train_format=features", "augment=none",
                                "trainer.batch_size=3", "trainer.chunk_frames=50", "trainer.chunks_per_utterance=2",
                                *base])
    data = build_train_data(cfg)
    assert (data.num_utterances, data.num_classes, data.steps_per_epoch) == (20, SPEAKERS, 13)  # 40 // 3
    batches = _batches(data)
    assert len(batches) == 13 and batches[0][0].shape == (3, 50, 80)
    assert [y.tolist() for _, y in batches] != [y.tolist() for _, y in _batches(data, 1)]
    cfg = compose_cfg("train", ["data=voxceleb", "data.train_format=features", "augment=wespeaker", *base])
    with pytest.raises(ValueError, match="augment=wespeaker perturbs waveforms, but the training input is stored"):
        build_train_data(cfg)


@pytest.mark.parametrize("fmt", ["raw", "shards"])
def test_audio_modes_with_wespeaker_augmentation(corpus, fmt):
    _, base = corpus
    cfg = compose_cfg("train", ["data=voxceleb", f"data.train_format={fmt}", "augment=wespeaker",
                                "trainer.batch_size=4", *base])
    ranks = [build_train_data(cfg, rank=r, world_size=2) for r in range(2)]
    assert all(d.num_classes == 3 * SPEAKERS and d.steps_per_epoch == 2 for d in ranks)  # 20 // 2 // 4
    labels = []
    for d in ranks:
        for feats, y in _batches(d):
            assert feats.shape == (4, 200, 80) and torch.isfinite(feats).all()
            assert feats.mean(dim=1).abs().max() < 1e-3  # CMN per chunk
            labels += y.tolist()
    assert len(labels) == 16 and all(0 <= y < 3 * SPEAKERS for y in labels)
    assert len({y % SPEAKERS for y in labels}) > 1
    # determinism: the same seed gives the same first batch
    again = build_train_data(cfg, rank=0, world_size=2)
    torch.testing.assert_close(_batches(again)[0][0], _batches(ranks[0])[0][0])


def test_speed_copies_can_keep_their_speaker_labels(corpus):
    _, base = corpus
    cfg = compose_cfg("train", ["data=voxceleb", "data.train_format=raw", "augment=wespeaker",
                                "augment.speed.as_new_speakers=false", "trainer.batch_size=4", *base])
    assert build_train_data(cfg).num_classes == SPEAKERS


def test_train_stage_runs_on_augmented_shards(corpus):
    root, base = corpus
    cfg = compose_cfg("train", ["experiment=voxceleb_resnet34", "model=resnet10", "model.base_width=4",
                                "trainer.batch_size=4", "trainer.epochs=2", "trainer.chunk_frames=50",
                                "trainer.measure_memory=false", "trainer.average_last=1", "sched.warmup_epochs=0",
                                f"exp_root={root}/exp", *base])
    train_stage.run(cfg)
    summary = json.loads((Path(cfg.exp_dir) / "train" / "summary.json").read_text())
    assert summary["steps"] == 2 * 5 and summary["final_loss"] == summary["final_loss"]  # 20 // 4 steps, not NaN
