#!/usr/bin/env python
"""Stage table: results table (Markdown + results.json) of every scored system.

Usage: python scripts/table.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import table


@hydra.main(version_base="1.3", config_path="../conf", config_name="table")
def main(cfg: DictConfig) -> None:
    table.run(cfg)


if __name__ == "__main__":
    main()
