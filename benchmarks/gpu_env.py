"""The GPU check's first step: the device, the versions, and an import of everything the check calls.

Prints one JSON object. Exits 1 when a required module does not import (the check would fail later, after
spending device time); bitsandbytes is optional (its absence is reported, and the optimizer comparison runs
without it).
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIRED_SCRIPTS = ("benchmarks/train_step_peak.py", "benchmarks/benchmark_optim.py", "benchmarks/gpu_report.py")


def _import_all(package: str) -> list[str]:
    """Import every module of ``package``; the names that failed, with the error."""
    failed = []
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(info.name)
        except Exception as err:  # noqa: BLE001 - reported, and the check stops on it
            failed.append(f"{info.name}: {type(err).__name__}: {err}")
    return failed


def _compile_script(path: Path) -> str | None:
    try:
        compile(path.read_text(), str(path), "exec")
    except (OSError, SyntaxError) as err:
        return f"{path}: {err}"
    return None


def main() -> int:
    import torch

    info: dict = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
                  "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update({"device": props.name, "device_memory_bytes": props.total_memory,
                     "multiprocessors": props.multi_processor_count, "capability": list(torch.cuda.get_device_capability(0))})
    failed = _import_all("sv_toolkit")
    for package in ("hydra", "omegaconf", "soundfile", "pytest"):
        try:
            importlib.import_module(package)
        except Exception as err:  # noqa: BLE001 - reported, and the check stops on it
            failed.append(f"{package}: {type(err).__name__}: {err}")
    failed += [e for s in REQUIRED_SCRIPTS if (e := _compile_script(REPO / s))]
    try:
        import bitsandbytes

        info["bitsandbytes"] = bitsandbytes.__version__
    except Exception as err:  # noqa: BLE001 - optional
        info["bitsandbytes"] = None
        info["bitsandbytes_error"] = "".join(traceback.format_exception_only(type(err), err)).strip()
    info["import_failures"] = failed
    print(json.dumps(info, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
