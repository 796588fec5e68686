"""The CLIs feed a model the features its model file names, and resample audio of any rate or container to it."""
from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import soundfile as sf
import torch
from eval_experiment import compose_stage
from tiny_training import stage_overrides, write_tiny_corpus

from sv_toolkit.cli import embed, export, verify
from sv_toolkit.data.audio import resample
from sv_toolkit.data.manifests import Utterance
from sv_toolkit.errors import ConfigError
from sv_toolkit.features import FbankSettings
from sv_toolkit.features.store import FeatureStore, write_feature_store
from sv_toolkit.model_file import ModelHeader, save_model_file
from sv_toolkit.models import build_model
from sv_toolkit.scoring import AudioFeatureSource, extract_embeddings, load_embeddings, load_extractor
from sv_toolkit.stages import train

CPU = torch.device("cpu")


def _voice(rng: np.random.Generator, f0: float, seconds: float, rate: int) -> torch.Tensor:
    """A buzzy harmonic tone with a broadband noise floor (to rate / 2), at ``rate``."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 1.3 * t))) / rate
    wave = sum(np.sin(k * phase) / k ** (1 + f0 / 400) for k in range(1, 12))
    return torch.from_numpy((0.1 * wave / np.abs(wave).max() + 0.005 * rng.normal(size=t.size)).astype(np.float32))


@pytest.fixture(scope="module")
def trained_12ms(tmp_path_factory):
    """model_avg.pt of a tiny train run with features.frame_shift_ms=12."""
    root = tmp_path_factory.mktemp("shift12")
    corpus = write_tiny_corpus(root / "corpus")
    train.run(compose_stage("train", stage_overrides(corpus, root / "exp", "features.frame_shift_ms=12",
                                                     "trainer.epochs=1", "trainer.average_last=1")))
    return next((root / "exp").rglob("train/model_avg.pt"))


def test_sv_embed_uses_the_frame_shift_the_model_was_trained_with(trained_12ms, tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for i, f0 in enumerate((120, 210, 170)):
        paths[f"u{i}"] = str(tmp_path / f"u{i}.wav")
        sf.write(paths[f"u{i}"], _voice(rng, f0, 1.0 + 0.3 * i, 16000).numpy(), 16000, subtype="PCM_16")
    (tmp_path / "list.txt").write_text("".join(f"{k} {p}\n" for k, p in paths.items()))
    assert embed.main(["--model", str(trained_12ms), "--list", str(tmp_path / "list.txt"), "--out",
                       str(tmp_path / "e.npz"), "--device", "cpu"]) == 0
    keys, got = load_embeddings(tmp_path / "e.npz")
    model, header = load_extractor(trained_12ms)
    assert header.fbank_settings() == FbankSettings(frame_shift_ms=12.0)
    at = {ms: AudioFeatureSource(paths, FbankSettings(frame_shift_ms=ms)) for ms in (12.0, 10.0)}
    # 1.0 s at 16 kHz: 1 + (16000 - 400) // 192 = 82 frames of 12 ms shift, 98 of 10 ms
    assert at[12.0].num_frames()[0] == 82 and at[10.0].num_frames()[0] == 98
    want = {ms: extract_embeddings(model, source, CPU, progress=False) for ms, source in at.items()}
    assert keys == list(paths)
    np.testing.assert_allclose(got, want[12.0], atol=1e-6)  # the same computation: equal to float rounding
    # 10 ms features give other embeddings (measured: max |difference| 0.018 on this model)
    assert np.abs(got - want[10.0]).max() > 1e-3


def test_sv_export_takes_the_bins_from_the_model_file_and_writes_them_beside(tmp_path, capsys):
    torch.manual_seed(0)
    config = {"_target_": "sv_toolkit.models.build_model", "name": "resnet10", "feat_dim": 40, "embed_dim": 8,
              "base_width": 4}
    model = build_model(**{k: v for k, v in config.items() if k != "_target_"})
    settings = FbankSettings(num_mel_bins=40, frame_shift_ms=12.0)
    save_model_file(tmp_path / "m.pt", {"model": model.state_dict()}, ModelHeader.create(config, settings))
    assert export.main(["--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.ts")]) == 0
    sidecar = json.loads((tmp_path / "m.ts.json").read_text())
    assert FbankSettings.from_recipe(sidecar["features"], "sidecar") == settings and sidecar["embed_dim"] == 8
    assert "'frame_shift_ms': 12.0" in capsys.readouterr().out


def test_stored_fbank_of_other_settings_is_refused(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _voice(np.random.default_rng(1), 150, 0.5, 16000).numpy(), 16000, subtype="PCM_16")
    store_dir = write_feature_store([Utterance("a", "s", str(path), 8000, 16000)], tmp_path / "fbank", FbankSettings(),
                                    progress=False)
    store = FeatureStore(store_dir)
    store.check_settings(FbankSettings(), "the model")
    with pytest.raises(ConfigError, match=r"fbank was computed with other settings than the model .*"
                                          r"'frame_shift_ms': \(10.0, 12.0\)"):
        store.check_settings(FbankSettings(frame_shift_ms=12.0), "the model")


# --------------------------------------------------------------------------- any rate, any container
# Distance of an embedding to that of the 16 kHz original, as a fraction of the distance between the two
# speakers' originals (random resnet10, embed 32). Measured on this fixture: 44.1 / 48 kHz wav and 44.1 kHz
# flac 0.004-0.0055 (16-bit requantisation of the resampled audio); 48 kHz ogg 0.21-0.29 (the lossy codec);
# 8 kHz 0.10-0.27 for audio holding nothing above 4 kHz. The control, 8 kHz samples read as if they were
# 16 kHz (no resampling), gives 1.75.
LOSSLESS_TOL, LOSSY_TOL, CONTROL_MIN = 0.02, 0.75, 1.0
FILES = [(8000, "wav", "PCM_16"), (44100, "wav", "PCM_16"), (48000, "wav", "PCM_16"), (44100, "flac", "PCM_16"),
         (48000, "ogg", "VORBIS")]


@pytest.fixture(scope="module")
def rates(tmp_path_factory):
    """Two speakers' audio written at 16 kHz and at each rate / container of FILES, plus a random model."""
    root = tmp_path_factory.mktemp("rates")
    torch.manual_seed(0)
    config = {"_target_": "sv_toolkit.models.build_model", "name": "resnet10", "feat_dim": 80, "embed_dim": 32,
              "base_width": 4}
    model = build_model(**{k: v for k, v in config.items() if k != "_target_"})
    save_model_file(root / "m.pt", {"model": model.state_dict()}, ModelHeader.create(config, FbankSettings()))
    rng = np.random.default_rng(0)
    paths = {}
    for s, f0 in enumerate((120, 210)):
        broadband = _voice(rng, f0, 1.5, 48000)
        below_4k = resample(resample(broadband, 48000, 8000), 8000, 48000)  # what an 8 kHz file can hold
        for name, source in (("broad", broadband), ("narrow", below_4k)):
            for rate, ext, subtype in [(16000, "wav", "PCM_16"), *FILES]:
                wave = source if rate == 48000 else resample(source, 48000, rate)
                paths[f"{name}{s}_{rate}_{ext}"] = root / f"{name}{s}_{rate}.{ext}"
                sf.write(paths[f"{name}{s}_{rate}_{ext}"], wave.numpy(), rate, subtype=subtype)
    eight = sf.read(paths["narrow0_8000_wav"])[0]
    paths["control"] = root / "control.wav"  # 8 kHz samples labelled 16 kHz: what skipping the resampling does
    sf.write(paths["control"], eight, 16000, subtype="PCM_16")
    return root / "m.pt", paths


def test_sv_embed_resamples_any_rate_and_container_and_says_so_once(rates, tmp_path, caplog):
    model_path, paths = rates
    keys = sorted(paths)
    (tmp_path / "list.txt").write_text("".join(f"{k} {paths[k]}\n" for k in keys))
    with caplog.at_level(logging.INFO, logger="sv_toolkit.cli.common"):
        assert embed.main(["--model", str(model_path), "--list", str(tmp_path / "list.txt"), "--out",
                           str(tmp_path / "e.npz"), "--device", "cpu", "--max-crop", "0"]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resampling")]
    assert sorted(said) == sorted(f"resampling {r} audio to 16 kHz (the model's sample rate)"
                                  for r in ("8 kHz", "44.1 kHz", "48 kHz"))  # once per rate, 4+ files each
    got_keys, emb = load_embeddings(tmp_path / "e.npz")
    e = dict(zip(got_keys, emb))
    for name in ("broad", "narrow"):
        for s in (0, 1):
            ref, other = e[f"{name}{s}_16000_wav"], e[f"{name}{1 - s}_16000_wav"]
            scale = np.linalg.norm(ref - other)
            for rate, ext, _ in FILES:
                if name == "broad" and rate == 8000:
                    continue  # an 8 kHz file cannot hold the 4-8 kHz noise of the 16 kHz original
                if name == "narrow" and rate != 8000:
                    continue
                tol = LOSSLESS_TOL if ext != "ogg" and rate != 8000 else LOSSY_TOL
                ratio = np.linalg.norm(e[f"{name}{s}_{rate}_{ext}"] - ref) / scale
                assert ratio < tol, (name, s, rate, ext, ratio)
    control = np.linalg.norm(e["control"] - e["narrow0_16000_wav"]) / np.linalg.norm(
        e["narrow0_16000_wav"] - e["narrow1_16000_wav"])
    assert control > CONTROL_MIN  # the measure tells unresampled audio apart


def test_sv_verify_resamples_and_scores_like_sv_embed(rates, tmp_path, capsys, caplog):
    model_path, paths = rates
    a, b = paths["broad0_16000_wav"], paths["broad0_48000_ogg"]
    with caplog.at_level(logging.INFO, logger="sv_toolkit.cli.common"):
        assert verify.main(["--model", str(model_path), "--threshold", "0.5", "--device", "cpu", str(a), str(b)]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resampling")]
    assert said == ["resampling 48 kHz audio to 16 kHz (the model's sample rate)"]
    score = float(re.search(r"score: (\S+)", capsys.readouterr().out).group(1))
    model, header = load_extractor(model_path)
    source = AudioFeatureSource({"a": str(a), "b": str(b)}, header.fbank_settings(), resample=True)
    ea, eb = extract_embeddings(model, source, CPU, progress=False)
    assert score == pytest.approx(float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)), abs=1e-5)
    assert verify.main(["--model", str(model_path), "--threshold", "0.5", str(a), str(tmp_path / "none.wav")]) == 2
    assert "none.wav" in capsys.readouterr().err
