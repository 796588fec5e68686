"""Results tables."""
from sv_toolkit.reporting.table import SystemResult, markdown_table, results_rows

__all__ = ["SystemResult", "markdown_table", "results_rows"]
