#!/usr/bin/env python
"""Stage score: cosine scoring of the trial lists; EER and minDCF.

Usage: python scripts/score.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import score


@hydra.main(version_base="1.3", config_path="../conf", config_name="score")
def main(cfg: DictConfig) -> None:
    score.run(cfg)


if __name__ == "__main__":
    main()
