"""What a built wheel holds: every module and the declared package data, nothing the package reads from the
checkout (the suites' trained models live in ``suites/``, not in the package)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
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
    suites' weights through ``Path(__file__).parents[1] / "suites"``): no path built from the package's own location
    reaches into them. A folder of that name elsewhere (the dashboard's ``out / "tests"``) is not the checkout's."""
    checkout_dirs = re.compile(r"""["'](suites|tests|scripts)["']""")
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in PACKAGE.rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if checkout_dirs.search(line) and ("__file__" in line or ".parent" in line)]
    assert offenders == []


@pytest.mark.usefixtures("quiet_device")
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


def test_without_opencv_an_image_dataset_is_a_one_line_failure_naming_the_extra(
        tiny_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """An [onnx]-only install: the plugin loads and measures; a test that reads images fails with one line that
    says which extra to install (not ``ModuleNotFoundError: No module named 'cv2'`` from the plugin)."""
    import cv2

    images = tiny_project.path / "images" / "cat"
    images.mkdir(parents=True)
    cv2.imwrite(str(images / "0.png"), np.zeros((20, 20, 3), np.uint8))
    blocked = tiny_project.path / "blocked" / "cv2"  # on PYTHONPATH for pytest and its workers: no OpenCV
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("OpenCV is not installed (blocked for this test)")\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(blocked.parent),
                                                                      os.environ.get("PYTHONPATH")])))
    tiny_project.makepyfile(test_images="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"])
        def test_random_inputs(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"])
        def test_image_inputs(edgeperf):
            edgeperf.measure(inputs="images", preprocess={"size": [16, 16]})
    """)
    result = tiny_project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--edgeperf-quick")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*needs OpenCV: pip install 'pytest-edgeperf[[]opencv[]]'*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
