"""Every primary config, every group option and every experiment composes, resolves and instantiates."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sv_toolkit.models import available_models

CONF = Path(__file__).resolve().parents[1] / "conf"
PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml") if p.stem not in ("base", "data_stage"))
EXPERIMENT_STAGES = ("train", "embed", "score")
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(name: str, overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides or [])
    OmegaConf.resolve(cfg)  # every interpolation must resolve
    return cfg


@pytest.mark.parametrize("name", PRIMARY)
def test_primary_config_composes(name):
    cfg = _compose(name)
    assert "data" in cfg


def test_primary_configs_are_the_stage_scripts(repo_root):
    # Hydra stage scripts only; argparse tools (compute_metrics.py, make_table.py, ...) have no primary config.
    scripts = sorted(
        p.stem for p in (repo_root / "scripts").glob("*.py")
        if not p.stem.startswith("benchmark") and "hydra.main" in p.read_text()
    )
    assert scripts == PRIMARY


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS if g not in ("experiment",) for o in options(g)]
)
def test_group_option_composes(group, option):
    stage = "prepare" if group in ("data", "features") else "train"
    cfg = _compose(stage, [f"{group}={option}"])
    assert cfg is not None


@pytest.mark.parametrize("experiment", options("experiment"))
@pytest.mark.parametrize("stage", EXPERIMENT_STAGES)
def test_experiment_composes_in_every_experiment_stage(experiment, stage):
    cfg = _compose(stage, [f"experiment={experiment}"])
    assert cfg.exp_dir.endswith(f"/{cfg.system}")


def test_model_configs_cover_the_registry():
    assert set(options("model")) == set(available_models())


@pytest.mark.parametrize("option", options("model"))
def test_model_config_instantiates(option):
    cfg = _compose("train", [f"model={option}", "model.base_width=4"])
    model = instantiate(cfg.model)
    assert model.name == option == cfg.model.name
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 40, cfg.features.num_mel_bins))
    assert out.shape == (2, cfg.model.embed_dim)


@pytest.mark.parametrize("option", options("optim"))
def test_optim_and_sched_configs_instantiate(option):
    cfg = _compose("train", [f"optim={option}"])
    params = [torch.nn.Parameter(torch.randn(5000)), torch.nn.Parameter(torch.randn(10))]
    optimizer = instantiate(cfg.optim)(params=params)
    for sched in options("sched"):
        s = _compose("train", [f"sched={sched}"]).sched
        scheduler = instantiate(s.lr)(optimizer, total_steps=100, warmup_steps=10)
        params[0].sum().backward()
        optimizer.step()
        scheduler.step()
        assert 0 < optimizer.param_groups[0]["lr"] < cfg.optim.lr


def test_head_config_instantiates():
    cfg = _compose("train")
    head = instantiate(cfg.head, embed_dim=cfg.model.embed_dim, num_classes=7)
    loss, logits = head(torch.randn(4, cfg.model.embed_dim), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 7) and torch.isfinite(loss)


def test_misspelt_key_names_the_key():
    with pytest.raises(ConfigCompositionException, match="epoch"):
        _compose("train", ["trainer.epoch=3"])


def test_unknown_group_option_names_the_option():
    with pytest.raises(ConfigCompositionException, match="resnet35"):
        _compose("train", ["model=resnet35"])
