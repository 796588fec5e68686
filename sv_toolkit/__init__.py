"""sv_toolkit: memory-efficient speaker-verification training (library; stage scripts live in scripts/)."""

__version__ = "0.1.0"  # also the package version (pyproject.toml reads it); written into every model file
