"""make_table: experiment folders -> Markdown results tables, results.json rows and a DET-curve PNG.

    python scripts/make_table.py exp/minivox                        # every scored system of exp/minivox
    python scripts/make_table.py exp/minivox/resnet10_w8 exp/minivox/revnet10_ii_w8 --out /tmp/cmp
    python scripts/make_table.py exp/minivox exp/librimini --readme README.md --figures docs

Each argument is a data folder (``exp/<data>``: all its scored systems) or a system folder
(``exp/<data>/<system>``); systems are grouped into one table per data folder. Output per table, into
``--out`` (one table) or ``--out/<data>`` (several; default: the data folder itself): ``results.md``,
``results.json`` (the table stage's files) and ``det.png``. With ``--readme``, the block between the lines
``<!-- make_table:<data> -->`` and ``<!-- /make_table:<data> -->`` of that file is replaced by the table, and the
DET plot is copied to ``--figures/det_<data>.png`` and linked from it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

from sv_toolkit.cli.common import reports_errors
from sv_toolkit.errors import ConfigError, InputFileError, MissingFileError
from sv_toolkit.reporting import expand_folders, load_system, results_markdown, write_report
from sv_toolkit.utils.io import read_json, write_text_atomic


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_table", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="exp/<data> or exp/<data>/<system> folders")
    p.add_argument("--out", type=Path, help="output folder (default: each data folder)")
    p.add_argument("--title", help="table title (one table only; default '<data> (<description>)')")
    p.add_argument("--no-plot", action="store_true", help="no DET plot (no matplotlib needed)")
    p.add_argument("--readme", type=Path, help="Markdown file whose make_table:<data> blocks are replaced")
    p.add_argument("--figures", type=Path, default=Path("docs"), help="where --readme's DET PNGs go (docs)")
    return p


def default_title(name: str, systems: list[Path]) -> str:
    """'<data> (<description>)' from a system's score-stage record, as the table stage titles it."""
    for s in systems:
        done = s / "score" / ".done"
        if done.is_file():
            description = (read_json(done).get("config", {}).get("data") or {}).get("description")
            if description:
                return f"{name} ({description})"
    return name


def replace_block(text: str, name: str, content: str, path: Path) -> str:
    """``text`` with the lines between the make_table:<name> markers replaced by ``content``."""
    pattern = re.compile(rf"(<!-- make_table:{re.escape(name)} -->\n).*?(<!-- /make_table:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise InputFileError(
            f"{path} has no block '<!-- make_table:{name} -->' ... '<!-- /make_table:{name} -->'; add those two lines "
            "where the table should go"
        )
    return pattern.sub(lambda m: m.group(1) + content + m.group(2), text)


@reports_errors
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    tables = expand_folders(args.folders)
    if args.title and len(tables) > 1:
        raise ConfigError(f"--title names one table, but the folders make {len(tables)}: {sorted(tables)}")
    if args.readme is not None and not args.readme.is_file():
        raise MissingFileError(f"--readme {args.readme} does not exist")
    readme = args.readme.read_text() if args.readme else None
    for name, systems in tables.items():
        results = [load_system(s) for s in systems]
        if args.out is None:
            out = systems[0].parent
        else:
            out = args.out if len(tables) == 1 else args.out / name
        title = args.title or default_title(name, systems)
        report = write_report(results, out, title=title, det_plot=not args.no_plot)
        print(report.markdown)
        print(f"Markdown table: {report.results_md}\nJSON rows:      {report.results_json}")
        if report.det_png is not None:
            print(f"DET plot:       {report.det_png}")
        if readme is not None:
            link = None
            if report.det_png is not None:
                figure = args.figures / f"det_{name}.png"
                figure.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(report.det_png, figure)
                link = Path(os.path.relpath(figure.resolve(), args.readme.resolve().parent)).as_posix()
                print(f"DET plot copied to {figure}")
            readme = replace_block(readme, name, results_markdown(results, title, det_plot=link), args.readme)
    if readme is not None:
        write_text_atomic(args.readme, readme)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
