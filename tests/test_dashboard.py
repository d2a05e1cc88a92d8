"""The trend dashboard (``edgeperf history dashboard``), issue 19 point 3: the landing page lists the newest
regressions and improvements across devices; a test's page has one row of trend charts per (device, runtime) with
accuracy and FoM beside fps, change points marked, and each point's commit and value in its hover title.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("ruptures")

from pytest_edgeperf.cli import main as edgeperf_main
from pytest_edgeperf.history.db import connect, resolve_url
from pytest_edgeperf.history.record import GitInfo, record_payload

TEST_ID = "suites/test_pretrained.py::test_classifier[mobilenet_v1-onnxruntime]"


def sha(run: int) -> str:
    return f"d{run:03d}".ljust(40, "0")


def fill_two_boards(db: Path) -> str:
    """40 runs on pi4 and pi5: pi4's fps drops 10% at run 25, pi5's rises 10% there; accuracy and FoM alongside."""
    engine = connect(resolve_url(str(db), db.parent))
    for run in range(40):
        for device, factor in (("pi4", 0.9), ("pi5", 1.1)):
            fps = 50.0 * (factor if run >= 25 else 1.0) * (1.004 if run % 3 == 0 else 0.998)
            payload = {"schema_version": 1, "tool": "pytest-edgeperf", "version": "0.1.0",
                       "created_unix": 1.8e9 + run * 60, "device": {"profile": device, "model": None},
                       "environment": {"git_commit": sha(run)},
                       "results": [{"test_id": TEST_ID, "framework": "onnxruntime", "model": "zoo:mobilenet_v1",
                                    "device": device, "status": "ok", "quick": False, "environment": {},
                                    "summary": {"fps": fps, "latency_p50_ms": 1000 / fps, "top1_pct": 70.6,
                                                "fom_top1_per_j": 70.6 * fps / 4.0, "cpu_wait_pct": 1.0}}]}
            record_payload(engine, payload, GitInfo(sha(run), "main"))
    engine.dispose()
    return str(db)


def test_landing_page_and_test_page(tmp_path: Path) -> None:
    url = fill_two_boards(tmp_path / "h.db")
    site = tmp_path / "site"
    assert edgeperf_main(["history", "dashboard", "--url", url, "-o", str(site)]) == 0
    index = (site / "index.html").read_text()
    regressions, improvements = index.split("Newest regressions", 1)[1].split("Newest improvements", 1)
    assert "<td>pi4</td>" in regressions and "<td>pi5</td>" not in regressions.split("<h2>", 1)[0]
    assert "<td>pi5</td>" in improvements.split("<h2>", 1)[0]
    assert "step at run 26 of 40" in index
    (page_path,) = (site / "tests").glob("*.html")
    assert f"href='tests/{page_path.name}'" in index
    page = page_path.read_text()
    # one row of charts per (device, runtime), fps first, then latency, accuracy and FoM beside it
    rows = page.split("<h2>")[2:]
    assert [r.split("</h2>", 1)[0] for r in rows] == ["pi4 · onnxruntime", "pi5 · onnxruntime"]
    for row in rows:
        assert re.findall(r"data-metric='([^']+)'", row) == ["fps", "latency_p50_ms", "top1_pct", "fom_top1_per_j"]
    assert page.count("class='changepoint regression'") >= 1 and page.count("class='changepoint improvement'") >= 1
    # hover: a point's commit and value; a change point's size and commit range
    assert re.search(rf"<title>{sha(25)[:10]} · run \d+ · [^<]* fps 44\.9</title>", page)
    assert f"{sha(24)[:10]}..{sha(25)[:10]}" in page
    assert "<script" not in page and "<script" not in index  # static: opens from file:// and GitHub Pages
