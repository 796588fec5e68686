#!/usr/bin/env python
"""Stage features: Kaldi fbank features of the train and test utterances.

Usage: python scripts/features.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import features


@hydra.main(version_base="1.3", config_path="../conf", config_name="features")
def main(cfg: DictConfig) -> None:
    features.run(cfg)


if __name__ == "__main__":
    main()
