"""Change points of a history series: a slow drift is ONE reported change, separate steps stay separate.

``detect`` (PELT + rank test) cuts a slow drift into a staircase of same-direction change points; ``merge_drifts``
joins those whose level in between keeps moving the same way into one drift "from run X to run Y, total Z%". The
CLI (``edgeperf history changes``) and the dashboard show it as one. Series are written through the plugin's own
recording code into a SQLite history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("ruptures")

from pytest_edgeperf.cli import main as edgeperf_main
from pytest_edgeperf.history.changes import REGRESSION, Filters, analyse, detect, merge_drifts
from pytest_edgeperf.history.db import connect, resolve_url
from pytest_edgeperf.history.record import GitInfo, record_payload

TEST_ID = "suites/test_frameworks.py::test_tiny[onnxruntime]"


def sha(run: int) -> str:
    """A commit id per run whose first 10 characters differ (what the commit range shows)."""
    return f"c{run:03d}".ljust(40, "0")


def noisy(n: int, seed: int = 1, sd: float = 0.002) -> np.ndarray:
    """Multiplicative run-to-run noise of ``sd`` (0.2%: a bit above what the benchmark measured on an idle VM)."""
    return 1 + np.random.default_rng(seed).normal(0, sd, n)


def drifting(n: int = 200, per_run: float = 0.002, seed: int = 1, sd: float = 0.002) -> list[float]:
    """fps that loses ``per_run`` of its work per run from the first run on (the benchmark's drift series)."""
    return list(1000.0 / (1 + per_run * np.arange(1, n + 1)) * noisy(n, seed, sd))


def two_steps(n: int = 200, seed: int = 2) -> list[float]:
    """fps 5% down at run 60 and another 5% down at run 140, flat in between."""
    level = np.where(np.arange(n) >= 60, 0.95, 1.0) * np.where(np.arange(n) >= 140, 0.95, 1.0)
    return list(1000.0 * level * noisy(n, seed))


def record(db: Path, fps_values: list[float]) -> str:
    url = resolve_url(str(db), db.parent)
    engine = connect(url)
    for run, fps in enumerate(fps_values):
        commit = sha(run)
        payload = {"schema_version": 1, "tool": "pytest-edgeperf", "version": "0.1.0", "created_unix": 1.8e9 + run,
                   "device": {"profile": "pi4", "model": None}, "environment": {"git_commit": commit},
                   "results": [{"test_id": TEST_ID, "framework": "onnxruntime", "model": "zoo:tiny_cnn",
                                "device": "pi4", "status": "ok", "quick": False, "environment": {},
                                "summary": {"fps": float(fps)}}]}
        record_payload(engine, payload, GitInfo(commit, "main"))
    engine.dispose()
    return str(db)


@pytest.mark.parametrize("sd", [0.002, 0.005])  # 0.5%: the noisiest run-to-run noise the benchmark met (busy VM)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slow_drift_is_a_staircase_that_merges_into_one_change(seed: int, sd: float) -> None:
    values = drifting(seed=seed, sd=sd)
    found = detect(values)
    assert len(found) >= 3  # what PELT proposes: a staircase
    groups = merge_drifts(values, found)
    assert groups == [list(range(len(found)))]  # ... reported as one


def test_two_separate_steps_with_a_flat_level_between_stay_two() -> None:
    values = two_steps()
    found = detect(values)
    assert [i for i, _ in found] == [60, 140]
    assert merge_drifts(values, found) == [[0], [1]]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_three_separate_steps_stay_three(seed: int) -> None:
    n = 200
    i = np.arange(n)
    level = np.where(i >= 50, 0.96, 1.0) * np.where(i >= 100, 0.96, 1.0) * np.where(i >= 150, 0.96, 1.0)
    values = list(1000.0 * level * noisy(n, seed, 0.005))
    found = detect(values)
    assert [i for i, _ in found] == [50, 100, 150]
    assert merge_drifts(values, found) == [[0], [1], [2]]


def test_a_step_down_and_back_up_is_not_merged() -> None:
    n = 120
    values = list(1000.0 * np.where((np.arange(n) >= 40) & (np.arange(n) < 80), 0.9, 1.0) * noisy(n, 3))
    found = detect(values)
    assert [i for i, _ in found] == [40, 80]
    assert merge_drifts(values, found) == [[0], [1]]


def test_history_reports_the_drift_once_with_its_span_and_total(tmp_path: Path) -> None:
    url = record(tmp_path / "h.db", drifting())
    engine = connect(resolve_url(url, tmp_path))
    analysis = analyse(engine, Filters(metrics=("fps",)))
    engine.dispose()
    (cp,) = analysis.changes
    assert cp.kind == REGRESSION and cp.is_drift and cp.steps >= 3
    assert cp.index < 40 and cp.last_index > 160  # from early to late in the series
    assert -35 < cp.change_pct < -20  # the total between the first and the last level (1/1.4 - 1 = -29% overall)
    assert cp.where() == f"drift over {cp.steps} steps from run {cp.index + 1} to run {cp.last_index + 1} of 200"
    assert cp.commit_range() == sha(cp.index - 1)[:10] + ".." + sha(cp.last_index)[:10]


def test_step_stays_exact_and_flat_series_has_no_change(tmp_path: Path) -> None:
    n = 200
    step = list(1000.0 * np.where(np.arange(n) >= 120, 1 / 1.1, 1.0) * noisy(n, 4))
    engine = connect(resolve_url(record(tmp_path / "s.db", step), tmp_path))
    (cp,) = analyse(engine).changes
    engine.dispose()
    assert cp.index == 120 and not cp.is_drift and cp.where() == "step at run 121 of 200"
    engine = connect(resolve_url(record(tmp_path / "f.db", list(1000.0 * noisy(n, 5))), tmp_path))
    assert analyse(engine).changes == []
    engine.dispose()


def test_cli_and_dashboard_show_one_drift_and_an_ack_holds_until_it_goes_further(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = drifting()
    url = record(tmp_path / "h.db", values[:150])
    assert edgeperf_main(["history", "changes", "--url", url, "--all"]) == 1
    captured = capsys.readouterr()
    assert captured.out.lower().count("regression") == 1 and "drift over" in captured.out
    assert "drift over" in captured.err  # the gating line names it too
    cp_id = captured.err.split("REGRESSION ", 1)[1].split(":", 1)[0]
    assert edgeperf_main(["history", "ack", cp_id, "--url", url]) == 0
    assert edgeperf_main(["history", "changes", "--url", url]) == 0
    capsys.readouterr()
    # the drift goes on: the acknowledgement covered it as far as it went, a further step reopens it
    engine = connect(resolve_url(url, tmp_path))
    for run in range(150, 200):
        commit = sha(run)
        record_payload(engine, {"schema_version": 1, "tool": "pytest-edgeperf", "version": "0.1.0",
                                "created_unix": 1.8e9 + run, "device": {"profile": "pi4", "model": None},
                                "environment": {"git_commit": commit},
                                "results": [{"test_id": TEST_ID, "framework": "onnxruntime", "model": "zoo:tiny_cnn",
                                             "device": "pi4", "status": "ok", "quick": False, "environment": {},
                                             "summary": {"fps": values[run]}}]}, GitInfo(commit, "main"))
    engine.dispose()
    assert edgeperf_main(["history", "changes", "--url", url]) == 1
    capsys.readouterr()
    site = tmp_path / "site"
    assert edgeperf_main(["history", "dashboard", "--url", url, "-o", str(site)]) == 0
    page = next((site / "tests").glob("*.html")).read_text()
    assert page.count("class='drift regression'") == 1 and "drift over" in page
    assert page.count("class='changepoint regression'") == 1  # one reported change, not a staircase
