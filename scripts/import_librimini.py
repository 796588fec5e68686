#!/usr/bin/env python
"""Stage import_librimini: import librispeech_mini into VoxCeleb layout as the librimini corpus.

Usage: python scripts/import_librimini.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import corpus


@hydra.main(version_base="1.3", config_path="../conf", config_name="import_librimini")
def main(cfg: DictConfig) -> None:
    corpus.run_import_librimini(cfg)


if __name__ == "__main__":
    main()
