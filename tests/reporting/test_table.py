import json

import pytest

from sv_toolkit.reporting import SystemResult, calibration_table, load_system, markdown_table, results_rows
from sv_toolkit.reporting.collect import expand_folders


def _metrics(eer, dcf, norm=True, calibrated=True):
    m = {"num_trials": 100, "num_target": 50, "eer": eer, "eer_threshold": 0.3, "min_dcf_0.01": dcf,
         "min_dcf_0.05": dcf / 2}
    if calibrated:
        m["calibrated"] = {"act_dcf_0.01": dcf + 0.1, "act_dcf_0.05": dcf, "cllr": 0.5, "min_cllr": 0.4}
    if norm:
        m["asnorm"] = {"top_n": 300, "cohort_size": 5994, **{k: v * 0.9 for k, v in m.items() if k.startswith(("eer", "min"))}}
    return m


@pytest.fixture
def results():
    return [
        SystemResult("baseline_fbank_stats", "fbank mean+std (untrained)", 0, None, None, "-",
                     {"vox1_O": _metrics(0.11, 0.5, norm=False, calibrated=False)}),
        SystemResult("revnet34_ii", "revnet34_ii", 6_630_000, 3 << 30, 1 << 28, "SGD8bit",
                     {"vox1_O": _metrics(0.01, 0.1), "vox1_E": _metrics(0.012, 0.12)}, 1 << 20, "bf16"),
    ]


def test_markdown_table_layout(results):
    md = markdown_table(results, "VoxCeleb")
    lines = md.splitlines()
    assert lines[0] == "### VoxCeleb"
    assert lines[2] == (
        "| system | model | params | train peak mem | saved activations | optim states | optimizer | precision | "
        "back-end | vox1_O EER% / minDCF0.01 | vox1_E EER% / minDCF0.01 |"
    )
    assert lines[4] == "| baseline_fbank_stats | fbank mean+std (untrained) | - | - | - | - | - | - | cosine | 11.00 / 0.500 | - |"
    assert lines[5] == ("| revnet34_ii | revnet34_ii | 6.63M | 3.0 GiB | 256.0 MiB | 1.0 MiB | SGD8bit | bf16 | cosine | "
                        "1.00 / 0.100 | 1.20 / 0.120 |")
    assert lines[6] == "|  |  |  |  |  |  |  |  | + AS-norm (top 300 of 5994) | 0.90 / 0.090 | 1.08 / 0.108 |"
    assert len(lines) == 7


def test_calibration_table_only_lists_calibrated_systems(results):
    md = calibration_table(results)
    assert "baseline_fbank_stats" not in md
    assert "| revnet34_ii | cosine | 0.200 / 0.500 / 0.400 | 0.220 / 0.500 / 0.400 |" in md
    assert calibration_table(results[:1]) is None


def test_results_rows_keep_the_contract_keys(results):
    rows = results_rows(results)
    assert [(r["system"], r["trial_list"]) for r in rows] == [
        ("baseline_fbank_stats", "vox1_O"), ("revnet34_ii", "vox1_O"), ("revnet34_ii", "vox1_E")]
    for r in rows:
        assert {"system", "trial_list", "eer", "min_dcf_0.01", "min_dcf_0.05", "params", "train_memory_bytes",
                "train_activation_bytes", "optimizer"} <= set(r)
    assert rows[1]["asnorm"]["eer"] == pytest.approx(0.009) and rows[1]["calibrated"]["cllr"] == 0.5
    json.dumps(rows)  # serialisable


def test_load_system_reports_missing_fields(tmp_path):
    d = tmp_path / "exp" / "minivox" / "sys"
    (d / "embed").mkdir(parents=True)
    (d / "score").mkdir()
    (d / "train").mkdir()
    (d / "embed" / "info.json").write_text(json.dumps({"system": "sys", "model": "resnet10", "params": 5}))
    (d / "score" / "metrics.json").write_text(json.dumps({"minivox_O": _metrics(0.1, 0.2)}))
    (d / "train" / "summary.json").write_text(json.dumps({"optimizer": "SGD", "memory": {"peak_live": 10}}))
    r = load_system(d)
    assert r.train_memory_bytes == 10 and r.train_activation_bytes is None and r.precision is None
    assert "train/summary.json:memory.activations_saved" in r.missing and "train/summary.json:precision" in r.missing
    # The trainer config recorded by the train stage tells the precision when the summary does not.
    (d / "train" / ".done").write_text(json.dumps({"config": {"trainer": {"epochs": 1}}}))
    assert load_system(d).precision == "fp32"
    (d / "train" / ".done").write_text(json.dumps({"config": {"trainer": {"precision": "bf16"}}}))
    assert load_system(d).precision == "bf16"
    assert expand_folders([tmp_path / "exp" / "minivox"]) == {"minivox": [d]}
    assert expand_folders([d]) == {"minivox": [d]}
    with pytest.raises(FileNotFoundError, match="no scored systems"):
        expand_folders([tmp_path])
    with pytest.raises(FileNotFoundError, match="no scores in"):
        load_system(tmp_path)
