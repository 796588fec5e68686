#!/usr/bin/env python
"""Stage synth_minivox: synthesise the built-in minivox corpus (espeak-ng voices) in VoxCeleb layout.

Usage: python scripts/synth_minivox.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import corpus


@hydra.main(version_base="1.3", config_path="../conf", config_name="synth_minivox")
def main(cfg: DictConfig) -> None:
    corpus.run_synth_minivox(cfg)


if __name__ == "__main__":
    main()
