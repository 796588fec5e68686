"""Shared fixtures: paths to the repository and to the real speech in ../shared/data.

Every production path is tested on fixtures the tests generate (tests/fake_corpora.py). Tests on the real speech
of ../shared/data are extra checks, marked ``shared_data`` (a test that asks for the ``shared_data`` fixture gets
the mark too). Where the folder is absent they are deselected, and the terminal summary says how many and why:
a clean clone's skips are then only the GPU tests and those of absent optional tools.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
_DESELECTED = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real speech samples (only reached when present: the tests that need them are deselected otherwise)."""
    return SHARED_DATA


@pytest.hookimpl(tryfirst=True)  # before -m selects by marks, so that -m shared_data sees the added ones
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker("shared_data")
    if SHARED_DATA.is_dir():
        return
    extra = [item for item in items if item.get_closest_marker("shared_data")]
    if extra:
        config.hook.pytest_deselected(items=extra)
        items[:] = [item for item in items if not item.get_closest_marker("shared_data")]
    config.stash[_DESELECTED] = len(extra)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    count = config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} real-speech check{'s' * (count != 1)} (marked shared_data) deselected: {SHARED_DATA} not found. "
            "They are extra checks beside the tests on generated fixtures; put the project's shared/ folder beside "
            "the repository to run them."
        )
