"""The GPU check's summary page: device, test counts, training-step peaks and optimizer figures, from the
files the check wrote (``bash scripts/gpu_check.sh OUT``; then ``python benchmarks/gpu_report.py OUT``)."""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

GIB = 2**30


def _tests(out: Path) -> list[str]:
    xml = out / "gpu_tests.xml"
    if not xml.is_file():
        return ["gpu tests: no report (gpu_tests.xml missing)"]
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    a = suite.attrib
    return [f"gpu tests: {a.get('tests')} collected, {a.get('failures')} failed, {a.get('errors')} errors, "
            f"{a.get('skipped')} skipped, {float(a.get('time', 0)):.0f} s (`pytest -m gpu`)"]


def _peaks(out: Path) -> list[str]:
    path = out / "peaks.json"
    if not path.is_file():
        return ["training-step peaks: not measured (peaks.json missing)"]
    data = json.loads(path.read_text())
    summary = {(s["model"], s["optimizer"]): s for s in data["summary"]}
    lines = ["### Full training step: torch.cuda.max_memory_allocated (weights, grads, optimizer states, "
             "activations, workspace)", "", f"`python benchmarks/train_step_peak.py {' '.join(data['argv'])}`", "",
             "| model | optimizer | params | batch | peak GiB | step s | batch-128 GiB (EXTRAPOLATED when batch < 128) |",
             "|---|---|---|---|---|---|---|"]
    for (model, opt), s in summary.items():
        if not s["fits"]:
            lines.append(f"| {model} | {opt} | - | none fits | - | - | - |")
            continue
        extra = f"{s['extrapolated_bytes'] / GIB:.2f}" if s["batch"] < 128 and "extrapolated_bytes" in s else "-"
        lines.append(f"| {model} | {opt} | {s['params'] / 1e6:.2f}M | {s['batch']} | {s['peak_bytes'] / GIB:.3f} | "
                     f"{s['step_s']:.3f} | {extra} |")
    lines += ["", "| pair | memory: vanilla + adam / reversible + adam8bit (same batch) | step time reversible / vanilla |",
              "|---|---|---|"]
    for depth in ("34", "293"):
        van, rev = summary.get((f"resnet{depth}", "adam")), summary.get((f"revnet{depth}_ii", "adam8bit"))
        if van and rev and van["fits"] and rev["fits"]:
            same = van["batch"] == rev["batch"]
            mem = f"{van['peak_bytes'] / rev['peak_bytes']:.1f}x" if same else (
                f"batches differ ({van['batch']} vs {rev['batch']}): compare the per-batch figures above")
            lines.append(f"| revnet{depth}_ii + adam8bit vs resnet{depth} + adam | {mem} | "
                         f"{rev['step_s'] / van['step_s']:.2f}x (batches {rev['batch']} / {van['batch']}) |")
    return lines


def _optim(out: Path) -> list[str]:
    path = out / "optim.json"
    if not path.is_file():
        return ["8-bit optimizers: not measured (optim.json missing)"]
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "markdown" in data:
        return ["### 8-bit optimizers on CUDA", "", data["markdown"]]
    rows = data["rows"] if isinstance(data, dict) else data
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return ["### 8-bit optimizers on CUDA", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] + [
        "| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise SystemExit("usage: python benchmarks/gpu_report.py OUT (the folder scripts/gpu_check.sh wrote)")
    out = Path(argv[0])
    env = json.loads((out / "env.json").read_text())
    device = env.get("device", "no CUDA device")
    lines = [f"## GPU check on {device}", "",
             f"torch {env['torch']} (CUDA {env['torch_cuda']}), Python {env['python']}, bitsandbytes "
             f"{env.get('bitsandbytes') or 'not installed'}", ""]
    lines += _tests(out) + [""] + _peaks(out) + [""] + _optim(out)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
