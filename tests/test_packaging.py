"""What a built wheel holds: every module and the declared package data, nothing the package reads from the
checkout (the suites' trained models live in ``suites/``, not in the package)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_edgeperf"
tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")  # tomli: pytest's own dep


def test_every_declared_package_data_pattern_matches_a_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["pytest_edgeperf"]
    assert "py.typed" in patterns
    for pattern in patterns:
        assert list(PACKAGE.glob(pattern)), f"package-data {pattern!r} matches no file in pytest_edgeperf/"


def test_no_module_reads_files_from_the_checkout() -> None:
    """An installed package has no suites/, tests/ or scripts/ next to it (trained.py read the
    suites' weights through ``Path(__file__).parents[1] / "suites"``)."""
    checkout_dirs = re.compile(r"""["'](suites|tests|scripts)["']""")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in PACKAGE.rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if checkout_dirs.search(line)]
    assert offenders == []


def test_the_wheel_holds_every_module_py_typed_and_the_entry_points(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="pip install build (a dev dependency)")
    source = tmp_path / "src"  # a copy: the build writes build/ and *.egg-info next to the sources
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("pytest_edgeperf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    assert modules - names == set()
    assert "pytest_edgeperf/py.typed" in names
    assert not any(n.startswith(("suites/", "tests/", "baselines/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edgeperf = pytest_edgeperf.plugin" in text and "edgeperf = pytest_edgeperf.cli:main" in text
