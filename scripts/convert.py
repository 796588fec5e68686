#!/usr/bin/env python
"""Stage convert: VoxCeleb2 m4a (AAC) -> 16 kHz mono wav with ffmpeg (parallel, resumable).

Usage: python scripts/convert.py data=voxceleb [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import convert


@hydra.main(version_base="1.3", config_path="../conf", config_name="convert")
def main(cfg: DictConfig) -> None:
    convert.run(cfg)


if __name__ == "__main__":
    main()
