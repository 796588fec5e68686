"""seed_table: several seeds of several systems -> mean ± sd, bootstrap intervals, JSON and a README block.

    python scripts/seed_table.py exp/librimini_seeds/seed1 exp/librimini_seeds/seed2 exp/librimini_seeds/seed3 \\
        --data librimini --systems resnet10_w8,revnet10_ii_w8 --trial-list librimini_all \\
        --test-manifest data/librimini/manifests/test/utterances.tsv \\
        --json docs/results/librimini.json --readme README.md --block librimini_seeds

Each positional argument is one seed's experiment root (``exp_root=`` of the stages); its folder name names the
seed (``seed3`` -> ``3``). ``--write-records DIR`` also keeps each run's record (``DIR/seed<S>/<system>.json``);
``--from-records DIR`` makes the table from such records alone (no roots, no scores needed), so a long table
can grow one run at a time. See sv_toolkit.reporting.seeds for what is read and computed. With ``--readme``, the
lines between ``<!-- make_table:<block> -->`` and ``<!-- /make_table:<block> -->`` are replaced.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from sv_toolkit.cli.common import reports_errors
from sv_toolkit.cli.make_table import replace_block
from sv_toolkit.errors import ConfigError
from sv_toolkit.reporting.seeds import (markdown, provenance, read_records, seed_records, summarise_records,
                                        write_records)
from sv_toolkit.utils.io import write_text_atomic


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seed_table", description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="*", type=Path, help="one experiment root per seed (exp_root=)")
    p.add_argument("--data", required=True, help="data.name (the folder under each root)")
    p.add_argument("--from-records", type=Path, help="make the table from the run records in this folder")
    p.add_argument("--write-records", type=Path, help="keep each run's record in this folder")
    p.add_argument("--systems", required=True, help="comma-separated system names, in table order")
    p.add_argument("--trial-list", required=True)
    p.add_argument("--test-manifest", type=Path, help="the test split's utterances.tsv (needed with roots)")
    p.add_argument("--bootstrap", type=int, default=1000, help="speaker resamples (default 1000)")
    p.add_argument("--json", type=Path, help="write the rows and their provenance here")
    p.add_argument("--readme", type=Path, help="Markdown file whose make_table:<block> block is replaced")
    p.add_argument("--block", default="", help="block name in --readme (default: <data>_seeds)")
    p.add_argument("--note", default="", help="a line printed under the table (e.g. the run time)")
    return p


def _seed_name(root: Path) -> str:
    m = re.fullmatch(r"seed[_-]?(\w+)", root.name)
    return m.group(1) if m else root.name


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    if args.from_records:
        if args.roots or args.write_records:
            raise ConfigError("--from-records makes the table from records alone: give no roots and no --write-records")
        records = read_records(args.from_records, systems, args.trial_list)
    else:
        if not args.roots or args.test_manifest is None:
            raise ConfigError("give one experiment root per seed and --test-manifest (or --from-records DIR)")
        roots = {_seed_name(r): r for r in args.roots}
        if len(roots) != len(args.roots):
            raise ConfigError(f"two roots name the same seed: {[str(r) for r in args.roots]}")
        records = seed_records(roots, args.data, systems, args.trial_list, args.test_manifest, args.bootstrap)
        if args.write_records:
            for path in write_records(args.write_records, records):
                print(f"record: {path}")
    rows = [summarise_records(records[s]) for s in systems]
    meta = {**provenance(), "command": "python scripts/seed_table.py " + shlex.join(argv if argv is not None
                                                                                   else sys.argv[1:])}
    table = markdown(rows, args.trial_list, meta) + (f"\n{args.note}\n" if args.note else "")
    print(table)
    if args.json:
        write_text_atomic(args.json, json.dumps({**meta, "trial_list": args.trial_list, "note": args.note,
                                                 "systems": rows}, indent=1) + "\n")
        print(f"JSON: {args.json}")
    if args.readme:
        block = args.block or f"{args.data}_seeds"
        write_text_atomic(args.readme, replace_block(args.readme.read_text(), block, table, args.readme))
        print(f"updated {args.readme} (block {block})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
