"""Baselines written from the results history (issue 19 point 4): `edgeperf history baselines`.

One real run of a small model is recorded by the plugin (``--edgeperf-history``); its results file, with its
latencies scaled to make a step, gives the series (the same code the plugin records with). The written entry must
hold the figures of the runs after the change point: the newest run's as the entry, the others as its history.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("ruptures")

from test_history import history_url  # noqa: F401 (the fixture: SQLite, and PostgreSQL when a server is up)

from pytest_edgeperf.baseline import BaselineEntry, BaselineStore
from pytest_edgeperf.cli import main as edgeperf_main
from pytest_edgeperf.history.db import connect, resolve_url
from pytest_edgeperf.history.record import GitInfo, record_payload
from pytest_edgeperf.result import Result
from pytest_edgeperf.verdict.judge import judge

RUNS, STEP_AT = 12, 6
FLAGS = ["-p", "no:randomly", "-p", "no:cacheprovider", "--edgeperf-device=host", "--edgeperf-no-guard",
         "--edgeperf-idle-time=0", "--edgeperf-threads=1", "--edgeperf-max-cpu-wait=100", "--edgeperf-no-progress",
         "--edgeperf-min-time=0.2", "--edgeperf-min-samples=20", "--edgeperf-max-time=10"]


def measured(tiny_project: pytest.Pytester) -> tuple[dict, Path]:
    tiny_project.makeini("[pytest]\n")
    tiny_project.makepyfile(test_m="""
        import pytest

        @pytest.mark.edgeperf("tiny.onnx", frameworks=["onnxruntime"])
        def test_tiny(edgeperf):
            edgeperf.measure()
    """)
    res = tiny_project.runpytest_subprocess(*FLAGS, "--edgeperf-history=hist.db", "--edgeperf-json=r.json")
    res.assert_outcomes(passed=1)
    return json.loads((tiny_project.path / "r.json").read_text()), tiny_project.path / "hist.db"


def derived(real: dict, run: int) -> dict:
    """The real results file as run ``run`` of the series: slower by half before STEP_AT, jitter after."""
    p = copy.deepcopy(real)
    p["created_unix"] = 1.8e9 + run * 60
    p["environment"]["git_commit"] = f"{run:040x}"
    scale = 1.5 if run < STEP_AT else 1 + 0.002 * (run % 3)
    out = []
    for r in p["results"]:
        r["samples"]["latency_s"] = [v * scale for v in r["samples"]["latency_s"]]
        result = Result.from_json(r)
        result.environment["git_commit"] = f"{run:040x}"
        out.append(result.to_json())
    p["results"] = out
    return p


def recording(payload: dict, **kw: object) -> BaselineEntry:
    """What ``--edgeperf-update-baselines`` records of this run: its metrics are the summary the run computed (from
    unrounded samples; the results file keeps samples to the nanosecond), the rest from the samples in the file."""
    entry = BaselineEntry.from_result(Result.from_json(payload["results"][0]), **kw)  # type: ignore[arg-type]
    entry.metrics = {k: float(f"{v:.6g}") for k, v in sorted(payload["results"][0]["summary"].items())}
    return entry


def figures(entry: BaselineEntry) -> tuple:
    return entry.metrics, entry.samples, entry.sample_count, entry.environment


def test_baselines_from_history_hold_the_runs_since_the_change_point(
        tiny_project: pytest.Pytester, history_url: str, tmp_path: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    real, plugin_db = measured(tiny_project)
    import sqlalchemy as sa

    engine = connect(resolve_url(str(plugin_db), tmp_path))
    with engine.connect() as conn:  # the plugin's own write keeps what a baseline needs
        assert conn.execute(sa.text("SELECT count(*) FROM measurement_samples")).scalar() == 1
    engine.dispose()

    payloads = [derived(real, run) for run in range(RUNS)]
    engine = connect(resolve_url(history_url, tmp_path))
    for p in payloads:
        record_payload(engine, p, GitInfo(p["environment"]["git_commit"], "main"))
    test_id = real["results"][0]["test_id"]
    results = [Result.from_json(p["results"][0]) for p in payloads]
    root = tmp_path / "baselines"
    capsys.readouterr()

    assert edgeperf_main(["history", "baselines", "--url", history_url, "--baselines", str(root)]) == 0
    out = capsys.readouterr()
    assert f"{test_id.split('::', 1)[1]}: added (" in out.out and out.err == ""
    written = BaselineStore(root, "host").lookup(test_id)
    assert written is not None
    newest = recording(payloads[-1])
    assert figures(written) == figures(newest)  # the entry is the newest run's recording, figure for figure
    after = [BaselineEntry.from_result(r).samples["process_latency_ms"] for r in results[STEP_AT:-1]]
    assert [h["process_latency_ms"] for h in written.history] == after[::-1]  # the rest since the step, newest first
    assert written.recorded_by["git_commit"] == f"{RUNS - 1:040x}"
    # what the verdict makes of it: the same as of the newest run recorded with --edgeperf-update-baselines passes
    replayed = None
    for p in payloads[STEP_AT:]:
        replayed = recording(p, recorded_at=written.recorded_at, recorded_by=written.recorded_by
                             ).continued_from(replayed)
    assert replayed is not None
    for current in (results[-1], results[0]):
        assert repr(judge(current, written, {})) == repr(judge(current, replayed, {}))

    # runs recorded before the history kept samples (schema 1): left out, said in one line
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.text(
            "SELECT m.id FROM measurements m JOIN runs r ON m.run_id = r.id ORDER BY r.created_unix"))]
        conn.execute(sa.text(f"DELETE FROM measurement_samples WHERE measurement_id IN ({ids[7]}, {ids[8]})"))
    assert edgeperf_main(["history", "baselines", "--url", history_url, "--baselines", str(root)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{test_id} on host: 2 of the 6 runs since" in err
    assert "built from the other 4" in err
    again = BaselineStore(root, "host").lookup(test_id)
    assert again is not None and figures(again) == figures(newest) and len(again.history) == 3

    # none of them has samples: not written, one line naming the test, exit 2
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM measurement_samples"))
    engine.dispose()
    before = BaselineStore(root, "host").path_for(test_id).read_bytes()
    assert edgeperf_main(["history", "baselines", "--url", history_url, "--baselines", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{test_id} on host: not written" in err and "Traceback" not in err
    assert BaselineStore(root, "host").path_for(test_id).read_bytes() == before


def test_a_schema_1_history_migrates_and_keeps_its_runs(tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = resolve_url(str(tmp_path / "h.db"), tmp_path)
    engine = connect(url)
    with engine.begin() as conn:  # what an edgeperf before this change left: version 1, no samples table
        conn.execute(sa.text("DROP TABLE measurement_samples"))
        conn.execute(sa.text("UPDATE schema_version SET version = 1"))
        conn.execute(sa.text("INSERT INTO runs (run_key, created_unix, recorded_unix, device) "
                             "VALUES ('k', 1.0, 1.0, 'pi4')"))
    engine.dispose()
    engine = connect(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalar() == 2
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar() == 1
        assert conn.execute(sa.text("SELECT count(*) FROM measurement_samples")).scalar() == 0
    engine.dispose()
