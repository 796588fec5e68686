#!/usr/bin/env python
"""compute_metrics: EER, minDCF (0.01, 0.05), minCllr and, for LLR scores, actDCF and Cllr of a score file.

Usage: python scripts/compute_metrics.py --help   (sv_toolkit/cli/compute_metrics.py)
"""
from sv_toolkit.cli.compute_metrics import main

if __name__ == "__main__":
    raise SystemExit(main())
