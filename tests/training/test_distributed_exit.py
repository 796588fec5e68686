"""A torchrun job's ranks leave no gloo thread alive at interpreter exit (issue 15's SIGABRT at exit)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sv_toolkit.training.distributed import gloo_threads

PROBE = Path(__file__).with_name("ddp_exit_probe.py")
pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread names need Linux /proc")


def _run_probe(*args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(PROBE), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, rows


def test_shutdown_joins_the_gloo_threads_of_every_rank():
    proc, rows = _run_probe()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    assert all(r["gloo_threads"] == [] for r in rows), rows


def test_probe_sees_the_threads_a_live_ddp_wrapper_keeps():
    """The check above can fail: a DDP wrapper alive at shutdown keeps gloo's worker threads running."""
    proc, rows = _run_probe("--keep-ddp")
    assert sorted(r["rank"] for r in rows) == [0, 1], proc.stderr[-4000:]
    assert all("pt_gloo_runloop" in r["gloo_threads"] for r in rows), rows


def test_gloo_threads_is_empty_in_a_process_without_a_group():
    assert gloo_threads() == []
