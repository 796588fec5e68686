"""data.resample_on_read: prepare skips wrong-rate files by default, keeps them with it, and the readers resample."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from eval_experiment import compose_stage

from sv_toolkit.data.audio import read_audio, resample, resampled_length
from sv_toolkit.data.manifests import read_utterances
from sv_toolkit.features import FbankSettings, compute_fbank
from sv_toolkit.features.store import FeatureStore
from sv_toolkit.stages import features as features_stage
from sv_toolkit.stages import prepare as prepare_stage

OTHER_RATES = {"spkb/s1/03.wav": 44100, "spkc/s1/03.flac": 8000, "tsta/s1/03.wav": 48000}


def _tone(seconds: float, rate: int, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * f0 * t) + 0.05 * np.sin(2 * np.pi * 3.1 * f0 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """Train speakers spka..spkc and test speakers tsta, tstb, 16 kHz files plus OTHER_RATES; one trial list."""
    root = tmp_path_factory.mktemp("rates")
    for tree_name, speakers in (("train", ("spka", "spkb", "spkc")), ("test", ("tsta", "tstb"))):
        for s, spk in enumerate(speakers):
            for u in (1, 2):
                path = root / tree_name / spk / "s1" / f"0{u}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, _tone(0.6, 16000, 150 + 40 * s + 7 * u), 16000, subtype="PCM_16")
    for key, rate in OTHER_RATES.items():
        tree_name = "test" if key.startswith("tst") else "train"
        sf.write(root / tree_name / key, _tone(0.7, rate, 180), rate, subtype="PCM_16")
    (root / "trials.txt").write_text("1 tsta/s1/01.wav tsta/s1/03.wav\n0 tsta/s1/01.wav tstb/s1/01.wav\n"
                                     "0 tsta/s1/03.wav tstb/s1/02.wav\n")
    (root / "trials_16k.txt").write_text("1 tsta/s1/01.wav tsta/s1/02.wav\n0 tsta/s1/01.wav tstb/s1/01.wav\n")
    return root


def _prepare(tree: Path, out: Path, trials: str, *extra: str):
    overrides = [f"data.dir={out}", f"data.train_audio_dir={tree / 'train'}", f"data.test_audio_dir={tree / 'test'}",
                 "~data.trials", f"+data.trials={{t: {tree / trials}}}", "data.min_seconds=0.1",
                 "data.skip_bad_audio=true", "preparation.num_workers=1", "progress=false", *extra]
    cfg = compose_stage("prepare", overrides)
    prepare_stage.run(cfg)
    return cfg, json.loads((out / "manifests" / "summary.json").read_text())


def test_prepare_skips_other_rates_by_default(tree, tmp_path):
    _, summary = _prepare(tree, tmp_path / "default", "trials_16k.txt")  # the 48 kHz test file is skipped too
    reasons = {Path(f["path"]).relative_to(tree).as_posix().split("/", 1)[1]: f["reason"]
               for f in summary["skipped_files"]}
    for key in OTHER_RATES:
        assert reasons[key] == f"wrong sample rate: {OTHER_RATES[key]} Hz, expected 16000 Hz"
    assert summary["train"]["utterances"] == 6


def test_resample_on_read_keeps_them_and_the_features_stage_resamples(tree, tmp_path):
    cfg, summary = _prepare(tree, tmp_path / "resampled", "trials.txt", "data.resample_on_read=true")
    assert summary["skipped"]["count"] == 0 and summary["train"]["utterances"] == 8
    notes = {Path(f["path"]).name: f["note"] for f in summary["noted_files"]}
    assert notes["03.flac"] == "resampled on read: 8000 Hz to 16000 Hz"
    utts = {u.key: u for split in ("train", "test")
            for u in read_utterances(tmp_path / "resampled" / "manifests" / split / "utterances.tsv")}
    for key, rate in OTHER_RATES.items():
        native = int(0.7 * rate)
        assert (utts[key].num_samples, utts[key].sample_rate) == (resampled_length(native, rate, 16000), 16000)
    features_stage.run(compose_stage("features", [f"data.dir={tmp_path / 'resampled'}", "progress=false",
                                                  "data.resample_on_read=true"]))
    store = FeatureStore(tmp_path / "resampled" / "fbank" / "train")
    wave, rate = sf.read(utts["spkb/s1/03.wav"].path, dtype="float32")
    want = compute_fbank(resample(torch.from_numpy(wave), rate, 16000), 16000)
    np.testing.assert_array_equal(store.by_key("spkb/s1/03.wav"), want.numpy())
    assert store.num_frames[store.keys.index("spkb/s1/03.wav")] == FbankSettings().num_frames(
        utts["spkb/s1/03.wav"].num_samples)


def test_segments_read_with_resampling_are_slices_of_the_whole_resampled_file(tree):
    path = tree / "train" / "spkc" / "s1" / "03.flac"
    whole, rate = read_audio(path, 16000, resample_to_expected=True)
    assert rate == 16000 and whole.numel() == resampled_length(int(0.7 * 8000), 8000, 16000)
    segment, _ = read_audio(path, 16000, 1234, 4000, resample_to_expected=True)
    assert torch.equal(segment, whole[1234:5234])
    with pytest.raises(ValueError, match="has sample rate 8000 Hz, expected 16000 Hz; .* data.resample_on_read"):
        read_audio(path, 16000)
