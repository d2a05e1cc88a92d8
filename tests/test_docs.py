"""The documentation: a short README that starts with the quick start, a complete options reference, a strict build.

The options page is generated from the plugin's option table when the site is built (``docs/hooks.py``); these
tests prove the generator covers every option pytest actually registers, and that the site builds with
``mkdocs build --strict`` (broken links, pages missing from the nav).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_LIMIT_BYTES = 8192
QUICK_START = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[all]" && pytest suites/',
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python -m pytest tests -n 2',
)


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgeperf_docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short_and_starts_with_the_quick_start() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move the text into docs/ (limit 8 KB)"
    head = README.read_text(encoding="utf-8").splitlines()[:25]
    for command in QUICK_START:
        assert command in head, f"README.md's first 25 lines lack the quick-start command: {command}"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's second quick-start command (with CI's extra flags), so the README stays true."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme_command = QUICK_START[1].rsplit(" && ", 1)[1]
    assert readme_command in ci


def test_readme_links_into_the_docs_resolve() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text(encoding="utf-8"))
    assert links, "README.md links into docs/"
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_options_reference_lists_every_registered_option(pytester: pytest.Pytester) -> None:
    """Every --edgeperf- option pytest registers is a row of the generated table, and nothing else is."""
    config = pytester.parseconfig()
    registered = {dest for dest in vars(config.option) if dest.startswith("edgeperf_")}
    assert len(registered) > 20, "the plugin's options are not registered"
    table = _hooks().options_markdown()
    rows = re.findall(r"^\| `--(edgeperf-[a-z0-9-]+)`", table, flags=re.MULTILINE)
    documented = {row.replace("-", "_") for row in rows}
    assert registered - documented == set(), f"options missing from the options page: {registered - documented}"
    assert documented - registered == set(), f"options documented but not registered: {documented - registered}"
    page = (ROOT / "docs" / "reference" / "options.md").read_text(encoding="utf-8")
    assert _hooks().OPTIONS_MARK in page, "the options page no longer asks for the generated table"


def test_marker_reference_lists_every_marker_argument() -> None:
    from pytest_edgeperf.config import MarkerSpec

    page = (ROOT / "docs" / "reference" / "marker.md").read_text(encoding="utf-8")
    missing = [name for name in MarkerSpec.__dataclass_fields__ if f"`{name}`" not in page]
    assert not missing, f"marker arguments missing from docs/reference/marker.md: {missing}"


@pytest.mark.usefixtures("quiet_device")
def test_site_builds_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    options = (site / "reference" / "options.html").read_text(encoding="utf-8")
    assert "--edgeperf-update-baselines" in options and "edgeperf:options" not in options
    assert "edgeperf merge" in (site / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
