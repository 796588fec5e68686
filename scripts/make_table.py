#!/usr/bin/env python
"""make_table: experiment folders -> Markdown results tables, results.json rows and a DET-curve PNG.

Usage: python scripts/make_table.py --help   (sv_toolkit/cli/make_table.py)
"""
from sv_toolkit.cli.make_table import main

if __name__ == "__main__":
    raise SystemExit(main())
