"""The results history: recording runs (plugin and `edgeperf history add`), change points, acks, the dashboard.

Every scenario runs against SQLite and, when ``EDGEPERF_TEST_PG_URL`` is set (``source .ci/postgres``), against a
real PostgreSQL server. Series are written as results payloads through the same code the plugin uses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("ruptures")

from pytest_edgeperf.cli import main as edgeperf_main
from pytest_edgeperf.history.db import connect, resolve_url
from pytest_edgeperf.history.record import GitInfo, record_payload

PG_URL = os.environ.get("EDGEPERF_TEST_PG_URL")
TEST_ID = "suites/test_frameworks.py::test_tiny[onnxruntime]"


def _pg_schema_url() -> str:
    """A fresh database per test on the throw-away server (so tests do not see each other's runs)."""
    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(resolve_url(PG_URL, Path.cwd()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    if not PG_URL:
        pytest.skip("no PostgreSQL server: source .ci/postgres to start one (sets EDGEPERF_TEST_PG_URL)")
    return _pg_schema_url()


def payload(run: int, fps: float, *, top1: float = 91.0, device: str = "pi4", test_id: str = TEST_ID,
            commit: str | None = None) -> dict:
    """A results file as --edgeperf-json writes it (the fields the history reads), one result."""
    return {"schema_version": 1, "tool": "pytest-edgeperf", "version": "0.1.0", "created_unix": 1.8e9 + run * 60,
            "device": {"profile": device, "model": "Raspberry Pi 4 Model B"},
            "environment": {"git_commit": commit or f"{run:040x}", "hostname": "pi", "cpu": "Cortex-A72",
                            "machine": "aarch64", "python": "3.11.2"},
            "results": [{"test_id": test_id, "framework": "onnxruntime", "model": "zoo:tiny_cnn", "device": device,
                         "status": "ok", "quick": False, "overall_verdict": "PASS", "verdicts": [],
                         "environment": {"runtime_version": "1.20.1", "input_shape": [1, 3, 32, 32]},
                         "summary": {"fps": fps, "latency_p50_ms": 1000 / fps, "top1_pct": top1,
                                     "peak_memory_mb": 60.0}}]}


def fill(url: str, fps_values: list[float], tmp_path: Path, **kwargs: object) -> None:
    engine = connect(resolve_url(url, tmp_path))
    for run, fps in enumerate(fps_values):
        p = payload(run, fps, **kwargs)  # type: ignore[arg-type]
        record_payload(engine, p, GitInfo(p["environment"]["git_commit"], "main"))
    engine.dispose()


def stepped(n: int = 40, at: int = 25, drop: float = 0.10) -> list[float]:
    """fps with +-0.5% alternating noise, dropping by ``drop`` from run ``at``."""
    return [100.0 * (1 - drop if i >= at else 1) * (1.005 if i % 3 == 0 else 0.997) for i in range(n)]


def test_add_records_a_results_file_once(history_url: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "r.json"
    results.write_text(json.dumps(payload(0, 100.0)))
    assert edgeperf_main(["history", "add", str(results), "--url", history_url]) == 0
    assert edgeperf_main(["history", "add", str(results), "--url", history_url]) == 0
    out = capsys.readouterr().out
    assert "recorded as run 1" in out and "already in the history as run 1" in out
    import sqlalchemy as sa

    engine = connect(resolve_url(history_url, tmp_path))
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT commit_sha, device, host FROM runs")).one()
        meas = conn.execute(sa.text("SELECT runtime, provider, input_signature FROM measurements")).one()
        metrics = dict(conn.execute(sa.text("SELECT name, value FROM metrics")).all())
        version = conn.execute(sa.text("SELECT version FROM schema_version")).scalar()
    engine.dispose()
    assert run == (f"{0:040x}", "pi4", "pi")
    assert meas == ("onnxruntime", None, "[1, 3, 32, 32]")  # no provider in today's results: NULL, not guessed
    assert metrics["fps"] == 100.0 and metrics["top1_pct"] == 91.0
    assert version == 2  # schema 2: measurement_samples (baselines from the history)


def test_add_bad_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert edgeperf_main(["history", "add", str(bad), "--url", str(tmp_path / "h.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeperf: ") and "bad.json" in err and "\n" not in err
    assert not (tmp_path / "h.db").exists()  # nothing written for a file that was refused


def test_unreachable_url_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edgeperf_main(["history", "changes", "--url", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "127.0.0.1" in err and "Traceback" not in err


def test_changes_finds_the_step_and_gates_until_acknowledged(history_url: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fill(history_url, stepped(), tmp_path)
    assert edgeperf_main(["history", "changes", "--url", history_url, "--metric", "fps"]) == 1
    captured = capsys.readouterr()
    assert "REGRESSION" in captured.out and "-10.0" in captured.out
    step_commit = f"{25:040x}"
    assert f"{24:040x}"[:10] + ".." + step_commit[:10] in captured.out  # the commit range of the step
    cp_id = captured.err.split("REGRESSION ", 1)[1].split(":", 1)[0]
    assert edgeperf_main(["history", "ack", cp_id, "--url", history_url]) == 0
    assert edgeperf_main(["history", "changes", "--url", history_url, "--metric", "fps"]) == 0
    assert "ack" in capsys.readouterr().out


def test_ack_by_test_and_commit(history_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(history_url, stepped(), tmp_path)
    assert edgeperf_main(["history", "ack", "test_tiny", f"{25:040x}"[:12], "--url", history_url]) == 0
    assert edgeperf_main(["history", "changes", "--url", history_url]) == 0
    assert edgeperf_main(["history", "ack", "test_tiny", "deadbeef", "--url", history_url]) == 2
    assert "no change point starts at commit 'deadbeef'" in capsys.readouterr().err


def test_improvement_and_unchanged_do_not_gate(history_url: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fill(history_url, stepped(drop=-0.10), tmp_path)  # fps up 10%: an improvement
    fill(history_url, stepped(drop=0.0), tmp_path, test_id=TEST_ID.replace("tiny", "flat"))
    assert edgeperf_main(["history", "changes", "--url", history_url, "--all"]) == 0
    out = capsys.readouterr().out
    assert "improvement" in out and "test_flat" not in out


def test_accuracy_down_is_a_regression(history_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = connect(resolve_url(history_url, tmp_path))
    for run in range(30):
        p = payload(run, 100.0, top1=91.0 if run < 20 else 89.5)  # deterministic, 1.5 points down
        record_payload(engine, p, GitInfo(p["environment"]["git_commit"], "main"))
    engine.dispose()
    assert edgeperf_main(["history", "changes", "--url", history_url, "--metric", "top1_pct"]) == 1
    assert "top1_pct" in capsys.readouterr().out


def test_schema_from_a_newer_edgeperf_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy as sa

    db = tmp_path / "h.db"
    connect(resolve_url(str(db), tmp_path)).dispose()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    assert edgeperf_main(["history", "changes", "--url", str(db)]) == 2
    assert "newer edgeperf" in capsys.readouterr().err


_WRITER = """
import sys
from pathlib import Path
from pytest_edgeperf.history.db import connect, resolve_url
from pytest_edgeperf.history.record import GitInfo, record_payload
url, worker, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = connect(resolve_url(url, Path.cwd()))
for i in range(runs):
    p = {"schema_version": 1, "created_unix": 1.8e9 + worker * 1000 + i, "device": {"profile": f"pi{worker}"},
         "environment": {"git_commit": f"{worker}-{i}"},
         "results": [{"test_id": "t::x", "framework": "onnxruntime", "status": "ok", "summary": {"fps": 100.0 + i}}]}
    record_payload(engine, p, GitInfo(f"{worker}-{i}", "main"))
engine.dispose()
"""


@pytest.mark.usefixtures("quiet_device")
def test_concurrent_writers_lose_nothing(history_url: str, tmp_path: Path) -> None:
    """4 processes x 50 runs at once (the acceptance's fleet): 200 runs, 200 measurements, 200 metric rows."""
    import sqlalchemy as sa

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, history_url, str(w), "50"], env=env, cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True) for w in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
    engine = connect(resolve_url(history_url, tmp_path))
    with engine.connect() as conn:
        counts = [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("runs", "measurements",
                                                                                           "metrics")]
        commits = {row[0] for row in conn.execute(sa.text("SELECT commit_sha FROM runs"))}
    engine.dispose()
    assert counts == [200, 200, 200]
    assert commits == {f"{w}-{i}" for w in range(4) for i in range(50)}


def test_plugin_records_the_run_and_survives_an_unreachable_url(tiny_project: pytest.Pytester) -> None:
    tiny_project.makeini("[pytest]\n")  # the project is its own rootdir, wherever the temp dir is
    tiny_project.makepyfile(test_m="""
        import pytest

        @pytest.mark.edgeperf("tiny.onnx", frameworks=["onnxruntime"])
        def test_tiny(edgeperf):
            pass
    """)
    common = ["-p", "no:randomly", "--edgeperf-device=host", "--edgeperf-quick", "--edgeperf-no-guard",
              "--edgeperf-idle-time=0", "--edgeperf-no-reference"]
    result = tiny_project.runpytest_subprocess(*common, "--edgeperf-history=hist.db", "--edgeperf-json=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["edgeperf: recorded as run 1 in sqlite:///*hist.db"])
    # the file the plugin wrote is the same run: importing it adds nothing
    assert edgeperf_main(["history", "add", str(tiny_project.path / "r.json"), "--url",
                          str(tiny_project.path / "hist.db")]) == 0
    bad = tiny_project.runpytest_subprocess(*common, "--edgeperf-history=postgresql://nobody@127.0.0.1:1/none",
                                            "--edgeperf-json=r2.json")
    bad.assert_outcomes(passed=1)
    bad.stdout.fnmatch_lines(["edgeperf: run NOT recorded in the history: *127.0.0.1*"])
    assert (tiny_project.path / "r2.json").exists()  # the run's own results are not lost


@pytest.fixture
def step_site(tmp_path: Path) -> Path:
    url = str(tmp_path / "h.db")
    fill(url, stepped(), tmp_path)
    site = tmp_path / "site"
    assert edgeperf_main(["history", "dashboard", "--url", url, "-o", str(site)]) == 0
    return site


def test_dashboard_pages(step_site: Path) -> None:
    index = (step_site / "index.html").read_text()
    assert "Newest regressions" in index and "test_tiny" in index and "<script" not in index
    page = next((step_site / "tests").glob("*.html")).read_text()
    assert "data-metric='fps'" in page and "data-metric='top1_pct'" in page  # accuracy beside fps
    assert "class='changepoint regression'" in page
    assert f"{25:040x}"[:10] in page  # hover titles carry the commit
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing fetched at view time


@pytest.mark.usefixtures("quiet_device")
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed")
def test_dashboard_renders_in_headless_chromium(step_site: Path, tmp_path: Path) -> None:
    page = next((step_site / "tests").glob("*.html"))
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}/c",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    dom = out.stdout
    assert "<svg" in dom and "changepoint regression" in dom and "<polyline" in dom, out.stderr[-1000:]
