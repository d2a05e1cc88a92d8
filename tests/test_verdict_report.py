"""The verdict carries what it compared against to the reports (issue 16): no second baseline lookup.

``Result`` and ``BaselineEntry`` both satisfy the ``Measured`` protocol the verdict reads; the baseline latencies a
test was judged against travel on its Result (through an xdist worker's handoff too, never into the results file),
and the HTML report draws them from there.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from realtiming import REAL_TIMING
from test_baseline_plugin import BRIEF, UPDATE_ONCE, write_conv_model
from test_verdict import make_result

from pytest_edgeperf.baseline import BaselineEntry, BaselineStore
from pytest_edgeperf.result import Measured, Result
from pytest_edgeperf.verdict.judge import judge

pytest_plugins = ["pytester"]

ONE = ["--edgeperf-processes=1"]
SUITE = '''
import pytest

@pytest.mark.edgeperf(model="model.onnx", frameworks="onnxruntime")
def test_model(edgeperf):
    edgeperf.measure()
'''


def test_result_and_baseline_entry_are_both_measured() -> None:
    result = make_result(1)
    entry = BaselineEntry.from_result(make_result(2))
    for side in (result, entry):
        assert isinstance(side, Measured)
        assert side.metric_samples("latency_p50_ms") is not None and side.metric_samples("peak_memory_mb") is None


def test_the_verdict_carries_the_baseline_latencies_to_the_result_not_to_the_results_file() -> None:
    entry = BaselineEntry.from_result(make_result(2))
    result = make_result(1)
    judge(result, entry, {}).apply_to(result)
    assert result.baseline_latency_ms == [float(v) for v in entry.samples["latency_ms"]]
    assert "baseline_latency_ms" not in result.to_json()  # the results file is unchanged: the baseline file has them
    handed = Result.from_json(json.loads(json.dumps(result.to_json(handoff=True))))  # an xdist worker's handoff
    assert handed.baseline_latency_ms == result.baseline_latency_ms
    fresh = make_result(3)
    judge(fresh, None, {}).apply_to(fresh)
    assert fresh.baseline_latency_ms == []


@REAL_TIMING
@pytest.mark.parametrize("xdist", [False, True], ids=["in-process", "xdist"])
def test_html_draws_the_baseline_the_test_was_judged_against(pytester: pytest.Pytester, xdist: bool) -> None:
    if xdist:
        pytest.importorskip("xdist")
    pytester.makeini("[pytest]\n")
    write_conv_model(pytester.path / "model.onnx", 2, channels=8, size=16)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest(*BRIEF, *ONE, *UPDATE_ONCE).assert_outcomes(passed=1)
    entry = BaselineStore(pytester.path / "baselines", "host").lookup("test_suite.py::test_model[onnxruntime]")
    assert entry is not None
    html = pytester.path / "r.html"
    res = pytester.runpytest(*BRIEF, *ONE, f"--edgeperf-html={html}", *(["-n", "1"] if xdist else []))
    res.assert_outcomes(passed=1)
    drawn = re.findall(r"baseline \(n=(\d+)\)", html.read_text())
    assert drawn and {int(n) for n in drawn} == {np.asarray(entry.samples["latency_ms"]).size}
