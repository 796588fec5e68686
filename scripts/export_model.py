#!/usr/bin/env python
"""Export a trained extractor to TorchScript or ONNX (the sv-export console script).

Usage: python scripts/export_model.py --model exp/<data>/<system>/train/model_avg.pt --out model.onnx
"""
from sv_toolkit.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())
