"""The VoxCeleb preparation end to end: fake VoxCeleb1 / VoxCeleb2 / MUSAN / RIR trees with bad files, m4a
conversion, trial-list checks, a run killed half-way that resumes to the same manifests, and (extra) the real
VoxCeleb1 sample of ../shared/data as the test set."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from sv_toolkit.data.manifests import read_speakers, read_trials, read_utterances
from sv_toolkit.stages import convert as convert_stage
from sv_toolkit.stages import prepare as prepare_stage
from fake_corpora import (
    FFMPEG,
    add_bad_files,
    make_m4a,
    make_musan,
    make_rirs,
    make_voxceleb_tree,
    voxceleb_speakers,
    write_trial_list,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
REPO = CONF.parent
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not on PATH (apt-get install ffmpeg)")


def compose_cfg(stage: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=stage, overrides=["data=voxceleb", "progress=false", *overrides])


def vox_overrides(data_dir: Path, train, test: Path, trials: dict[str, Path], aux: Path, workers: int = 2) -> list[str]:
    train_value = "[" + ",".join(str(t) for t in train) + "]" if isinstance(train, list) else str(train)
    return [
        f"data.dir={data_dir}", f"data.train_audio_dir={train_value}", f"data.test_audio_dir={test}",
        "~data.trials", "+data.trials={" + ",".join(f"{k}: {v}" for k, v in trials.items()) + "}",
        f"data.musan_dir={aux / 'musan'}", f"data.rirs_dir={aux / 'rirs'}",
        f"preparation.num_workers={workers}",
    ]


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """A fake VoxCeleb2 dev tree (with bad files), a fake VoxCeleb1 tree (2 speakers x 3 utterances, like the real
    sample) with 4 trials over it, and MUSAN and RIRS_NOISES beside them."""
    root = tmp_path_factory.mktemp("vox")
    vox2 = root / "voxceleb2_dev" / "wav"
    keys = make_voxceleb_tree(vox2, voxceleb_speakers(6), videos=2, utts=2)
    bad = add_bad_files(vox2, "id00003")
    if FFMPEG is not None:  # one speaker as real AAC, converted by the convert stage into the wav tree
        make_voxceleb_tree(root / "voxceleb2" / "dev" / "aac", ["id00007"], videos=2, utts=2, seconds=1.5,
                           suffix=".m4a")
        convert_stage.run(compose_cfg("convert", [f"data.dir={root}", "preparation.num_workers=2"]))
        keys += [p.relative_to(vox2).as_posix() for p in sorted((vox2 / "id00007").rglob("*.wav"))]
    make_musan(root / "musan")
    make_rirs(root / "rirs")
    vox1 = root / "voxceleb1" / "wav"
    vox1_keys = make_voxceleb_tree(vox1, voxceleb_speakers(2, version=1), videos=1, utts=3, seconds=2.0, seed=50)
    trials = write_trial_list(root / "sample_trials.txt", vox1_keys, max_trials=4)  # 2 target, 2 nontarget
    return root, vox2, vox1, trials, keys, bad


@pytest.fixture(scope="module")
def prepared(corpora):
    root, vox2, vox1, trials, _, _ = corpora
    cfg = compose_cfg("prepare", vox_overrides(root / "data", vox2, vox1, {"sample": trials}, root))
    prepare_stage.run(cfg)
    return Path(cfg.data.manifest_dir)


def test_prepare_writes_train_test_trials_and_augmentation_lists(prepared, corpora):
    _, vox2, vox1, _, keys, bad = corpora
    train = read_utterances(prepared / "train" / "utterances.tsv")
    # 24 good files (+ 4 converted from m4a with ffmpeg) + the stereo one (kept, averaged to mono on read);
    # the other bad files are skipped.
    assert [u.key for u in train] == sorted(keys + [bad["stereo"]])
    speakers = 7 if FFMPEG else 6
    assert read_speakers(prepared / "train" / "speakers.tsv") == {f"id0{i:04d}": i - 1 for i in range(1, speakers + 1)}
    converted = [u for u in train if u.speaker == "id00007"]
    assert len(converted) == (4 if FFMPEG else 0) and all(abs(u.duration - 1.5) < 0.05 for u in converted)
    test = read_utterances(prepared / "test" / "utterances.tsv")
    assert len(test) == 6 and {u.speaker for u in test} == {"id10001", "id10002"}
    assert all(Path(u.path).is_file() and u.sample_rate == 16000 for u in test)
    assert len(read_trials(prepared / "trials" / "sample.txt", {u.key for u in test})) == 4
    musan = read_utterances(prepared / "augment" / "musan" / "utterances.tsv")
    assert {u.speaker for u in musan} == {"noise", "speech", "music"} and len(musan) == 8  # ANNOTATIONS ignored
    rirs = read_utterances(prepared / "augment" / "rirs" / "utterances.tsv")
    assert {u.speaker for u in rirs} == {"smallroom", "mediumroom"} and len(rirs) == 8
    assert not (prepared.parent / ".manifests.partial").exists()


def test_summary_names_every_bad_file_and_what_was_done(prepared, corpora):
    _, vox2, _, _, keys, bad = corpora
    s = json.loads((prepared / "summary.json").read_text())
    n_m4a = 4 if FFMPEG else 0
    assert s["train"] == {"speakers": 6 + bool(n_m4a), "utterances": 25 + n_m4a, "hours": s["train"]["hours"]}
    assert abs(s["train"]["hours"] - (24 * 1.2 + 1.5 + n_m4a * 1.5) / 3600) < 1e-3
    assert s["test"]["speakers"] == 2 and s["test"]["utterances"] == 6
    assert s["musan"]["by_type"] == {"music": 2, "noise": 4, "speech": 2}
    reasons = {Path(f["path"]).relative_to(vox2).as_posix(): f["reason"] for f in s["skipped_files"]}
    assert reasons[bad["corrupt"]].startswith("unreadable: ")
    assert reasons[bad["empty"]] == "empty: 0 bytes"
    assert reasons[bad["rate"]] == "wrong sample rate: 8000 Hz, expected 16000 Hz"
    assert reasons[bad["m4a"]].startswith("not converted: .m4a")
    assert s["skipped"] == {"count": 4, "reasons": {"unreadable": 1, "empty": 1, "wrong sample rate": 1,
                                                    "not converted": 1}}
    notes = {Path(f["path"]).relative_to(vox2).as_posix(): f["note"] for f in s["noted_files"]}
    assert notes == {bad["stereo"]: "multi-channel: 2 channels, averaged to mono on read"}


def test_prepare_fails_on_bad_file_unless_skipping(corpora, tmp_path):
    root, vox2, vox1, trials, _, bad = corpora
    cfg = compose_cfg("prepare", vox_overrides(tmp_path / "data", vox2, vox1, {"s": trials}, root, workers=1)
                      + ["data.skip_bad_audio=false"])
    with pytest.raises(Exception, match=r"badvid00001/0000[1-5]\.\w+ cannot be used .*skip_bad_audio=true"):
        prepare_stage.run(cfg)
    assert not (tmp_path / "data" / "manifests").exists()


def test_malformed_trial_line_is_rejected_with_its_line_number(corpora, tmp_path):
    root, vox2, vox1, trials, _, _ = corpora
    bad = tmp_path / "bad.txt"
    bad.write_text(trials.read_text().splitlines()[0] + "\n1 " + trials.read_text().split()[1] + "\n")
    cfg = compose_cfg("prepare", vox_overrides(tmp_path / "data", vox2, vox1, {"s": bad}, root, workers=1))
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'label enroll test'"):
        prepare_stage.run(cfg)
    assert not (tmp_path / "data" / "manifests").exists()


def test_protocol_list_with_wrong_count_names_list_and_count(corpora, tmp_path):
    root, vox2, vox1, trials, _, _ = corpora
    named = tmp_path / "veri_test2.txt"  # the Vox1-O file name, but 4 trials
    named.write_text(trials.read_text())
    cfg = compose_cfg("prepare", vox_overrides(tmp_path / "data", vox2, vox1, {"vox1_O": named}, root, workers=1))
    with pytest.raises(ValueError, match=r"trial list vox1_O .*veri_test2.txt\) has 4 trials \(2 target / 2 "
                                         r"nontarget\), but Vox1-O cleaned .* has 37,611 \(18,802 / 18,809\)"):
        prepare_stage.run(cfg)
    cfg = compose_cfg("prepare", vox_overrides(tmp_path / "data", vox2, vox1, {"vox1_O": named}, root, workers=1)
                      + ["data.check_trial_counts=false"])
    prepare_stage.run(cfg)
    assert (tmp_path / "data" / "manifests" / "trials" / "vox1_O.txt").is_file()


def test_same_speaker_in_two_training_trees_is_an_error(corpora, tmp_path):
    root, vox2, vox1, trials, _, _ = corpora
    cfg = compose_cfg("prepare", vox_overrides(tmp_path / "data", [vox2, vox2], vox1, {"s": trials}, root, workers=1))
    with pytest.raises(ValueError, match="speaker id00001 is in two training trees"):
        prepare_stage.run(cfg)


def _manifests(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()
            and p.name != ".done"}


def test_killed_prepare_resumes_to_the_same_manifests(corpora, prepared, tmp_path, caplog):
    root, vox2, vox1, trials, _, _ = corpora
    overrides = [*vox_overrides(tmp_path / "data", vox2, vox1, {"sample": trials}, root), "data=voxceleb",
                 "progress=false"]
    # The killed run is the real stage script with each unit slowed down, so that the kill lands half-way.
    slow = textwrap.dedent(f"""
        import runpy, sys, time
        import sv_toolkit.data.scan as scan
        real = scan.scan_unit
        def slow_unit(*args, **kwargs):
            time.sleep(0.4)
            return real(*args, **kwargs)
        scan.scan_unit = slow_unit
        sys.argv = ["prepare.py", *{overrides!r}]
        runpy.run_path({str(REPO / 'scripts' / 'prepare.py')!r}, run_name="__main__")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", slow], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    units = tmp_path / "data" / ".manifests.partial" / "train0" / "units"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(units.glob("*.tsv"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(units.glob("*.tsv")))
    units_total = 7 if FFMPEG else 6  # speaker folders of the train tree
    assert 2 <= done_before < units_total, proc.stderr.read().decode()[-2000:]
    assert not (tmp_path / "data" / "manifests").exists()

    with caplog.at_level(logging.INFO):
        prepare_stage.run(compose_cfg("prepare", overrides))
    assert f"resuming, {done_before} of {units_total} units already scanned" in caplog.text
    assert _manifests(tmp_path / "data" / "manifests") == _manifests(prepared)


@needs_ffmpeg
def test_convert_resumes_and_lists_files_it_cannot_decode(tmp_path):
    src = tmp_path / "voxceleb2" / "dev" / "aac"
    for key in ("id00001/vidAAAAAAAA/00001", "id00001/vidAAAAAAAA/00002", "id00002/vidBBBBBBBB/00001"):
        make_m4a(src / f"{key}.m4a", seconds=1.5, sr=44100)
    (src / "id00002" / "vidBBBBBBBB" / "00002.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A broken")
    dst = tmp_path / "voxceleb2_dev" / "wav"
    cfg = compose_cfg("convert", [f"data.dir={tmp_path}", "preparation.num_workers=2"])
    convert_stage.run(cfg)
    out = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.wav"))
    assert out == ["id00001/vidAAAAAAAA/00001.wav", "id00001/vidAAAAAAAA/00002.wav", "id00002/vidBBBBBBBB/00001.wav"]
    info = sf.info(str(dst / out[0]))
    assert info.samplerate == 16000 and info.channels == 1 and abs(info.duration - 1.5) < 0.05
    failed = (tmp_path / "voxceleb2_dev" / "voxceleb2_dev.convert_failed.tsv").read_text()
    assert "id00002/vidBBBBBBBB/00002.m4a" in failed
    assert not (dst / ".done").exists()  # a failure leaves the tree unfinished: the next run retries it
    mtime = (dst / out[0]).stat().st_mtime_ns
    (src / "id00002" / "vidBBBBBBBB" / "00002.m4a").unlink()
    convert_stage.run(cfg)
    assert (dst / ".done").is_file() and (dst / out[0]).stat().st_mtime_ns == mtime  # kept, not redone
    summary = json.loads((dst / ".done").read_text())["summary"]
    assert summary == {"converted": 0, "already_present": 3, "failed": 0, "other_files_ignored": 0}


def test_convert_without_ffmpeg_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "voxceleb2" / "dev" / "aac").mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = compose_cfg("convert", [f"data.dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="ffmpeg is not on PATH.*apt-get install ffmpeg"):
        convert_stage.run(cfg)


def test_prepare_on_the_real_voxceleb1_sample(corpora, shared_data, tmp_path):
    """Extra check: the real VoxCeleb1 sample of ../shared/data as the test set, with trials over its keys."""
    root, vox2, _, _, _, _ = corpora
    vox1 = shared_data / "voxceleb1_sample" / "wav"
    trials = tmp_path / "sample_trials.txt"
    trials.write_text(
        "1 id10001/1zcIwhmdeo4/00001.wav id10001/1zcIwhmdeo4/00002.wav\n"
        "0 id10001/1zcIwhmdeo4/00001.wav id10002/xTV-jFAUKcw/00001.wav\n"
        "0 id10001/1zcIwhmdeo4/00003.wav id10002/xTV-jFAUKcw/00003.wav\n"
        "1 id10002/xTV-jFAUKcw/00001.wav id10002/xTV-jFAUKcw/00002.wav\n"
    )
    prepare_stage.run(compose_cfg("prepare", vox_overrides(tmp_path / "data", vox2, vox1, {"sample": trials}, root,
                                                           workers=1)))
    manifests = tmp_path / "data" / "manifests"
    test = read_utterances(manifests / "test" / "utterances.tsv")
    assert len(test) == 6 and {u.speaker for u in test} == {"id10001", "id10002"}
    assert all(u.sample_rate == 16000 and 1.0 < u.duration < 60.0 for u in test)
    assert len(read_trials(manifests / "trials" / "sample.txt", {u.key for u in test})) == 4
