"""Data tests run their small tensor ops on one thread: on the shared 2-core machine, torch's 2-thread FFTs and
resampling were measured 20-100x slower than single-threaded ones under load (as DataLoader workers run them)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
