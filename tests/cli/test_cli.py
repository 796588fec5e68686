"""The command-line tools on a tiny experiment (tests/eval_experiment.py)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eval_experiment import MODEL_SYSTEM, build_experiment

from sv_toolkit.cli import compute_metrics, embed, export, make_table, verify
from sv_toolkit.scoring import load_embeddings


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return build_experiment(tmp_path_factory.mktemp("cli"))


def test_compute_metrics_reproduces_the_score_stage(exp, tmp_path, capsys):
    d = exp.system(MODEL_SYSTEM) / "score"
    trials = exp.root / "data" / "manifests" / "trials" / "minivox_O.txt"
    assert compute_metrics.main([str(d / "minivox_O.scores"), "--trials", str(trials), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    expected = json.loads((d / "metrics.json").read_text())["minivox_O"]
    got = json.loads((tmp_path / "m.json").read_text())
    for key in ("eer", "min_dcf_0.01", "min_dcf_0.05"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6)
    assert f"EER: {100 * expected['eer']:.4f}%" in out and "\nCllr:" not in out
    assert compute_metrics.main([str(d / "minivox_O.llr.scores"), "--llr", "--det", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "actDCF" in out and "\nCllr:" in out and (tmp_path / "d.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "lines,trials,message",
    [
        (["a b 0.1 1", "a c 0.3 1"], None, "no non-target trials"),
        (["a b 0.1 0", "a c 0.3 0"], None, "no target trials"),
        (["a b nan 0", "a c 0.3 1"], None, "not finite"),
        (["a b 0.1", "a c 0.3"], None, "no label column; give the trial list"),
        (["a b 0.1", "a c 0.3"], ["1 a b", "0 a zz"], "trial 2 (a zz) has no score"),
    ],
)
def test_compute_metrics_edge_cases_exit_with_a_message(tmp_path, capsys, lines, trials, message):
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    args = [str(tmp_path / "s.txt")]
    if trials:
        (tmp_path / "t.txt").write_text("\n".join(trials) + "\n")
        args += ["--trials", str(tmp_path / "t.txt")]
    assert compute_metrics.main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def test_make_table_writes_tables_plot_and_readme_block(exp, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- make_table:minivox -->\nold table\n<!-- /make_table:minivox -->\nend\n")
    figures = tmp_path / "docs"
    args = [str(exp.data_exp), "--out", str(tmp_path / "out"), "--readme", str(readme), "--figures", str(figures)]
    assert make_table.main(args) == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n<!-- make_table:minivox -->\n### minivox (")
    assert "| baseline_fbank_stats |" in text and "![DET curves](docs/det_minivox.png)" in text and text.endswith("end\n")
    assert (figures / "det_minivox.png").is_file() and (tmp_path / "out" / "results.json").is_file()
    # The same files as the table stage's, from the same code.
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["system"] for r in rows} == {"baseline_fbank_stats", MODEL_SYSTEM}
    (tmp_path / "other.md").write_text("no markers\n")
    assert make_table.main([str(exp.data_exp), "--no-plot", "--out", str(tmp_path / "o2"), "--readme",
                            str(tmp_path / "other.md")]) == 2
    assert "has no block '<!-- make_table:minivox -->'" in capsys.readouterr().err


def test_make_table_of_chosen_system_folders(exp, tmp_path):
    assert make_table.main([str(exp.system(MODEL_SYSTEM)), "--no-plot", "--out", str(tmp_path), "--title", "one"]) == 0
    md = (tmp_path / "results.md").read_text()
    assert md.startswith("### one") and "baseline" not in md and not (tmp_path / "det.png").exists()


def test_sv_verify_console_script(exp):
    wavs = sorted(exp.wavs)
    same = [str(exp.wavs[wavs[0]]), str(exp.wavs[wavs[1]])]
    exe = Path(sys.executable).parent / "sv-verify"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sv_toolkit.cli.verify"]
    proc = subprocess.run(cmd + ["--exp-dir", str(exp.system(MODEL_SYSTEM)), "--device", "cpu", *same],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "score:" in proc.stdout and "llr:" in proc.stdout and "Bayes threshold at p_target 0.01" in proc.stdout


def test_sv_verify_threshold_and_errors(exp, capsys):
    a, b = (str(exp.wavs[k]) for k in sorted(exp.wavs)[:2])
    model = str(exp.checkpoint)
    assert verify.main(["--model", model, "--threshold", "-1.0", "--device", "cpu", a, b]) == 0
    assert "decision: same speaker (cosine score >= -1)" in capsys.readouterr().out
    assert verify.main(["--model", model, "--threshold", "1.01", "--device", "cpu", a, b]) == 0
    assert "decision: different speakers" in capsys.readouterr().out
    assert verify.main(["--model", model, "--device", "cpu", a, b]) == 2
    assert "give --threshold" in capsys.readouterr().err
    assert verify.main(["--model", model, "--threshold", "0", a, "/no/such.wav"]) == 2
    assert "/no/such.wav" in capsys.readouterr().err


def test_sv_embed_matches_the_embed_stage(exp, tmp_path, capsys):
    keys = sorted(exp.wavs)
    (tmp_path / "list.txt").write_text("".join(f"{k} {exp.wavs[k]}\n" for k in keys))
    out = tmp_path / "e.npz"
    assert embed.main(["--model", str(exp.checkpoint), "--list", str(tmp_path / "list.txt"), "--out", str(out),
                       "--device", "cpu"]) == 0
    got_keys, got = load_embeddings(out)
    stage_keys, stage = load_embeddings(exp.system(MODEL_SYSTEM) / "embed" / "test.npz")
    row = {k: i for i, k in enumerate(stage_keys)}
    assert got_keys == keys and not (tmp_path / "e.npz.partial").exists()
    np.testing.assert_allclose(got, stage[[row[k] for k in keys]], atol=1e-6)
    (tmp_path / "bad.txt").write_text("a b c\n")
    assert embed.main(["--model", str(exp.checkpoint), "--list", str(tmp_path / "bad.txt"), "--out", str(out)]) == 2
    assert "bad.txt: line 1" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".ts", ".onnx"])
def test_sv_export(exp, tmp_path, capsys, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime", reason="ONNX checks need the [export] extra")
    out = tmp_path / f"m{suffix}"
    assert export.main(["--model", str(exp.checkpoint), "--out", str(out)]) == 0
    assert out.is_file() and "max |exported - eager|" in capsys.readouterr().out
    shutil.rmtree(tmp_path)
