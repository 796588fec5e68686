"""Random-number-generator states of one process (torch CPU, CUDA, numpy, python), for exact resume."""
from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """Every global RNG state this process may draw from."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Undo everything drawn since :func:`capture_rng_state` returned ``state``."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda":
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"].cpu(), device)
        else:
            log.warning("the checkpoint comes from a CPU run: the CUDA RNG state is not restored (not an exact resume)")
