"""Atomic writes: old or new file, never half of one; no temporary files left; normal modes."""

import os
import stat
from pathlib import Path

import pytest

from tensorrnn.atomic import atomic_write, atomic_write_json, atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"accuracy": 0.9})

    def crash(handle):
        handle.write("{half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_text() == '{\n  "accuracy": 0.9\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_files_get_the_mode_open_would_give(tmp_path: Path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.md", "# report\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "# report\n"
