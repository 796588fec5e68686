"""End to end: the minivox recipe at a tiny size, through recipes/minivox/run.sh and the stage scripts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("espeakng_loader", reason="minivox synthesis needs the [demo] extra (espeakng-loader)")

TINY = [
    "data.synthesis.num_train_speakers=6",
    "data.synthesis.num_test_speakers=6",
    "data.synthesis.utts_per_speaker=4",
    "data.synthesis.sessions_per_speaker=2",
    "data.synthesis.trials_o=20",
    "data.synthesis.trials_e=30",
    "data.synthesis.trials_h=10",
    "trainer.epochs=1",
    "trainer.batch_size=8",
    "trainer.chunks_per_utterance=1",
    "trainer.average_last=1",
    "model.base_width=4",
    "progress=false",
]


def _env() -> dict[str, str]:
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PYTHON=sys.executable)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _script(repo: Path, stage: str, *overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / f"{stage}.py"), *overrides],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def recipe_run(repo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("minivox")
    paths = [f"data.dir={tmp}/data", f"exp_root={tmp}/exp"]
    proc = subprocess.run(
        ["bash", str(repo_root / "recipes" / "minivox" / "run.sh"), *paths, *TINY],
        env=_env(), capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return tmp, paths, proc


def test_recipe_writes_table_and_results_json(recipe_run):
    tmp, _, proc = recipe_run
    results = tmp / "exp" / "minivox" / "results.json"
    table = tmp / "exp" / "minivox" / "results.md"
    assert str(results) in proc.stdout and str(table) in proc.stdout
    rows = json.loads(results.read_text())
    systems = {r["system"] for r in rows}
    assert systems == {"baseline_fbank_stats", "resnet10_w8", "revnet10_ii_w8"}
    assert {r["trial_list"] for r in rows} == {"minivox_O", "minivox_E", "minivox_H"}
    for r in rows:
        assert 0.0 <= r["eer"] <= 1.0 and 0.0 <= r["min_dcf_0.01"] <= 1.0 + 1e-9 and 0 <= r["min_dcf_0.05"] <= 1 + 1e-9
        if r["system"].startswith("baseline"):
            assert r["params"] == 0
        else:
            assert r["params"] > 0 and r["train_memory_bytes"] > 0
    md = table.read_text()
    assert "| baseline_fbank_stats |" in md and "minivox_H EER%" in md


def test_recipe_outputs_are_labelled_synthetic_and_logged(recipe_run):
    tmp, _, _ = recipe_run
    corpus = tmp / "data" / "corpus"
    assert "synthetic" in (corpus / "SYNTHETIC.md").read_text().lower()
    train_dir = tmp / "exp" / "minivox" / "resnet10_w8" / "train"
    assert (train_dir / "model_avg.pt").is_file() and list((train_dir / "tensorboard").glob("events.*"))
    assert (tmp / "exp" / "minivox" / "resnet10_w8" / "logs" / "train" / "train.log").is_file()


def test_finished_stage_is_skipped_unless_overwrite(recipe_run, repo_root):
    tmp, paths, _ = recipe_run
    proc = _script(repo_root, "train", "experiment=minivox_resnet10", *paths, *TINY, cwd=tmp)
    assert proc.returncode == 0 and "already done; skipping" in proc.stdout + proc.stderr


def test_misspelt_key_is_named(recipe_run, repo_root):
    tmp, paths, _ = recipe_run
    proc = _script(repo_root, "train", "experiment=minivox_resnet10", "trainer.epoch=3", *paths, cwd=tmp)
    assert proc.returncode != 0 and "trainer.epoch" in proc.stderr


def test_trial_with_unknown_utterance_stops_prepare_and_writes_nothing(recipe_run, repo_root, tmp_path):
    tmp, _, _ = recipe_run
    bad = tmp_path / "bad_trials.txt"
    bad.write_text("1 syn00001/sess0000001/00001.wav syn99999/nosession/00001.wav\n")
    out = tmp_path / "data"
    proc = _script(
        repo_root, "prepare", f"data.dir={out}", f"data.corpus_dir={tmp}/data/corpus",
        f"+data.trials.extra={bad}", cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "bad_trials.txt:1" in proc.stderr and "syn" in proc.stderr
    assert not (out / "manifests").exists()


def test_missing_corpus_folder_is_named(repo_root, tmp_path):
    proc = _script(repo_root, "prepare", f"data.dir={tmp_path}/nothing", cwd=tmp_path)
    assert proc.returncode != 0 and f"{tmp_path}/nothing/corpus/wav does not exist" in proc.stderr


@pytest.mark.parametrize("flag", ["--help", "--cfg=job"])
def test_stage_scripts_show_their_config(repo_root, tmp_path, flag):
    args = ["--cfg", "job"] if flag == "--cfg=job" else [flag]
    proc = _script(repo_root, "train", *args, cwd=tmp_path)
    assert proc.returncode == 0 and "batch_size" in proc.stdout
