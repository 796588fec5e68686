"""Training tests: one intra-op thread (tiny models; avoids oversubscribing the shared 2-core machine)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_training import write_tiny_corpus

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))
