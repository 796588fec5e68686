"""Shared fixtures: paths to the repository and to the real speech in ../shared/data."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real speech samples not found at {SHARED_DATA} (the project's shared/data folder)")
    return SHARED_DATA
