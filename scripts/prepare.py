#!/usr/bin/env python
"""Stage prepare: utterance, speaker and trial manifests from a VoxCeleb-layout corpus.

Usage: python scripts/prepare.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import prepare


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg: DictConfig) -> None:
    prepare.run(cfg)


if __name__ == "__main__":
    main()
