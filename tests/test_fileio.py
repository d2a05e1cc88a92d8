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


def test_every_error_the_package_raises_for_a_user_is_an_edgeperf_error() -> None:
    """One base for the one-line user errors; each keeps the builtin base older ``except`` clauses catch."""
    import importlib
    import pkgutil

    import pytest_edgeperf
    from pytest_edgeperf.errors import EdgeperfError

    errors: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(pytest_edgeperf.__path__, "pytest_edgeperf."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an extra that is not installed (the history's sqlalchemy)
            continue
        errors += [obj for obj in vars(module).values()
                   if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == info.name
                   and not obj.__name__.startswith("_")]
    assert len(errors) >= 25
    assert [e.__qualname__ for e in errors if not issubclass(e, EdgeperfError)] == []
    from pytest_edgeperf.baseline import BaselineError
    from pytest_edgeperf.power.base import MeterError

    assert issubclass(BaselineError, ValueError) and issubclass(MeterError, RuntimeError)
