"""Results tables (Markdown, results.json rows) and DET plots from experiment folders."""
from sv_toolkit.reporting.collect import expand_folders, find_systems, load_system
from sv_toolkit.reporting.report import Report, det_series, write_report
from sv_toolkit.reporting.table import (
    SystemResult,
    calibration_table,
    markdown_table,
    results_markdown,
    results_rows,
)

__all__ = [
    "Report",
    "SystemResult",
    "calibration_table",
    "det_series",
    "expand_folders",
    "find_systems",
    "load_system",
    "markdown_table",
    "results_markdown",
    "results_rows",
    "write_report",
]
