#!/usr/bin/env python
"""Stage train: train a speaker-embedding extractor with an AAM-softmax head.

Usage: python scripts/train.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    train.run(cfg)


if __name__ == "__main__":
    main()
