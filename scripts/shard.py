#!/usr/bin/env python
"""Stage shard: pack the training utterances into tar shards for streaming (data.train_format=shards).

Usage: python scripts/shard.py [group=option ...] [key=value ...]   (--help, --cfg job: show the config)
"""
import hydra
from omegaconf import DictConfig

from sv_toolkit.stages import shard


@hydra.main(version_base="1.3", config_path="../conf", config_name="shard")
def main(cfg: DictConfig) -> None:
    shard.run(cfg)


if __name__ == "__main__":
    main()
