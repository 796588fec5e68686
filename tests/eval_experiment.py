"""A tiny experiment folder for the evaluation tests: synthetic "voices", stored fbank, an untrained checkpoint
saved the way the train stage saves it, and the embed / score stages run in-process through Hydra.

Importable from any test module (pytest puts this folder, the one of tests/conftest.py, on sys.path).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from sv_toolkit.data.manifests import Trial, Utterance, write_speakers, write_trials, write_utterances
from sv_toolkit.features.store import FbankSettings, write_feature_store
from sv_toolkit.model_file import ModelHeader, save_model_file
from sv_toolkit.models import build_model
from sv_toolkit.stages import embed, score

CONF = Path(__file__).resolve().parents[1] / "conf"
TRIAL_LISTS = ("minivox_O", "minivox_E", "minivox_H")  # the minivox data config's names
MODEL_SYSTEM = "resnet10_w8"


@dataclass
class Experiment:
    root: Path
    overrides: list[str]
    data_exp: Path  # exp/minivox
    wavs: dict[str, Path]  # test key -> wav
    checkpoint: Path

    def system(self, name: str) -> Path:
        return self.data_exp / name


def _voice(rng: np.random.Generator, f0: float, seconds: float) -> np.ndarray:
    """A buzzy harmonic tone with formant-like colouring and noise: speaker = (f0, harmonic weights)."""
    t = np.arange(int(16000 * seconds)) / 16000
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f) / 16000
    wave = sum(np.sin(k * phase) / k ** (1 + f0 / 400) for k in range(1, 12))
    return (0.1 * wave / np.abs(wave).max() + 0.005 * rng.normal(size=t.size)).astype(np.float32)


def compose_stage(stage: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=stage, overrides=overrides)


def build_experiment(root: Path, seed: int = 0) -> Experiment:
    rng = np.random.default_rng(seed)
    data = root / "data"
    utts: dict[str, list[Utterance]] = {"train": [], "test": []}
    f0s = {"train": [110, 150, 190, 230, 270], "test": [125, 205, 290]}
    for split, voices in f0s.items():
        for s, f0 in enumerate(voices):
            spk = f"{split[:2]}{s:03d}"
            for u in range(4):
                path = data / "corpus" / "wav" / spk / "sess" / f"{u:05d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                wave = _voice(rng, f0 * rng.uniform(0.97, 1.03), rng.choice([0.6, 0.9, 0.9, 1.2]))
                sf.write(path, wave, 16000, subtype="PCM_16")
                utts[split].append(Utterance(f"{spk}/sess/{u:05d}.wav", spk, str(path), wave.size, 16000))
    manifests = data / "manifests"
    for split, us in utts.items():
        write_utterances(manifests / split / "utterances.tsv", us)
        write_speakers(manifests / split / "speakers.tsv", us)
        write_feature_store(us, data / "fbank" / split, FbankSettings(), progress=False)
    test = utts["test"]
    pairs = [Trial(int(a.speaker == b.speaker), a.key, b.key) for i, a in enumerate(test) for b in test[i + 1 :]]
    for n, name in enumerate(TRIAL_LISTS):
        write_trials(manifests / "trials" / f"{name}.txt", pairs[n::2] if n else pairs)

    exp = root / "exp"
    overrides = [f"data.dir={data}", f"exp_root={exp}", "progress=false"]
    torch.manual_seed(seed)
    model_overrides = {"feat_dim": 80, "embed_dim": 32, "base_width": 4}
    model = build_model("resnet10", **model_overrides)
    train_dir = exp / "minivox" / MODEL_SYSTEM / "train"
    checkpoint = train_dir / "model_avg.pt"
    config = {"_target_": "sv_toolkit.models.build_model", "name": "resnet10", **model_overrides}
    save_model_file(checkpoint, {"model": model.state_dict()}, ModelHeader.create(config, FbankSettings()))
    summary = {"optimizer": "SGD8bit", "params": 1, "memory": {"peak_live": 3 << 20, "activations_saved": 1 << 20}}
    (train_dir / "summary.json").write_text(json.dumps(summary))
    model_stage = overrides + ["experiment=minivox_resnet10", "model.base_width=4", "model.embed_dim=32"]
    for stage in (embed, score):
        stage.run(compose_stage(stage.__name__.rsplit(".", 1)[-1], model_stage))
        stage.run(compose_stage(stage.__name__.rsplit(".", 1)[-1], overrides + ["experiment=baseline"]))
    return Experiment(root, overrides, exp / "minivox", {u.key: Path(u.path) for u in test}, checkpoint)
