"""Reports end to end (issue 14), through the real plugin with pytester: what a user reads agrees with the test.

A test that fails an absolute limit is FAIL in the terminal, the JSON, the pytest-benchmark JSON, JUnit, the HTML,
``edgeperf explain`` and ``edgeperf merge --fail-on-regression``; the summary's change column names the metric
that decided; merging two runs of one device keeps both; ``--junitxml`` carries each measured test's figures;
update passes report each test once; the summary stays short; the HTML reads as information, not as an error.
Assertions are about verdicts, names, files and exit codes, never about measured figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_baseline_plugin import BRIEF, COMMON, UPDATE_ONCE, write_conv_model

from pytest_edgeperf.cli import main as edgeperf_main

pytest_plugins = ["pytester"]

ONE = ["--edgeperf-processes=1"]  # plumbing: one worker process is a valid measurement
LIMITS = '''
import pytest

@pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime", max_latency_ms=0.0001)
def test_too_slow(edgeperf):
    edgeperf.measure()

@pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime", max_latency_ms=100000)
def test_fast_enough(edgeperf):
    edgeperf.measure()

def test_not_measured():
    pass
'''


def edgeperf(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = edgeperf_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def summary_row(res: pytest.RunResult, test: str) -> list[str]:
    """The cells of one test's row of the edgeperf summary table (columns are 2+ spaces apart)."""
    import re

    rows = [ln for ln in res.stdout.lines if ln.startswith(test + " ") and " host " in ln]
    assert len(rows) == 1, res.stdout.str()
    return re.split(r"\s{2,}", rows[0].strip())


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")  # the rootdir is the project wherever its temporary directory lies
    write_conv_model(pytester.path / "model.onnx", 2, channels=8, size=16)
    return pytester


# ---- 1. a breached limit is a failure in every report ---------------------------------------------------------
def test_a_breached_limit_is_fail_in_every_report(project: pytest.Pytester, capsys) -> None:
    project.makepyfile(test_suite=LIMITS)
    out = project.path
    res = project.runpytest(*BRIEF, *ONE, f"--edgeperf-json={out / 'r.json'}",
                            f"--edgeperf-benchmark-json={out / 'b.json'}", f"--edgeperf-html={out / 'r.html'}")
    res.assert_outcomes(failed=1, passed=2)
    assert summary_row(res, "test_too_slow[onnxruntime]")[-1] == "FAIL"
    assert summary_row(res, "test_fast_enough[onnxruntime]")[-1] == "NEW"
    res.stdout.fnmatch_lines(["FAIL test_suite.py::test_too_slow[[]onnxruntime[]]: latency_p90_ms * > limit 0.0001"])

    results = {r["test_id"].split("::")[-1]: r for r in json.loads((out / "r.json").read_text())["results"]}
    slow, fast = results["test_too_slow[onnxruntime]"], results["test_fast_enough[onnxruntime]"]
    assert slow["verdict"] == "FAIL" and slow["test_outcome"] == "failed"
    assert "latency_p90_ms" in slow["verdict_reason"] and "limit 0.0001" in slow["verdict_reason"]
    assert slow["overall_verdict"] == "NEW"  # the baseline comparison alone, kept apart
    (check,) = slow["limits"]
    assert (check["metric"], check["op"], check["limit"], check["verdict"]) == ("latency_p90_ms", "<=", 0.0001, "FAIL")
    assert check["measured"] == pytest.approx(slow["summary"]["latency_p90_ms"])
    assert fast["verdict"] == "NEW" and fast["limits"][0]["verdict"] == "PASS"

    bench = {b["name"]: b for b in json.loads((out / "b.json").read_text())["benchmarks"]}
    info = bench["test_too_slow[onnxruntime]"]["extra_info"]
    assert info["verdict"] == "FAIL" and "latency_p90_ms" in info["failed_limits"]
    assert bench["test_fast_enough[onnxruntime]"]["extra_info"]["verdict"] == "NEW"

    code, text, _ = edgeperf(capsys, "explain", str(out / "r.json"), "test_too_slow")
    assert code == 1 and ": FAIL (latency_p90_ms" in text
    assert edgeperf(capsys, "explain", str(out / "r.json"), "test_fast_enough")[0] == 0
    code, _, err = edgeperf(capsys, "merge", str(out / "r.json"), "--fail-on-regression")
    assert code == 1 and "FAIL on host: test_suite.py::test_too_slow[onnxruntime]" in err
    assert "test_fast_enough" not in err

    html = (out / "r.html").read_text()
    assert "<span class='v v-FAIL'>FAIL</span>" in html
    assert "FAIL: latency_p90_ms" in html  # the reason, in the test's own section


def test_a_test_that_fails_after_measuring_is_not_reported_as_passing(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite='''
        import pytest

        @pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime")
        def test_asserts(edgeperf):
            result = edgeperf.measure()
            assert result.fps < 0, "fps cannot be negative"
    ''')
    out = project.path / "r.json"
    res = project.runpytest(*BRIEF, *ONE, f"--edgeperf-json={out}")
    res.assert_outcomes(failed=1)
    (result,) = json.loads(out.read_text())["results"]
    assert result["verdict"] == "FAIL" and "fps cannot be negative" in result["verdict_reason"]
    assert summary_row(res, "test_asserts[onnxruntime]")[-1] == "FAIL"


def test_a_memory_regression_shows_the_memory_change_and_explain_exits_1(project: pytest.Pytester, capsys) -> None:
    project.makepyfile(test_suite='''
        import pytest

        @pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            edgeperf.measure()
    ''')
    project.runpytest(*BRIEF, *ONE, *UPDATE_ONCE).assert_outcomes(passed=1)
    write_conv_model(project.path / "model.onnx", 2, channels=8, size=16, bloat_mb=96)
    # a budget more than twice the baseline's: timing is not judged, so only memory can decide
    out = project.path / "r.json"
    res = project.runpytest(*COMMON, *ONE, "--edgeperf-min-time=0.5", "--edgeperf-min-samples=20",
                            "--edgeperf-max-time=10", f"--edgeperf-json={out}")
    res.assert_outcomes(failed=1)
    (result,) = json.loads(out.read_text())["results"]
    assert result["verdict"] == "REGRESSION"
    assert next(v["metric"] for v in result["verdicts"] if v["verdict"] == "REGRESSION") == "peak_memory_mb"
    memory = next(v for v in result["verdicts"] if v["metric"] == "peak_memory_mb")
    change = summary_row(res, "test_model[onnxruntime]")[-2]
    assert change == f"mem {memory['change_pct']:+.1f}%"  # not the fps change next to a memory regression
    code, text, _ = edgeperf(capsys, "explain", str(out), "test_model")
    assert code == 1 and "REGRESSION: peak_memory_mb changed" in text


# ---- 2. merging two runs of one device keeps both -------------------------------------------------------------
def test_merge_of_two_runs_of_one_device_shows_every_row(project: pytest.Pytester, capsys) -> None:
    project.makepyfile(test_suite=LIMITS)
    first, second = project.path / "first.json", project.path / "second.json"
    project.runpytest(*BRIEF, *ONE, f"--edgeperf-json={first}").assert_outcomes(failed=1, passed=2)
    project.runpytest(*BRIEF, *ONE, "-k", "fast_enough", f"--edgeperf-json={second}").assert_outcomes(passed=1)
    code, text, _ = edgeperf(capsys, "merge", str(first), str(second))
    assert code == 0
    table = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith("|")]
    header, rows = table[0], {r[0]: r for r in table[2:]}
    assert header[2:] == [f"host ({name}) {c}" for name in ("first", "second")
                          for c in ("fps", "p90 ms", "mem MB", "verdict")]
    slow, fast = rows["test_suite.py::test_too_slow[onnxruntime]"], rows["test_suite.py::test_fast_enough[onnxruntime]"]
    assert slow[5] == "**FAIL**" and slow[6:] == ["–"] * 4  # measured by the first run only
    assert fast[5] == "NEW" and fast[9] == "NEW" and fast[2] != "–" and fast[6] != "–"  # by both, side by side


# ---- 3. JUnit properties ------------------------------------------------------------------------------------
def test_junit_xml_carries_each_measured_tests_figures(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite=LIMITS + '''

@pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime")
def test_two_measurements(edgeperf):
    edgeperf.measure(label="first")
    edgeperf.measure(label="second")
''')
    xml_path = project.path / "junit.xml"
    res = project.runpytest(*BRIEF, *ONE, f"--junitxml={xml_path}", f"--edgeperf-json={project.path / 'r.json'}")
    res.assert_outcomes(failed=1, passed=3)
    measured = {r["test_id"]: r for r in json.loads((project.path / "r.json").read_text())["results"]}
    cases = {case.get("name"): case for case in ET.parse(xml_path).getroot().iter("testcase")}
    assert set(cases) == {"test_too_slow[onnxruntime]", "test_fast_enough[onnxruntime]", "test_not_measured",
                          "test_two_measurements[onnxruntime]"}

    def props(name: str) -> dict[str, str]:
        return {p.get("name"): p.get("value") for p in cases[name].iter("property")}

    assert props("test_not_measured") == {}
    for name, labels in (("test_too_slow[onnxruntime]", [""]), ("test_fast_enough[onnxruntime]", [""]),
                         ("test_two_measurements[onnxruntime]", ["first.", "second."])):
        got = props(name)
        for label in labels:
            result = measured[f"test_suite.py::{name}" + (f"::{label[:-1]}" if label else "")]
            for key in ("fps", "latency_p50_ms", "latency_p90_ms", "peak_memory_mb"):
                assert float(got[f"edgeperf.{label}{key}"]) == pytest.approx(result["summary"][key], rel=1e-5)
            # no power meter, no accuracy pass on this host: said, never invented
            assert got[f"edgeperf.{label}energy_per_inference_j"] == "not measured"
            assert got[f"edgeperf.{label}accuracy"] == "not measured"
            assert got[f"edgeperf.{label}verdict"] == result["verdict"]
            assert got[f"edgeperf.{label}input_shape"] == "1x3x16x16"
    assert props("test_too_slow[onnxruntime]")["edgeperf.verdict"] == "FAIL"


# ---- 4. output noise ----------------------------------------------------------------------------------------
def test_update_passes_report_each_test_once(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite=LIMITS.replace("max_latency_ms=0.0001", "max_latency_ms=100000"))
    xml_path = project.path / "junit.xml"
    out = project.path / "r.json"
    res = project.runpytest(*BRIEF, *ONE, "--edgeperf-update-baselines", "--edgeperf-update-passes=2",
                            f"--junitxml={xml_path}", f"--edgeperf-json={out}")
    res.assert_outcomes(passed=3)  # 3 collected, 3 passed: the second pass does not count twice
    res.stdout.fnmatch_lines(["*collected 3 items*", "*edgeperf: update pass 1 of 2, 3 test(s)*",
                              "*edgeperf: update pass 2 of 2, 2 test(s)*"])
    for test in ("test_too_slow[onnxruntime]", "test_fast_enough[onnxruntime]"):
        summary_row(res, test)  # exactly one row each
    assert len(list(ET.parse(xml_path).getroot().iter("testcase"))) == 3
    assert len(json.loads(out.read_text())["results"]) == 2
    entry = json.loads((project.path / "baselines" / "host" / "test_suite.json").read_text())["entries"]
    assert len(entry["test_fast_enough[onnxruntime]"]["history"]) == 1  # both passes still recorded


def test_a_busy_machine_is_one_note_across_tests(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite='''
        import pytest

        @pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime")
        @pytest.mark.parametrize("n", [1, 2])
        def test_model(edgeperf, n):
            edgeperf.measure()
    ''')
    project.runpytest(*BRIEF, *ONE, *UPDATE_ONCE).assert_outcomes(passed=2)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        out = project.path / "r.json"
        judged_when_idle = [a for a in BRIEF if not a.startswith("--edgeperf-max-cpu-wait")]  # the default, 10%
        res = project.runpytest(*judged_when_idle, *ONE, f"--edgeperf-json={out}")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    waits = [r["cpu_wait_pct"] for r in json.loads(out.read_text())["results"]]
    if sum(w > 10 for w in waits) < 2:
        pytest.skip(f"the CPU hogs did not make the worker wait (waits {waits})")
    text = res.stdout.str()
    assert "the machine was busy" not in text  # the verdict's note says it, with the limit
    busy = [ln for ln in res.stdout.lines if "machine busy: in this run" in ln]
    assert len(busy) == 1, busy
    assert busy[0].startswith("note (") and "tests): machine busy: in this run the worker waited for a CPU" in busy[0]


def test_unavailable_sensors_are_one_short_line(project: pytest.Pytester, tmp_path: Path) -> None:
    from fakedevice import FakeDevice

    dev = FakeDevice.host_without_sensors(tmp_path / "dev")
    project.makepyfile(test_suite=LIMITS)
    res = project.runpytest(*BRIEF, *ONE, *dev.plugin_args(), "-k", "fast_enough")
    (line,) = [ln for ln in res.stdout.lines if ln.startswith("not measured on this device")]
    assert len(line) <= 160
    assert line.startswith("not measured on this device: model, clock, temperature, throttle state, governor, power")
    verbose = project.runpytest(*BRIEF, *ONE, *dev.plugin_args(), "-k", "fast_enough", "-v")
    verbose.stdout.fnmatch_lines(["not measured on this device:", "  model: no */proc/device-tree/model*",
                                  "  clock: *"])


# ---- 5. the HTML report ---------------------------------------------------------------------------------------
def test_html_reads_as_information_and_shows_every_figure(project: pytest.Pytester, tmp_path: Path) -> None:
    from fakedevice import FakeDevice

    dev = FakeDevice.host_without_sensors(tmp_path / "dev")
    write_conv_model(project.path / "big.onnx", 8, channels=64, size=32)
    project.makepyfile(test_suite='''
        import pytest

        @pytest.mark.edgeperf(frameworks="onnxruntime")
        @pytest.mark.parametrize("model", ["model.onnx", "big.onnx"])
        def test_model(edgeperf, model):
            edgeperf.measure(model)
    ''')
    html_path, out = project.path / "r.html", project.path / "r.json"
    res = project.runpytest(*BRIEF, *ONE, *dev.plugin_args(), f"--edgeperf-html={html_path}",
                            f"--edgeperf-json={out}")
    res.assert_outcomes(passed=2)
    html = html_path.read_text()
    # what this host lacks is information, not an error
    assert "class='warn'>Unavailable" not in html
    assert "<details class='info unavailable'><summary>Not measured on this device: model, clock" in html
    # no empty Figure-of-Merit box without power: one line says why
    assert "Figure of Merit (" not in html and html.count("Figure-of-Merit chart") == 1
    # the two models differ by far more than 20x in fps: a log axis, so the slow one's bar is seen
    data = json.loads(out.read_text())
    fps = [r["summary"]["fps"] for r in data["results"]]
    assert max(fps) / min(fps) > 20
    assert "fps (inferences / s) — log scale" in html
    # the input shape of each measurement: table, terminal and JSON
    assert html.count("<td class=''>1x3x16x16</td>") == 1 and html.count("<td class=''>1x3x32x32</td>") == 1
    assert summary_row(res, "test_model[onnxruntime-model.onnx]")[4] == "1x3x16x16"
    assert {tuple(r["environment"]["input_shape"]) for r in data["results"]} == {(1, 3, 16, 16), (1, 3, 32, 32)}
    # the worker's CPU use never exceeds what the cores can give
    for r in data["results"]:
        cpu = [p["cpu_percent"] for p in r["timeline"] if p["cpu_percent"] is not None]
        assert cpu and max(cpu) <= 100 * r["environment"]["cpu_count"] + 1e-6


def test_cpu_use_is_never_more_than_the_cores_give(tmp_path: Path) -> None:
    """Points taken a few ms apart (the closing point after a tick) once read one 10 ms CPU tick as 600%."""
    import time

    import psutil
    from fakedevice import FakeDevice

    from pytest_edgeperf.device.timeline import TimelineSampler

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sampler = TimelineSampler(FakeDevice.host_without_sensors(tmp_path).readers(), pid=spinner.pid)
        sampler._proc = psutil.Process(spinner.pid)  # as start() does, without the thread: points on demand
        sampler._cores = len(sampler._proc.cpu_affinity())
        end = time.perf_counter() + 0.5
        while time.perf_counter() < end:
            sampler.sample_once()
    finally:
        spinner.kill()
        spinner.wait()
    values = [p.cpu_percent for p in sampler.points if p.cpu_percent is not None]
    assert len(sampler.points) > 100 and values
    assert max(values) <= 100.0 * sampler._cores


# ---- the verdict rules themselves (report/outcome.py) ----------------------------------------------------------
@pytest.mark.parametrize(("overall", "quick", "limit_ok", "outcome", "expected"), [
    ("NEW", False, False, "failed", "FAIL"),  # a breached limit, whatever the baseline says
    ("PASS", False, True, "passed", "PASS"),
    ("REGRESSION", False, True, "failed", "REGRESSION"),
    ("REGRESSION", True, True, "passed", "INCONCLUSIVE"),  # quick: informational, the test passed
    ("NO_BASELINE", False, True, "failed", "NO_BASELINE"),
    ("NEW", False, True, "failed", "FAIL"),  # the test failed for a reason of its own
    ("NEW", False, True, "skipped", "NEW"),
])
def test_settle_agrees_with_the_test_outcome(overall: str, quick: bool, limit_ok: bool, outcome: str,
                                             expected: str) -> None:
    from pytest_edgeperf.report.outcome import FAILING, label, settle
    from pytest_edgeperf.result import Result

    result = Result(test_id="t.py::t", framework="onnxruntime", model="m", device="host", quick=quick,
                    overall_verdict=overall)
    result.add_limit("fps", ">=", 10.0, 20.0 if limit_ok else 5.0)
    settle(result, outcome, "assert 1 == 2")
    assert result.verdict == expected
    assert (expected in FAILING) == (outcome == "failed")  # no report fails a passed test, or passes a failed one
    assert label(result.to_json()) == expected
    if expected == "FAIL" and not limit_ok:
        assert result.verdict_reason == "fps 5 < limit 10"
