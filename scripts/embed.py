#!/usr/bin/env python
"""Stage embed: whole-utterance embeddings of the test set and the training-set mean.

Usage: python scripts/embed.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import embed


@hydra.main(version_base="1.3", config_path="../conf", config_name="embed")
def main(cfg: DictConfig) -> None:
    embed.run(cfg)


if __name__ == "__main__":
    main()
