"""The embed / score / table stages on a tiny experiment (tests/eval_experiment.py), run in-process."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from eval_experiment import MODEL_SYSTEM, TRIAL_LISTS, build_experiment, compose_stage

from sv_toolkit.data.manifests import read_trials
from sv_toolkit.metrics import compute_eer
from sv_toolkit.scoring import load_embedding_arrays, load_embeddings, read_scores
from sv_toolkit.stages import embed, score, table


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return build_experiment(tmp_path_factory.mktemp("eval"))


def test_embed_outputs(exp):
    d = exp.system(MODEL_SYSTEM) / "embed"
    keys, emb = load_embeddings(d / "test.npz")
    assert len(keys) == 12 and emb.shape == (12, 32) and emb.dtype == np.float32
    train = load_embedding_arrays(d / "train.npz")
    assert train["embeddings"].shape == (20, 32) and len(set(train["speakers"])) == 5
    np.testing.assert_allclose(np.load(d / "train_mean.npy"), train["embeddings"].mean(0), atol=1e-6)
    cohort = load_embedding_arrays(d / "cohort.npz")
    assert list(cohort["keys"]) == sorted(set(train["speakers"])) and cohort["counts"].tolist() == [4] * 5
    info = json.loads((d / "info.json").read_text())
    assert info["model"] == "resnet10" and info["cohort_speakers"] == 5 and info["params"] > 0
    assert not list(d.glob(".partial_*"))  # partial output is removed once a split is complete


def test_score_outputs_and_metrics(exp):
    d = exp.system(MODEL_SYSTEM) / "score"
    metrics = json.loads((d / "metrics.json").read_text())
    assert set(metrics) == set(TRIAL_LISTS)
    for name, m in metrics.items():
        raw = read_scores(d / f"{name}.scores")
        assert m["eer"] == pytest.approx(compute_eer(raw.scores, raw.labels), abs=1e-6)  # 6-digit score files
        assert m["asnorm"]["top_n"] == 5 == m["asnorm"]["cohort_size"]  # 300 capped at the 5 training speakers
        assert set(m["calibrated"]) == {"act_dcf_0.01", "act_dcf_0.05", "cllr", "min_cllr"}
        assert "calibrated" in m["asnorm"]
        normed = read_scores(d / f"{name}.asnorm.scores")
        assert normed.enroll == raw.enroll and not np.allclose(normed.scores, raw.scores)
        llr = read_scores(d / f"{name}.llr.scores")
        cal = json.loads((d / "calibration.json").read_text())["cosine"]
        np.testing.assert_allclose(llr.scores, cal["scale"] * raw.scores + cal["offset"], atol=2e-5)
    assert len(read_trials(exp.root / "data" / "manifests" / "trials" / "minivox_O.txt")) == 66  # 12 test utterances


def test_audio_features_give_the_store_embeddings(exp, tmp_path):
    cfg = compose_stage("embed", exp.overrides + [
        "experiment=minivox_resnet10", "model.base_width=4", "model.embed_dim=32", "embed.features=audio",
        f"exp_dir={tmp_path}/audio", f"embed.checkpoint={exp.checkpoint}",
    ])
    embed.run(cfg)
    _, audio = load_embeddings(tmp_path / "audio" / "embed" / "test.npz")
    _, stored = load_embeddings(exp.system(MODEL_SYSTEM) / "embed" / "test.npz")
    np.testing.assert_allclose(audio, stored, atol=1e-6)  # the same fbank code on the same samples: measured 0.0


def test_interrupted_embed_stage_reuses_finished_splits(exp, tmp_path, caplog):
    args = exp.overrides + ["experiment=baseline", f"exp_dir={tmp_path}/b"]
    embed.run(compose_stage("embed", args))
    d = tmp_path / "b" / "embed"
    (d / ".done").unlink()
    (d / "train.npz").unlink()  # as if killed while the training set was being embedded
    before = (d / "test.npz").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        embed.run(compose_stage("embed", args))
    assert "reusing" in caplog.text and (d / "test.npz").stat().st_mtime_ns == before
    assert (d / "train.npz").is_file() and (d / ".done").is_file()


@pytest.mark.parametrize("norm", ["snorm", "none"])
def test_score_norm_options(exp, tmp_path, norm):
    src = exp.system("baseline_fbank_stats")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "embed").symlink_to(src / "embed")
    cfg = compose_stage("score", exp.overrides + [
        "experiment=baseline", f"exp_dir={tmp_path}/s", f"scoring.norm={norm}", "scoring.calibration.enabled=false"])
    score.run(cfg)
    m = json.loads((tmp_path / "s" / "score" / "metrics.json").read_text())["minivox_O"]
    assert ("snorm" in m) == (norm == "snorm") and "calibrated" not in m and "asnorm" not in m
    with pytest.raises(ValueError, match="scoring.norm='znorm'"):
        score.run(compose_stage("score", exp.overrides + ["experiment=baseline", f"exp_dir={tmp_path}/z",
                                                          "scoring.norm=znorm"]))


def test_table_stage_writes_the_contract_files(exp, capsys):
    table.run(compose_stage("table", exp.overrides))
    out = capsys.readouterr().out
    rows = json.loads((exp.data_exp / "results.json").read_text())
    assert str(exp.data_exp / "results.json") in out and str(exp.data_exp / "results.md") in out
    assert {r["system"] for r in rows} == {"baseline_fbank_stats", MODEL_SYSTEM}
    for r in rows:
        assert {"system", "trial_list", "eer", "min_dcf_0.01", "min_dcf_0.05"} <= set(r)
        assert {"eer", "min_dcf_0.01", "calibrated"} <= set(r["asnorm"])
    md = (exp.data_exp / "results.md").read_text()
    assert md.index("| baseline_fbank_stats |") < md.index(f"| {MODEL_SYSTEM} |")
    assert "+ AS-norm (top 5 of 5)" in md and "![DET curves](det.png)" in md
    assert (exp.data_exp / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
