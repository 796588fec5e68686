"""Random-number-generator states of one process (torch CPU, CUDA, numpy, python), for exact resume.

The states are kept as tensors and plain numbers (numpy's MT19937 key and python's Mersenne-Twister words as
int64 tensors) so that checkpoints load with ``torch.load(weights_only=True)`` (sv_toolkit.model_file).
"""
from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def capture_rng_state(device: torch.device) -> dict[str, Any]:
    """Every global RNG state this process may draw from."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Undo everything drawn since :func:`capture_rng_state` returned ``state``."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if device.type == "cuda":
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"].cpu(), device)
        else:
            log.warning("the checkpoint comes from a CPU run: the CUDA RNG state is not restored (not an exact resume)")
