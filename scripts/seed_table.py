#!/usr/bin/env python
"""seed_table: several seeds of several systems -> mean ± sd, bootstrap intervals, JSON and a README block.

Usage: python scripts/seed_table.py --help   (sv_toolkit/cli/seed_table.py)
"""
from sv_toolkit.cli.seed_table import main

if __name__ == "__main__":
    raise SystemExit(main())
