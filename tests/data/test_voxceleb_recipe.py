"""recipes/voxceleb/run.sh on fake VoxCeleb trees: prepare, shards, a short training, then baseline, embeddings,
scores and table; and its convert stage (m4a -> wav, needs ffmpeg) on its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from fake_corpora import FFMPEG, make_musan, make_rirs, make_voxceleb_tree, voxceleb_speakers, write_trial_list


def _recipe(repo_root: Path, *args: str) -> None:
    proc = subprocess.run(["bash", str(repo_root / "recipes" / "voxceleb" / "run.sh"), *args],
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_voxceleb_recipe_data_stages_and_training(repo_root, tmp_path):
    d = tmp_path / "data"
    # VoxCeleb2 dev as the convert stage leaves it (that stage is the test below): 4 speakers, 3 utterances each.
    make_voxceleb_tree(d / "voxceleb2_dev" / "wav", voxceleb_speakers(4), videos=1, utts=3, seconds=2.5)
    vox1 = make_voxceleb_tree(d / "voxceleb1" / "wav", voxceleb_speakers(2, version=1), videos=1, utts=2, seed=7)
    write_trial_list(d / "voxceleb1" / "sample.txt", vox1)  # 6 pairs: 2 target, 4 nontarget
    make_musan(d / "musan")
    make_rirs(d / "RIRS_NOISES" / "simulated_rirs")
    overrides = [f"data.dir={d}", f"exp_root={tmp_path}/exp", "~data.trials",
                 f"+data.trials={{sample: {d}/voxceleb1/sample.txt}}", "preparation.shard_size=5",
                 "preparation.num_workers=2",
                 "trainer.epochs=1", "trainer.batch_size=4", "trainer.num_workers=2", "trainer.chunk_frames=100",
                 "trainer.measure_memory=false", "trainer.average_last=1", "model=resnet10", "model.base_width=4",
                 "progress=false"]
    _recipe(repo_root, "--stage", "2", "--stop_stage", "3", *overrides)
    _recipe(repo_root, "--stage", "5", "--stop_stage", "5", *overrides)
    # baseline, embeddings (fbank from the audio), scoring and the table of the trained system
    _recipe(repo_root, "--stage", "4", "--systems", "voxceleb_resnet34", *overrides)
    exp = tmp_path / "exp" / "voxceleb"
    for system in ("baseline_fbank_stats", "resnet34"):
        metrics = json.loads((exp / system / "score" / ".done").read_text())["summary"]["sample"]
        scores = (exp / system / "score" / "sample.scores").read_text().splitlines()
        assert 0.0 <= metrics["eer"] <= 1.0 and len(scores) == 6
    assert "resnet34" in (exp / "results.md").read_text()
    summary = json.loads((d / "manifests" / "summary.json").read_text())
    assert summary["train"] == {"speakers": 4, "utterances": 12, "hours": summary["train"]["hours"]}
    assert summary["musan"]["files"] == 8 and summary["rirs"]["files"] == 8
    shards = (d / "shards" / "train" / "shards.tsv").read_text().splitlines()[1:]
    assert [int(line.split("\t")[1]) for line in shards] == [5, 5, 2]
    train = json.loads((tmp_path / "exp" / "voxceleb" / "resnet34" / "train" / "summary.json").read_text())
    assert train["steps"] == 3 and train["final_loss"] == train["final_loss"]  # 12 // 4 steps; not NaN


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not on PATH (apt-get install ffmpeg)")
def test_voxceleb_recipe_convert_stage(repo_root, tmp_path):
    d = tmp_path / "data"
    keys = make_voxceleb_tree(d / "voxceleb2" / "dev" / "aac", voxceleb_speakers(2), videos=1, utts=2,
                              seconds=1.5, suffix=".m4a")
    _recipe(repo_root, "--stop_stage", "1", f"data.dir={d}", "progress=false")
    wav = d / "voxceleb2_dev" / "wav"
    assert sorted(p.relative_to(wav).as_posix() for p in wav.rglob("*.wav")) == sorted(
        k.replace(".m4a", ".wav") for k in keys)
    info = sf.info(str(wav / keys[0].replace(".m4a", ".wav")))
    assert info.samplerate == 16000 and info.channels == 1 and abs(info.duration - 1.5) < 0.05
    assert json.loads((wav / ".done").read_text())["summary"]["converted"] == 4
