"""--edgeperf-counters through the real plugin: graceful where the machine cannot count, exact arithmetic where a
(fake) perf reports known numbers."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "perf"

TEST_FILE = """
import pytest

@pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks="onnxruntime")
def test_tiny(edgeperf):
    edgeperf.measure()
"""


def _args(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    cache = tmp_path_factory.getbasetemp() / "edgeperf-cache"
    return ["-p", "no:cacheprovider", f"--edgeperf-cache-dir={cache}", "--edgeperf-min-samples=20",
            "--edgeperf-min-time=0.5", "--edgeperf-idle-time=0", "--edgeperf-counters",
            f"--edgeperf-json={pytester.path / 'out.json'}"]


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed on this machine")
def test_counters_on_this_machine_report_unsupported_events_and_pass(
        pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> None:
    pytester.makepyfile(test_c=TEST_FILE)
    result = pytester.runpytest(*_args(pytester, tmp_path_factory))
    result.assert_outcomes(passed=1)
    counters = json.loads((pytester.path / "out.json").read_text())["results"][0]["counters"]
    assert counters["inferences"] > 0
    if counters["unsupported"]:  # this machine: hardware events read <not supported>
        result.stdout.fnmatch_lines(["*hardware counters: not supported on this machine:*instructions*"])
    else:  # a machine that counts: per-inference figures are reported
        assert counters["per_inference"]["instructions"] > 0


def test_counters_without_perf_say_so_and_pass(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    empty = pytester.mkdir("nobin")
    monkeypatch.setenv("PATH", f"{empty}{os.pathsep}{Path(sys.executable).parent}")
    pytester.makepyfile(test_c=TEST_FILE)
    result = pytester.runpytest(*_args(pytester, tmp_path_factory))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*hardware counters*perf not found*"])


def test_per_inference_counts_from_a_fake_perf(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = DATA / "fake_perf.py"
    if not fake.exists():
        pytest.skip("tests/data/perf/fake_perf.py missing")
    bindir = pytester.mkdir("bin")
    perf = bindir / "perf"
    perf.write_text(f"#!{sys.executable}\n" + fake.read_text())
    perf.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    pytester.makepyfile(test_c=TEST_FILE)
    result = pytester.runpytest(*_args(pytester, tmp_path_factory))
    result.assert_outcomes(passed=1)
    r = json.loads((pytester.path / "out.json").read_text())["results"][0]
    counters = r["counters"]
    events = counters["events"]
    n = counters["inferences"]
    # perf attaches to the first worker process: its inferences are the ones counted
    first_process = [p for p in r["samples"]["process"] if p == 0] or r["samples"]["latency_s"]
    assert n == len(first_process)
    counted = {e: v["value"] for e, v in events.items() if v["status"] == "counted" and v["value"] is not None}
    assert counted, events
    for event, value in counted.items():
        key = event.lower().replace("-", "_").replace(":", "_")
        if key in counters["per_inference"]:
            assert counters["per_inference"][key] == pytest.approx(value / n, rel=1e-9)
    if "instructions" in counted and "cycles" in counted:
        assert counters["ipc"] == pytest.approx(counted["instructions"] / counted["cycles"], rel=1e-9)
    assert any(k.endswith("_per_inference") for k in r["summary"])
