"""Command-line tools: sv-verify, sv-embed, sv-export (console scripts) and the scripts compute_metrics.py and
make_table.py. Each module has ``main(argv=None) -> int``."""
