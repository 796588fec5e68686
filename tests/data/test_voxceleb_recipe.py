"""recipes/voxceleb/run.sh on a fake VoxCeleb tree: convert, prepare, shards, a short training, then baseline,
embeddings, scores and table."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fake_corpora import FFMPEG, make_m4a, make_musan, make_rirs, make_voxceleb_tree


@pytest.mark.slow
@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not on PATH (apt-get install ffmpeg)")
def test_voxceleb_recipe_data_stages_and_training(repo_root, shared_data, tmp_path):
    d = tmp_path / "data"
    aac = d / "voxceleb2" / "dev" / "aac"
    for s in range(4):
        for u in range(3):
            make_m4a(aac / f"id0{s + 1:04d}" / f"vid{s:08d}" / f"{u + 1:05d}.m4a", seconds=2.0 + 0.5 * u,
                     frequency=200 + 150 * s + 20 * u)  # speakers differ: the cohort must not be degenerate
    make_voxceleb_tree(d / "voxceleb1" / "wav", ["id10001", "id10002"], videos=1, utts=2)
    (d / "voxceleb1" / "sample.txt").write_text(
        "1 id10001/vid000_00x/00001.wav id10001/vid000_00x/00002.wav\n"
        "0 id10001/vid000_00x/00001.wav id10002/vid001_00x/00001.wav\n")
    make_musan(d / "musan")
    make_rirs(d / "RIRS_NOISES" / "simulated_rirs")
    overrides = [f"data.dir={d}", f"exp_root={tmp_path}/exp", "~data.trials",
                 f"+data.trials={{sample: {d}/voxceleb1/sample.txt}}", "preparation.shard_size=5",
                 "preparation.num_workers=2",
                 "trainer.epochs=1", "trainer.batch_size=4", "trainer.num_workers=2", "trainer.chunk_frames=100",
                 "trainer.measure_memory=false", "trainer.average_last=1", "model=resnet10", "model.base_width=4",
                 "progress=false"]
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(repo_root / "recipes" / "voxceleb" / "run.sh"), "--stop_stage", "3",
                           *overrides], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = subprocess.run(["bash", str(repo_root / "recipes" / "voxceleb" / "run.sh"), "--stage", "5",
                           "--stop_stage", "5", *overrides], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # baseline, embeddings (fbank from the audio), scoring and the table of the trained system
    proc = subprocess.run(["bash", str(repo_root / "recipes" / "voxceleb" / "run.sh"), "--stage", "4",
                           "--systems", "voxceleb_resnet34", *overrides], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    exp = tmp_path / "exp" / "voxceleb"
    for system in ("baseline_fbank_stats", "resnet34"):
        metrics = json.loads((exp / system / "score" / ".done").read_text())["summary"]["sample"]
        scores = (exp / system / "score" / "sample.scores").read_text().splitlines()
        assert 0.0 <= metrics["eer"] <= 1.0 and len(scores) == 2
    assert "resnet34" in (exp / "results.md").read_text()
    summary = json.loads((d / "manifests" / "summary.json").read_text())
    assert summary["train"] == {"speakers": 4, "utterances": 12, "hours": summary["train"]["hours"]}
    assert summary["musan"]["files"] == 8 and summary["rirs"]["files"] == 8
    shards = (d / "shards" / "train" / "shards.tsv").read_text().splitlines()[1:]
    assert [int(line.split("\t")[1]) for line in shards] == [5, 5, 2]
    train = json.loads((tmp_path / "exp" / "voxceleb" / "resnet34" / "train" / "summary.json").read_text())
    assert train["steps"] == 3 and train["final_loss"] == train["final_loss"]  # 12 // 4 steps; not NaN
