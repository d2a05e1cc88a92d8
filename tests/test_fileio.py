"""The one atomic writer: a reader sees the old file or the new one, never half of one, and no temp file stays."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pytest_edgeperf.fileio import atomic_path, atomic_write_bytes, atomic_write_text


def test_bytes_and_text_replace_the_file_shared_readable_without_a_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    atomic_write_bytes(path, b"\x00new")
    assert path.read_bytes() == b"\x00new"
    atomic_write_text(tmp_path / "report.txt", "é\n")
    assert (tmp_path / "report.txt").read_text(encoding="utf-8") == "é\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp's 0600 would hide a shared cache from its users
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "report.txt"]


def test_a_writer_that_fails_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="quantiser crashed"), atomic_path(path, suffix=".tmp.onnx") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("quantiser crashed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
