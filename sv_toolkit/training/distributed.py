"""Multi-process training under ``torchrun``: the process's place in the job, process-group set-up, collectives.

``torchrun`` (single or multi node) starts one process per device and sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` (plus ``MASTER_ADDR`` / ``MASTER_PORT``, which ``init_method="env://"`` reads). Without those
variables the process trains alone and every collective below is a no-op, so single-process code paths need
no branches.

Exit: a rank must not reach interpreter shutdown with gloo's worker threads alive. A worker that drops the
last reference to a tensor owned by Python (``all_gather_object``'s buffers) after the interpreter began to
finalise cannot take the GIL; the thread is unwound out of a ``noexcept`` frame and the process aborts with
"terminate called without an active exception" (SIGABRT, which torchrun reports as a failed job). Two
things kept those threads alive past :func:`shutdown`: ``DistributedDataParallel`` imports
``torch.distributed.nn.functional`` lazily, whose functions take ``group=group.WORLD`` as a default value
bound at import time, so an import after ``init_process_group`` pins the default group forever; and a DDP
wrapper still referenced (or in a reference cycle) keeps its backend. Hence the import below, before any
group exists; ``Trainer.close`` dropping its DDP wrapper; and :func:`shutdown` collecting reference cycles
around the destroy, so that the backend is freed and its threads joined while the interpreter is whole.
"""
from __future__ import annotations

import gc
import inspect
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

if dist.is_available():
    import torch.distributed.nn.functional  # noqa: F401  (see the module docstring: before any process group)

log = logging.getLogger(__name__)

BACKENDS = ("auto", "nccl", "gloo")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer; launch with torchrun") from None


def env_from_torchrun() -> DistEnv:
    """The process's rank and world size from torchrun's environment variables (rank 0 of 1 without them)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    present = [n for n in names if n in os.environ]
    if not present:
        return DistEnv()
    if len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise ValueError(f"{', '.join(present)} set but {', '.join(missing)} missing; launch with torchrun")
    env = DistEnv(_env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK"))
    if not 0 <= env.rank < env.world_size:
        raise ValueError(f"RANK={env.rank} is outside WORLD_SIZE={env.world_size}")
    return env


def init_distributed(env: DistEnv, device: torch.device, backend: str = "auto", timeout_s: float = 1800.0) -> None:
    """Join the process group (env:// rendezvous) when the job has more than one process.

    ``backend="auto"`` is nccl for CUDA devices and gloo for CPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"trainer.ddp.backend={backend!r}; choose one of {BACKENDS}")
    if not env.enabled or dist.is_initialized():
        return
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("trainer.ddp.backend=nccl needs CUDA devices; use gloo (or auto) for CPU training")
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        kwargs["device_id"] = device
    dist.init_process_group(
        backend, init_method="env://", rank=env.rank, world_size=env.world_size,
        timeout=timedelta(seconds=timeout_s), **kwargs,
    )


def shutdown(env: DistEnv) -> None:
    """Destroy the process group and free its backend (its threads joined) before the interpreter exits.

    Call it after the last reference to any DDP wrapper is dropped (``Trainer.close``); the collection frees
    wrappers that only reference cycles still hold.
    """
    if env.enabled and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()
        if left := gloo_threads():
            log.warning("rank %d: %d gloo threads still run after the process group was destroyed: something still "
                        "holds a DistributedDataParallel wrapper, and the process may abort at exit", env.rank,
                        len(left))


def gloo_threads() -> list[str]:
    """Names of this process's gloo threads (Linux; empty elsewhere): none should be left after shutdown."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(n for n in names if "gloo" in n)


def process_device(env: DistEnv, device: torch.device) -> torch.device:
    """The device of this process: under torchrun on CUDA, ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if device.type != "cuda":
        return device
    if env.enabled:
        if env.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", env.local_rank)
    elif device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


def broadcast_object(env: DistEnv, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if not env.enabled:
        return obj
    box = [obj if env.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not env.enabled:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(env: DistEnv, tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum of ``tensor`` over ranks (returned for chaining)."""
    if env.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap_ddp(
    module: nn.Module, env: DistEnv, device: torch.device, find_unused_parameters: bool = False,
    sync_buffers: bool = True,
) -> nn.Module:
    """``DistributedDataParallel(module)`` in a multi-process job, else ``module`` itself.

    ``sync_buffers``: broadcast rank 0's buffers (BatchNorm running statistics) before every forward, as
    DDP does by default; each rank's batch statistics still come from its own shard (plain BatchNorm, not
    SyncBatchNorm, as wespeaker). Gradients are bucket views (``gradient_as_bucket_view``), which saves one
    copy of the gradients.
    """
    if not env.enabled:
        return module
    kwargs: dict[str, Any] = {"find_unused_parameters": find_unused_parameters, "gradient_as_bucket_view": True}
    # torch >= 2.14 renamed broadcast_buffers to forward_sync_buffers (the old name warns)
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        kwargs["forward_sync_buffers"] = sync_buffers
    else:
        kwargs["broadcast_buffers"] = sync_buffers
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)
