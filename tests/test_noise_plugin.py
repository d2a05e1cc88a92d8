"""Update passes and the run-to-run noise end to end (issue 4), through the real plugin with pytester.

``--edgeperf-update-baselines`` runs the measured tests once per pass (default 2), each pass leaving its recording
in the entry's history, so a fresh baseline already knows how far its timing moves between runs. Assertions are
about outcomes, files and verdicts; the slower model is twice the convolutions, slower on any machine.
"""

from __future__ import annotations

import json

import pytest
from realtiming import REAL_TIMING
from test_baseline_plugin import BRIEF, CONVS, SUITE, TIMED, baseline_file, entries, failure_text, write_conv_model

pytest_plugins = ["pytester"]

KEY = "test_throughput[onnxruntime]"
PLAIN = '''
def test_plain():
    assert True
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_conv_model(pytester.path / "model.onnx", CONVS)
    pytester.makepyfile(test_suite=SUITE, test_plain=PLAIN)
    return pytester


def test_each_pass_records_the_measured_tests_and_later_updates_extend_the_history(project: pytest.Pytester) -> None:
    res = project.runpytest(*BRIEF, "--edgeperf-update-baselines", "--edgeperf-update-passes=3")
    res.assert_outcomes(passed=1 + 1)  # each test once: a pass that the next repeats is not reported
    out = res.stdout.str()
    for number in (1, 2, 3):
        assert f"update pass {number} of 3" in out
    assert out.count(f"{KEY}: added (") == 1  # one summary line from before the first pass to after the last
    entry = entries(baseline_file(project))[KEY]
    assert len(entry["history"]) == 2
    runs = [entry["samples"]["process_latency_ms"]] + [h["process_latency_ms"] for h in entry["history"]]
    assert len({json.dumps(r) for r in runs}) == 3  # three separate recordings, newest first
    assert [h["recorded_at"] for h in entry["history"]] == sorted((h["recorded_at"] for h in entry["history"]),
                                                                 reverse=True)

    project.runpytest(*BRIEF, "--edgeperf-update-baselines").assert_outcomes(passed=1 + 1)  # default: 2 passes
    assert len(entries(baseline_file(project))[KEY]["history"]) == 4

    # another model under the same path: its history starts afresh (only this update's first pass)
    write_conv_model(project.path / "model.onnx", 2 * CONVS)
    project.runpytest(*BRIEF, "--edgeperf-update-baselines").assert_outcomes(passed=2)
    after = entries(baseline_file(project))[KEY]
    assert len(after["history"]) == 1
    assert after["environment"]["model_sha256"] != entry["environment"]["model_sha256"]


@REAL_TIMING
def test_twice_the_layers_fails_against_baselines_that_learnt_their_noise(project: pytest.Pytester) -> None:
    """The acceptance with the default update: record (two passes), compare unchanged, then the 2x model."""
    project.runpytest(*TIMED, "--edgeperf-update-baselines").assert_outcomes(passed=2)
    same = project.runpytest(*TIMED)
    same.assert_outcomes(passed=2)
    assert same.ret == 0
    write_conv_model(project.path / "model.onnx", 2 * CONVS)
    res = project.runpytest(*TIMED)
    res.assert_outcomes(failed=1, passed=1)
    assert res.ret == 1
    text = failure_text(res, "test_throughput")
    assert "regressed against the host baselines" in text and "fps" in text and "REGRESSION" in text


def test_a_bad_pass_count_is_a_one_line_usage_error(project: pytest.Pytester) -> None:
    res = project.runpytest(*BRIEF, "--edgeperf-update-baselines", "--edgeperf-update-passes=0")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in res.stderr.lines if "--edgeperf-update-passes" in ln]
    assert errors and "must be > 0" in errors[0]
    assert not baseline_file(project).exists()


def test_under_xdist_one_pass_is_made_and_the_summary_says_so(project: pytest.Pytester) -> None:
    res = project.runpytest(*BRIEF, "--edgeperf-update-baselines", "-n", "2")
    res.assert_outcomes(passed=2)
    assert "one pass only under pytest-xdist" in res.stdout.str()
    assert entries(baseline_file(project))[KEY]["history"] == []
