"""Baselines through the real plugin (issues 14 and 15): what a run refuses it leaves alone, what it writes it reads.

- out-of-range numbers in a stored file are one-line errors, and the file stays byte-for-byte as it was;
- "re-record with --edgeperf-update-baselines" works on an empty file, as the error says;
- a deep module path still has a baseline file;
- two unlabelled ``measure()`` calls in one test never share a baseline entry;
- a recording on a busy machine is stored with a warning in the file and the summary, never silently;
- a ``host`` baseline from another machine (another CPU, another host name) leaves timing INCONCLUSIVE with one
  note, while memory still gates.
Assertions are about verdicts, files and messages, never about measured figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_baseline_plugin import (
    BRIEF,
    CONVS,
    SUITE,
    THROUGHPUT_KEY,
    UPDATE_ONCE,
    entries,
    failure_text,
    own_device_lock,  # noqa: F401 - a fixture
    summary_row,
    write_conv_model,
)
from test_environment import X86, fake_root

from pytest_edgeperf.baseline import module_filename


def _doc(entry: dict) -> bytes:
    return json.dumps({"schema_version": 1, "device": "host", "entries": {THROUGHPUT_KEY: entry}}).encode()


def _entry(**change: dict) -> dict:
    entry = {"metrics": {"fps": 100.0, "latency_p50_ms": 10.0}, "samples": {"latency_ms": [10.0] * 20},
             "sample_count": 20, "environment": {"device": "host", "runtime": "onnxruntime", "threads": 1},
             "recorded_at": "2024-01-02T03:04:05+00:00"}
    for key, value in change.items():
        entry[key] = {**entry.get(key, {}), **value}
    return entry


OUT_OF_RANGE = {
    "test_negative_fps": (_entry(metrics={"fps": -100}), "'fps' is -100"),
    "test_negative_samples": (_entry(samples={"latency_ms": [-1.0] * 20}), "'latency_ms' holds -1.0"),
    "test_huge_samples": (_entry(samples={"latency_ms": [1e308] * 20}), "'latency_ms' holds 1e+308"),
    "test_zero_process": (_entry(samples={"process_latency_ms": [0]}), "'process_latency_ms' holds 0"),
}


@pytest.mark.usefixtures("own_device_lock")
def test_out_of_range_baselines_are_one_line_errors_and_left_unchanged(pytester: pytest.Pytester) -> None:
    write_conv_model(pytester.path / "model.onnx", 1)
    directory = pytester.path / "baselines" / "host"
    directory.mkdir(parents=True)
    for module, (entry, _) in OUT_OF_RANGE.items():
        pytester.makepyfile(**{module: SUITE})
        (directory / f"{module}.json").write_bytes(_doc(entry))
    for extra in ([], list(UPDATE_ONCE)):
        res = pytester.runpytest(*BRIEF, *extra)
        res.assert_outcomes(failed=len(OUT_OF_RANGE))
        out = res.stdout.str() + res.stderr.str()
        assert "Traceback" not in out and "math domain error" not in out
        for module, (entry, why) in OUT_OF_RANGE.items():
            path = directory / f"{module}.json"
            text = failure_text(res, f"{module}.py::")
            assert "\n" not in text.strip() and text.startswith(f"[edgeperf] {path}: ") and why in text, text
            assert path.read_bytes() == _doc(entry), f"{path} was modified ({extra})"


@pytest.mark.usefixtures("own_device_lock")
def test_an_empty_baseline_file_is_re_recorded_as_the_error_advises(pytester: pytest.Pytester) -> None:
    write_conv_model(pytester.path / "model.onnx", 1)
    pytester.makepyfile(test_suite=SUITE)
    path = pytester.path / "baselines" / "host" / "test_suite.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    res = pytester.runpytest(*BRIEF)
    res.assert_outcomes(failed=1)
    assert "file is empty; delete it or re-record with --edgeperf-update-baselines" in failure_text(res, "test_suite")
    assert path.read_bytes() == b""
    pytester.runpytest(*BRIEF, *UPDATE_ONCE).assert_outcomes(passed=1)
    assert list(entries(path)) == [THROUGHPUT_KEY]
    again = pytester.runpytest(*BRIEF)
    again.assert_outcomes(passed=1)
    assert summary_row(again, THROUGHPUT_KEY).split()[-1] != "NEW"


@pytest.mark.usefixtures("own_device_lock")
def test_a_deep_module_path_is_recorded_and_read_back(pytester: pytest.Pytester) -> None:
    write_conv_model(pytester.path / "model.onnx", 1)
    deep = Path(*[f"level_{i:02d}_of_a_deliberately_long_package_name" for i in range(7)])
    (pytester.path / deep).mkdir(parents=True)
    (pytester.path / deep / "test_x.py").write_text(SUITE)
    module = f"{deep}/test_x.py"
    assert len(module.replace("/", "__")) > 255  # the old name would be "File name too long"
    pytester.runpytest(*BRIEF, *UPDATE_ONCE).assert_outcomes(passed=1)
    path = pytester.path / "baselines" / "host" / module_filename(module)
    assert path.exists() and len(path.name.encode()) <= 200
    assert list(entries(path)) == [THROUGHPUT_KEY]
    again = pytester.runpytest(*BRIEF)
    again.assert_outcomes(passed=1)
    assert summary_row(again, THROUGHPUT_KEY).split()[-1] != "NEW"


LABELS = '''
import pytest

@pytest.mark.edgeperf(frameworks="onnxruntime")
def test_unlabelled(edgeperf):
    edgeperf.measure("model.onnx")
    edgeperf.measure("other.onnx")

@pytest.mark.edgeperf(frameworks="onnxruntime")
def test_same_label(edgeperf):
    edgeperf.measure("model.onnx", label="a")
    edgeperf.measure("other.onnx", label="a")

@pytest.mark.edgeperf(frameworks="onnxruntime")
def test_labelled(edgeperf):
    edgeperf.measure("model.onnx")
    edgeperf.measure("other.onnx", label="other")
'''


@pytest.mark.usefixtures("own_device_lock")
def test_two_unlabelled_measurements_never_share_a_baseline_entry(pytester: pytest.Pytester) -> None:
    """Decision: a usage error asking for label= (an automatic label would move with the order of the calls)."""
    write_conv_model(pytester.path / "model.onnx", 1)
    write_conv_model(pytester.path / "other.onnx", 2)
    pytester.makepyfile(test_labels=LABELS)
    res = pytester.runpytest(*BRIEF, *UPDATE_ONCE)
    res.assert_outcomes(failed=2, passed=1)
    for test, said in (("test_unlabelled", "no label"), ("test_same_label", "label='a'")):
        text = failure_text(res, test)
        assert text.startswith(f"[edgeperf] edgeperf.measure() was called a second time with {said} in this test: "
                               "give each measurement its own label="), text
        assert "\n" not in text.strip()
    path = pytester.path / "baselines" / "host" / "test_labels.json"
    assert sorted(entries(path)) == ["test_labelled[onnxruntime]", "test_labelled[onnxruntime]::other"]


HOG = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass\n"


@pytest.mark.usefixtures("own_device_lock")
def test_a_recording_on_a_busy_machine_is_stored_with_a_loud_warning(pytester: pytest.Pytester) -> None:
    """Decision: flag, not refuse. The recording still gates accuracy and memory, so it is stored, with a warning in
    the file and in the summary that timing will not be judged against it (and why), instead of silently."""
    write_conv_model(pytester.path / "model.onnx", CONVS)
    pytester.makepyfile(test_suite=SUITE)
    # three CPU hogs on this machine's cores: the worker certainly queues for a CPU, and any wait is over a 0% limit
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(3)]
    try:
        res = pytester.runpytest(*BRIEF, *UPDATE_ONCE, "--edgeperf-max-cpu-wait=0")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    res.assert_outcomes(passed=1)
    key = THROUGHPUT_KEY.replace("[", "[[]")
    res.stdout.fnmatch_lines([f"WARNING test_suite.py::{key}: recorded on a busy machine (the worker "
                              "waited for a CPU *% of its runnable time, limit 0%, --edgeperf-max-cpu-wait): timing is "
                              "not judged against this baseline (INCONCLUSIVE) until it is re-recorded on an idle "
                              "machine; accuracy and memory are"])
    entry = entries(pytester.path / "baselines" / "host" / "test_suite.json")[THROUGHPUT_KEY]
    (warning,) = entry["warnings"]
    assert warning.startswith("recorded on a busy machine (the worker waited for a CPU ")
    # and a compare says so again, on the timing it does not judge (the recorded wait is over the 0% limit)
    again = pytester.runpytest(*BRIEF, "--edgeperf-max-cpu-wait=0")
    again.assert_outcomes(passed=1)
    assert summary_row(again, THROUGHPUT_KEY).split()[-1] == "INCONCLUSIVE"
    again.stdout.fnmatch_lines(["*machine busy: in * the worker waited for a CPU*"])


MACHINE_SUITE = SUITE + '''

@pytest.mark.edgeperf(model="mem.onnx", frameworks="onnxruntime")
def test_memory(edgeperf):
    edgeperf.measure()
'''


def test_a_host_baseline_from_another_machine_leaves_timing_inconclusive_with_one_note(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    write_conv_model(pytester.path / "model.onnx", CONVS)
    write_conv_model(pytester.path / "mem.onnx", CONVS)
    pytester.makepyfile(test_suite=MACHINE_SUITE)
    here = fake_root(tmp_path / "a", X86, hostname="recorder")
    elsewhere = fake_root(tmp_path / "b", X86.replace("AMD EPYC 7B13", "Intel(R) Xeon(R) Gold 6338"),
                          hostname="recorder")
    pytester.runpytest(*BRIEF, *UPDATE_ONCE, f"--edgeperf-root={here}").assert_outcomes(passed=2)
    env = entries(pytester.path / "baselines" / "host" / "test_suite.json")[THROUGHPUT_KEY]["environment"]
    assert env["cpu"] == "AMD EPYC 7B13" and env["hostname"] == "recorder"
    # the same model, and one with 64 MB more weights, measured on "another machine"
    write_conv_model(pytester.path / "mem.onnx", CONVS, bloat_mb=64)
    res = pytester.runpytest(*BRIEF, f"--edgeperf-root={elsewhere}")
    res.assert_outcomes(passed=1, failed=1)  # timing is not judged, memory still is
    assert summary_row(res, THROUGHPUT_KEY).split()[-1] == "INCONCLUSIVE"
    assert "REGRESSION" in summary_row(res, "test_memory[onnxruntime]")
    assert "peak_memory_mb" in failure_text(res, "test_memory").splitlines()[0]
    out = res.stdout.str()
    summary = out[out.index("= edgeperf: host ="):]
    if "short test summary info" in summary:  # pytest repeats the failure's own text there
        summary = summary[:summary.index("short test summary info")]
    notes = [ln for ln in summary.splitlines() if ln.startswith("note") and "another machine" in ln]
    assert len(notes) == 1, out
    assert "cpu AMD EPYC 7B13 -> Intel(R) Xeon(R) Gold 6338" in notes[0] and "2 tests" in notes[0]
    assert "machine busy" not in out and "different timing budget" not in out  # one timing note, not several
