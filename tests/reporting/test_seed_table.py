"""seed_table over hand-made experiment roots: per-seed figures, mean ± sd, intervals, JSON, README block."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from sv_toolkit.cli.seed_table import main
from sv_toolkit.metrics import verification_metrics

SPEAKERS = [f"spk{i}" for i in range(8)]


def _keys() -> list[str]:
    return [f"{s}/v1/{u:05d}.wav" for s in SPEAKERS for u in range(4)]


def _write_manifest(path: Path) -> None:
    path.parent.mkdir(parents=True)
    lines = ["key\tspeaker\tpath\tnum_samples\tsample_rate\tduration"]
    lines += [f"{k}\t{k.split('/')[0]}\t/x/{k}\t16000\t16000\t1.000" for k in _keys()]
    path.write_text("\n".join(lines) + "\n")


def _write_system(root: Path, system: str, separation: float, seed: int) -> dict:
    keys = _keys()
    rng = np.random.default_rng(seed)
    d = root / "toy" / system
    (d / "score").mkdir(parents=True)
    (d / "embed").mkdir()
    (d / "train").mkdir()
    rows, scores, labels = [], [], []
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            y = int(keys[i].split("/")[0] == keys[j].split("/")[0])
            s = separation * y + rng.normal()
            rows.append(f"{keys[i]} {keys[j]} {s:.6f} {y}")
            scores.append(round(s, 6))
            labels.append(y)
    (d / "score" / "toy_all.scores").write_text("\n".join(rows) + "\n")
    m = verification_metrics(np.array(scores), np.array(labels))
    (d / "score" / "metrics.json").write_text(json.dumps({"toy_all": m}))
    (d / "embed" / "info.json").write_text(json.dumps({"system": system, "model": "m", "params": 1234567}))
    (d / "train" / "summary.json").write_text(json.dumps(
        {"memory": {"peak_live": 2**20 * (10 + seed)}, "steps": 10, "global_batch": 8, "seconds": 4.0}))
    return m


def test_seed_table_writes_means_intervals_json_and_readme(tmp_path):
    manifest = tmp_path / "manifests" / "test" / "utterances.tsv"
    _write_manifest(manifest)
    expected = {"good": [], "weak": []}
    for seed in (1, 2, 3):
        for system, sep in (("good", 3.0), ("weak", 1.0)):
            expected[system].append(_write_system(tmp_path / f"seed{seed}", system, sep, seed))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- make_table:toy_seeds -->\nold\n<!-- /make_table:toy_seeds -->\nend\n")
    out = tmp_path / "results" / "toy.json"
    rc = main([str(tmp_path / f"seed{s}") for s in (1, 2, 3)] + [
        "--data", "toy", "--systems", "good,weak", "--trial-list", "toy_all", "--test-manifest", str(manifest),
        "--bootstrap", "200", "--json", str(out), "--readme", str(readme)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["commit"] and data["machine"] and data["trial_list"] == "toy_all"
    rows = {r["system"]: r for r in data["systems"]}
    for system, ms in expected.items():
        r = rows[system]
        eers = [m["eer"] for m in ms]
        assert r["seeds"] == ["1", "2", "3"] and r["eer"] == eers
        assert r["eer_mean"] == pytest.approx(statistics.fmean(eers))
        assert r["eer_sd"] == pytest.approx(statistics.stdev(eers))
        assert r["eer_ci95"][0] <= r["eer_mean"] <= r["eer_ci95"][1]
        assert r["peak_train_bytes"] == 2**20 * 13 and r["samples_per_second"] == pytest.approx(20.0)
    assert rows["good"]["eer_mean"] < rows["weak"]["eer_mean"]
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "| good | 1.23M | 13.0 MiB | 20 |" in text and "3 seeds (1, 2, 3)" in text


def test_a_seed_without_a_system_is_named(tmp_path, capsys):
    manifest = tmp_path / "manifests" / "test" / "utterances.tsv"
    _write_manifest(manifest)
    _write_system(tmp_path / "seed1", "good", 3.0, 1)
    (tmp_path / "seed2" / "toy").mkdir(parents=True)
    rc = main([str(tmp_path / "seed1"), str(tmp_path / "seed2"), "--data", "toy", "--systems", "good",
               "--trial-list", "toy_all", "--test-manifest", str(manifest)])
    assert rc == 2 and "seed2/toy/good/score/metrics.json does not exist" in capsys.readouterr().err


def test_records_kept_per_run_remake_the_same_table(tmp_path, capsys):
    """A table grown one run at a time from records equals the table made from the experiment folders."""
    manifest = tmp_path / "manifests" / "test" / "utterances.tsv"
    _write_manifest(manifest)
    for seed in (1, 2, 3):
        for system, sep in (("good", 3.0), ("weak", 1.0)):
            _write_system(tmp_path / f"seed{seed}", system, sep, seed)
    common = ["--data", "toy", "--trial-list", "toy_all", "--bootstrap", "200"]
    direct = tmp_path / "direct.json"
    assert main([str(tmp_path / f"seed{s}") for s in (1, 2, 3)] + common + [
        "--systems", "good,weak", "--test-manifest", str(manifest), "--json", str(direct)]) == 0
    records = tmp_path / "records"
    for seed in (1, 2, 3):  # one run at a time, as recipes/librimini/table.sh does
        for system in ("good", "weak"):
            assert main([str(tmp_path / f"seed{seed}")] + common + [
                "--systems", system, "--test-manifest", str(manifest), "--write-records", str(records)]) == 0
    assert (records / "seed2" / "weak.json").is_file()
    grown = tmp_path / "grown.json"
    assert main(common + ["--systems", "good,weak", "--from-records", str(records), "--json", str(grown)]) == 0
    a, b = json.loads(direct.read_text())["systems"], json.loads(grown.read_text())["systems"]
    for ra, rb in zip(a, b):
        for key in ("seeds", "eer", "min_dcf_0.01", "eer_mean", "eer_sd", "eer_ci95", "min_dcf_ci95",
                    "peak_train_bytes", "samples_per_second"):
            assert ra[key] == pytest.approx(rb[key], abs=1e-6), key
    # a system with another set of seeds is refused, naming the folder
    (records / "seed3" / "weak.json").unlink()
    capsys.readouterr()
    assert main(common + ["--systems", "good,weak", "--from-records", str(records)]) == 2
    assert "different seeds" in capsys.readouterr().err
