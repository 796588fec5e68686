"""Atomic outputs keep the permissions a plain write would give (mkstemp / mkdtemp alone make them private)."""
from __future__ import annotations

import os
import stat

from sv_toolkit.utils.io import atomic_dir, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_file_and_dir_get_the_umask_default_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    write_text_atomic(atomic, "x")
    assert _mode(atomic) == _mode(plain) and atomic.read_text() == "x"
    (tmp_path / "plain_dir").mkdir()
    with atomic_dir(tmp_path / "atomic_dir") as d:
        (d / "f").write_text("y")
    assert _mode(tmp_path / "atomic_dir") == _mode(tmp_path / "plain_dir")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
