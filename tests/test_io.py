from __future__ import annotations

import os

import pytest

from prefkit.io import atomic_path, write_text


def test_atomic_write_replaces_whole_file_with_usual_mode(tmp_path):
    p = tmp_path / "out.txt"
    old = os.umask(0o022)
    try:
        write_text(p, "first")
        write_text(p, "second")
    finally:
        os.umask(old)
    assert p.read_text() == "second" and oct(p.stat().st_mode & 0o777) == oct(0o644)
    assert list(tmp_path.iterdir()) == [p]


def test_failed_write_leaves_nothing(tmp_path):
    p = tmp_path / "out.txt"
    write_text(p, "kept")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert p.read_text() == "kept" and list(tmp_path.iterdir()) == [p]
