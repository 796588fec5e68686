#!/usr/bin/env bash
# Wheels for the GPU machine (its image has torch, numpy, tensorboard, scikit-learn, onnx, pytest ... but not these;
# it reaches no package index). Run here, then carry .whl: the device tool's run(carry=[".whl"]).
#   bash scripts/gpu_wheels.sh        -> .whl/*.whl for CPython 3.12 on manylinux x86_64 (about 45 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl hydra-core==1.3.2 omegaconf==2.3.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 bitsandbytes==0.50.2
# antlr4-python3-runtime (hydra's parser) is published as an sdist only: build its pure-Python wheel here
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -1 .whl
