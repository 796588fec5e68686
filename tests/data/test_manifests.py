import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from fake_corpora import make_voxceleb_tree, voxceleb_speakers
from sv_toolkit.data.audio import AudioError, read_audio
from sv_toolkit.data.manifests import (
    Trial,
    Utterance,
    read_speakers,
    read_trials,
    read_utterances,
    write_speakers,
    write_trials,
    write_utterances,
)
from sv_toolkit.data.prepare import to_utterance
from sv_toolkit.data.scan import iter_scanned, scan_tree
from sv_toolkit.stages import prepare as prepare_stage

CONF = Path(__file__).resolve().parents[2] / "conf"


def _wav(path, seconds=1.0, sr=16000, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * sr), channels))
    sf.write(str(path), data, sr, subtype="PCM_16")


def stage_scan(root, sample_rate, work, min_seconds=0.0, skip_bad_audio=True):
    """The prepare stage's scan of a small tree (scan_tree into ``work``, then iter_scanned): (kept utterances,
    skipped files)."""
    units = scan_tree(root, work, sample_rate, min_seconds, skip_bad_audio, num_workers=1, progress=False)
    files = list(iter_scanned(work, units))
    return [to_utterance(f) for f in files if f.status == "ok"], [f for f in files if f.status == "skip"]


def test_utterance_manifest_round_trip(tmp_path):
    utts = [Utterance("a/s/00001.wav", "a", "/x/a/s/00001.wav", 16000, 16000)]
    write_utterances(tmp_path / "u.tsv", utts)
    assert read_utterances(tmp_path / "u.tsv") == utts
    assert utts[0].duration == 1.0


def test_speaker_list_gives_sorted_class_indices(tmp_path):
    mk = lambda k: Utterance(k, k.split("/")[0], k, 8000, 16000)  # noqa: E731
    write_speakers(tmp_path / "s.tsv", [mk("b/s/1.wav"), mk("a/s/1.wav"), mk("b/s/2.wav")])
    assert read_speakers(tmp_path / "s.tsv") == {"a": 0, "b": 1}
    assert "b\t1\t2\t1.00" in (tmp_path / "s.tsv").read_text()
    with pytest.raises(FileNotFoundError, match="run scripts/prepare.py"):
        read_speakers(tmp_path / "missing.tsv")


def test_trials_round_trip_and_errors_name_file_and_line(tmp_path):
    trials = [Trial(1, "a/s/1.wav", "a/t/2.wav"), Trial(0, "a/s/1.wav", "b/s/1.wav")]
    write_trials(tmp_path / "t.txt", trials)
    assert read_trials(tmp_path / "t.txt") == trials
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a b\n2 a b\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'label enroll test'"):
        read_trials(bad)
    bad.write_text("1 a b\n0 a b c\n")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        read_trials(bad)
    with pytest.raises(ValueError, match=r"t.txt:2: utterance 'b/s/1.wav' is not in the corpus"):
        read_trials(tmp_path / "t.txt", known_keys={"a/s/1.wav", "a/t/2.wav"})
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_trials(tmp_path / "missing.txt")


def test_scan_skips_bad_files_with_reasons(tmp_path):
    root = tmp_path / "wav"
    _wav(root / "spk1" / "sess1" / "00001.wav")
    _wav(root / "spk1" / "sess1" / "00002.wav", channels=2)  # stereo: accepted, averaged to mono on read
    _wav(root / "spk2" / "sess1" / "00001.wav", sr=8000)
    _wav(root / "spk2" / "sess1" / "00002.wav", seconds=0.1)
    (root / "spk2" / "sess1" / "00003.wav").write_bytes(b"not audio at all")
    (root / "spk2" / "sess1" / "00004.wav").write_bytes(b"")
    utts, skipped = stage_scan(root, 16000, tmp_path / "work", min_seconds=0.5)
    assert [u.key for u in utts] == ["spk1/sess1/00001.wav", "spk1/sess1/00002.wav"]
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in skipped}
    assert reasons["00001.wav"] == "wrong sample rate: 8000 Hz, expected 16000 Hz"
    assert reasons["00002.wav"] == "too short: 0.10 s, shorter than 0.5 s"
    assert reasons["00003.wav"].startswith("unreadable: ") and reasons["00004.wav"] == "empty: 0 bytes"
    wave, sr = read_audio(utts[1].path)
    assert wave.dim() == 1 and sr == 16000


def test_scan_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create the corpus"):
        stage_scan(tmp_path / "nowhere", 16000, tmp_path / "work")


def test_read_audio_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....")
    with pytest.raises(AudioError, match="broken.wav"):
        read_audio(bad)
    _wav(tmp_path / "ok.wav", sr=8000)
    with pytest.raises(AudioError, match="8000 Hz, expected 16000"):
        read_audio(tmp_path / "ok.wav", expected_sample_rate=16000)


def test_prepare_stage_removes_trial_speakers_from_training(tmp_path):
    """One tree for train and test (the minivox layout): the speakers named by the trial lists are test speakers
    and none of their utterances is left in the training set."""
    root = tmp_path / "corpus" / "wav"
    for key in ("a/s/00001", "a/s/00002", "b/s/00001", "c/s/00001", "c/t/00002"):
        _wav(root / f"{key}.wav")
    write_trials(tmp_path / "t.txt", [Trial(0, "a/s/00001.wav", "b/s/00001.wav")])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="prepare", overrides=[
            "data=minivox", "progress=false", f"data.dir={tmp_path}",
            "~data.trials", f"+data.trials={{t: {tmp_path}/t.txt}}",
        ])
    prepare_stage.run(cfg)
    manifests = tmp_path / "manifests"
    keys = {s: [u.key for u in read_utterances(manifests / s / "utterances.tsv")] for s in ("train", "test")}
    assert keys == {"test": ["a/s/00001.wav", "b/s/00001.wav"], "train": ["c/s/00001.wav", "c/t/00002.wav"]}
    assert json.loads((manifests / "summary.json").read_text())["dropped_trial_speaker_utterances"] == 3


def test_prepare_scan_of_a_voxceleb1_tree_keeps_every_file_with_its_speaker(tmp_path):
    keys = make_voxceleb_tree(tmp_path / "wav", voxceleb_speakers(3, version=1), videos=2, utts=2, seconds=1.5)
    utts, skipped = stage_scan(tmp_path / "wav", 16000, tmp_path / "work")
    assert [u.key for u in utts] == sorted(keys) and not skipped
    assert [u.speaker for u in utts] == [k.split("/")[0] for k in sorted(keys)]
    assert all(u.num_samples == 24000 and u.sample_rate == 16000 for u in utts)
    assert len({u.key.split("/")[1] for u in utts}) == 6  # a video id of its own per speaker and session


def test_prepare_scan_on_real_voxceleb_sample(shared_data, tmp_path):
    utts, skipped = stage_scan(shared_data / "voxceleb1_sample" / "wav", 16000, tmp_path / "work")
    assert len(utts) == 6 and not skipped
    assert {u.speaker for u in utts} == {"id10001", "id10002"}
    assert all(u.key.count("/") == 2 and u.key.endswith(".wav") for u in utts)
    assert all(1.0 < u.duration < 60.0 for u in utts)


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"garbage bytes", "unreadable")])
def test_scan_stops_on_bad_audio_unless_skipping(tmp_path, content, problem):
    root = tmp_path / "wav"
    _wav(root / "spk1" / "sess1" / "00001.wav")
    bad = root / "spk1" / "sess1" / "00002.wav"
    bad.write_bytes(content)
    with pytest.raises(AudioError, match=rf"{bad} cannot be used \({problem}.*data.skip_bad_audio=true"):
        stage_scan(root, 16000, tmp_path / "work", skip_bad_audio=False)
    utts, skipped = stage_scan(root, 16000, tmp_path / "work", skip_bad_audio=True)
    assert len(utts) == 1 and skipped[0].path == str(bad)


def test_scan_stops_on_wrong_sample_rate_unless_skipping(tmp_path):
    root = tmp_path / "wav"
    _wav(root / "spk1" / "sess1" / "00001.wav", sr=8000)
    with pytest.raises(AudioError, match="wrong sample rate: 8000 Hz, expected 16000 Hz"):
        stage_scan(root, 16000, tmp_path / "work", skip_bad_audio=False)
