"""Several worker processes per measurement and the machine-speed reference, through the real plugin (issue 4).

Assertions are about structure (how many processes, which samples came from which, what the baseline file keeps,
what the options do), never about how fast this machine is.
"""

from __future__ import annotations

import json

import pytest
from tinymodel import MODEL_BUILDER

from pytest_edgeperf.config import DEFAULT_PROCESSES

# record once: these tests count outcomes and entries of one pass (update passes: test_noise_plugin.py)
UPDATE_ONCE = ("--edgeperf-update-baselines", "--edgeperf-update-passes=1")

pytest_plugins = ["pytester"]

# --edgeperf-max-cpu-wait=100: the A/A check below reads the timing note, which a busy CI machine would replace
FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=30", "--edgeperf-min-time=0.6",
        "--edgeperf-max-time=10", "--edgeperf-idle-time=0", "--edgeperf-no-progress", "--edgeperf-threads=1",
        "--edgeperf-max-cpu-wait=100"]

TEST = """
import pytest

@pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"]{marker})
def test_model(edgeperf):
    edgeperf.measure()
"""


@pytest.fixture
def project(tiny_project: pytest.Pytester) -> pytest.Pytester:
    return tiny_project


def _run(project: pytest.Pytester, *args: str, marker: str = "") -> dict:
    project.makepyfile(test_proc=TEST.format(marker=marker))
    out = project.path / "out.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", *args)
    result.assert_outcomes(passed=1)
    (res,) = json.loads(out.read_text())["results"]
    return res


def test_processes_share_the_budget_and_the_baseline_keeps_each_one(project: pytest.Pytester) -> None:
    res = _run(project, "--edgeperf-processes=3", *UPDATE_ONCE)
    samples = res["samples"]
    assert sorted(set(samples["process"])) == [0, 1, 2]
    assert len(samples["process"]) == len(samples["latency_s"]) >= 30
    # each process timed its own share: at least ceil(30 / 3) samples, inside its own window
    assert res["environment"]["processes"] == 3 and len(res["windows"]) == 3
    for index, (start, end) in enumerate(res["windows"]):
        mine = [s for s, p in zip(samples["start_s"], samples["process"], strict=True) if p == index]
        assert len(mine) >= 10
        assert start - 1e-6 <= min(mine) and max(mine) <= end + 1e-6
    starts = [w[0] for w in res["windows"]]
    assert starts == sorted(starts)  # one after another, never at the same time
    # every process's own memory peak is kept; the result's peak is the highest of them
    assert len(res["process_peak_rss_mb"]) == 3 and max(res["process_peak_rss_mb"]) == res["peak_rss_mb"] > 0
    # the reference model ran between the samples of every process, on the same clock
    assert sorted(set(samples["reference_process"])) == [0, 1, 2]
    assert len(samples["reference_s"]) == len(samples["reference_process"]) > 0
    assert res["summary"]["reference_ms"] > 0
    (entry,) = json.loads((project.path / "baselines" / "host" / "test_proc.json").read_text())["entries"].values()
    assert len(entry["samples"]["process_latency_ms"]) == 3
    assert len(entry["samples"]["process_reference_ms"]) == 3
    assert entry["environment"]["processes"] == 3
    # an A/A comparison against it says how it decided
    project.makepyfile(test_proc=TEST.format(marker=""))
    again = project.runpytest(*FAST, "--edgeperf-processes=3", f"--edgeperf-json={project.path / 'again.json'}")
    assert again.ret in (0, 1)  # a real timing verdict on a shared machine; what it says is checked below
    (res2,) = json.loads((project.path / "again.json").read_text())["results"]
    fps = next(v for v in res2["verdicts"] if v["metric"] == "fps")
    assert "relative to the machine reference" in fps["note"] and "processes 3 -> 3" in fps["note"]


def test_default_and_marker_and_quick_process_counts(project: pytest.Pytester) -> None:
    assert len(set(_run(project)["samples"]["process"])) == DEFAULT_PROCESSES
    assert len(set(_run(project, marker=", processes=2")["samples"]["process"])) == 2
    quick = _run(project, "--edgeperf-quick")
    assert quick["samples"]["process"] == [] and quick["environment"]["processes"] == 1


def test_no_reference_option(project: pytest.Pytester) -> None:
    res = _run(project, "--edgeperf-processes=1", "--edgeperf-no-reference")
    assert res["samples"]["reference_s"] == [] and "reference_ms" not in res["summary"]
    assert res["samples"]["process"] == []


@pytest.mark.parametrize(("args", "message"), [
    (["--edgeperf-processes=0"], "--edgeperf-processes must be > 0"),
    (["--edgeperf-processes=two"], "--edgeperf-processes: expected int, got 'two'"),
    (["--edgeperf-max-cpu-wait=150"], "--edgeperf-max-cpu-wait must be <= 100 (range 0 <= x <= 100), got 150"),
    (["--edgeperf-max-cpu-wait=-1"], "--edgeperf-max-cpu-wait must be >= 0"),
])
def test_bad_process_count_is_one_line_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(message in ln for ln in result.stderr.lines), result.stderr.lines
    assert "Traceback" not in result.stderr.str()


def test_bad_marker_process_count(project: pytest.Pytester) -> None:
    project.makepyfile(test_proc=TEST.format(marker=", processes=0"))
    result = project.runpytest(*FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("argument 'processes': expected a positive integer" in ln for ln in result.stderr.lines)


def test_reference_keeps_a_process_wide_thread_count(tmp_path) -> None:
    """OpenCV's thread count is one setting per process: loading the reference must not make the model 1-thread."""
    cv2 = pytest.importorskip("cv2")
    import importlib.util

    from pytest_edgeperf.frameworks import get_adapter
    from pytest_edgeperf.worker.child import _load_reference

    source = tmp_path / "modelbuilder.py"  # the same builder the inner projects import
    source.write_text(MODEL_BUILDER)
    spec = importlib.util.spec_from_file_location("modelbuilder_for_reference_test", source)
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    model = tmp_path / "tiny.onnx"
    builder.build(str(model))
    before = cv2.getNumThreads()
    try:
        get_adapter("opencv").load(model, 2)
        reference = _load_reference("opencv", {"model_file": str(model)}, 2)
        assert cv2.getNumThreads() == 2
        reference.block()
        assert len(reference.durations) == reference.block_runs
        # a runtime with per-model threads keeps the reference on one thread
        assert not get_adapter("onnxruntime").process_wide_threads
        assert get_adapter("opencv").process_wide_threads
    finally:
        cv2.setNumThreads(before)
