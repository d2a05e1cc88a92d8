"""The plugin core through pytester: marker, fixtures, parametrization, a real measurement, limits, crashes, JSON."""

from __future__ import annotations

import json
import statistics

import pytest

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=20", "--edgeperf-min-time=0.2",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0"]


@pytest.fixture
def project(tiny_project: pytest.Pytester) -> pytest.Pytester:
    return tiny_project


def test_markers_and_fixtures_are_listed(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["*@pytest.mark.edgeperf(model=None*"])
    fixtures = pytester.runpytest("--fixtures")
    for name in ("pi_device", "thermal_guard", "power_meter", "framework", "edgeperf"):
        fixtures.stdout.fnmatch_lines([f"{name}*"])


def test_framework_parametrization_ids(project: pytest.Pytester) -> None:
    project.makepyfile(test_ids="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx")
        def test_model(framework):
            pass
    """)
    result = project.runpytest("--collect-only", "-q", "--strict-markers")
    result.stdout.fnmatch_lines(["*test_model[[]onnxruntime[]]", "*test_model[[]litert[]]", "*test_model[[]opencv[]]"])
    assert result.ret == 0


def test_marker_frameworks_subset_and_alias(project: pytest.Pytester) -> None:
    project.makepyfile(test_sub="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["ort"])
        def test_model(framework):
            pass
    """)
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_model[[]onnxruntime[]]", "1 test collected*"])


def test_uninstalled_runtime_is_a_skip_with_reason(project: pytest.Pytester) -> None:
    project.makeconftest("""
        import sys
        import modelbuilder
        sys.modules["cv2"] = None  # as if opencv were not installed
        modelbuilder.build("tiny.onnx")
    """)
    project.makepyfile(test_skip="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["opencv"])
        def test_model(framework):
            pass
    """)
    result = project.runpytest_subprocess("-rs")
    result.stdout.fnmatch_lines(["*SKIPPED*opencv is not installed*pytest-edgeperf[[]opencv[]]*"])
    assert result.ret == 0


@pytest.mark.parametrize(("marker", "message"), [
    ("fpss=3", "argument 'fpss': unknown argument"),
    ("min_samples=-4", "argument 'min_samples': expected a positive integer, got -4"),
    ("min_samples='many'", "argument 'min_samples': expected a positive integer"),
    ("threads=True", "argument 'threads': expected a positive integer"),
    ("frameworks=['caffe']", "argument 'frameworks': unknown framework 'caffe'"),
    ("max_latency_ms=0", "argument 'max_latency_ms': must be > 0"),
    ("min_time_s=5, max_time_s=1", "argument 'max_time_s': is below min_time_s"),
    ("tolerance='fps=lots'", "argument 'tolerance'"),
])
def test_bad_marker_argument_is_one_line_usage_error(project: pytest.Pytester, marker: str, message: str) -> None:
    project.makepyfile(test_bad=f"""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", {marker})
        def test_model(edgeperf):
            pass
    """)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.lines
    assert "test_bad.py::test_model" in errors[0]
    assert message in errors[0]
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize(("option", "message"), [
    ("--edgeperf-min-samples=0", "--edgeperf-min-samples must be > 0"),
    ("--edgeperf-min-time=abc", "--edgeperf-min-time: expected float, got 'abc'"),
    ("--edgeperf-device=pi9", "--edgeperf-device: unknown device"),
    ("--edgeperf-tolerance=fps", "--edgeperf-tolerance"),
])
def test_bad_option_is_one_line_usage_error(pytester: pytest.Pytester, option: str, message: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(message in ln for ln in result.stderr.lines), result.stderr.lines
    assert "Traceback" not in result.stderr.str()


def test_real_measurement_table_and_json(project: pytest.Pytester) -> None:
    project.makepyfile(test_measure="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime", "opencv"])
        def test_model(edgeperf, framework):
            result = edgeperf.measure()
            assert result.framework == framework
            assert result.valid_count >= 20
            assert result.load_time_s > 0 and result.first_inference_s > 0
    """)
    out = project.path / "results.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*edgeperf: host*", "*test_model[[]onnxruntime[]]*host*onnxruntime*tiny.onnx*"])
    data = json.loads(out.read_text())
    assert data["device"]["profile"] == "host"
    assert {r["framework"] for r in data["results"]} == {"onnxruntime", "opencv"}
    for r in data["results"]:
        lat = r["samples"]["latency_s"]
        assert len(lat) == len(r["samples"]["start_s"]) >= 20
        # the JSON keeps latencies to the nanosecond: allow that rounding relative to the median
        median = statistics.median(lat)
        assert r["summary"]["fps"] == pytest.approx(1.0 / median, rel=2e-9 / median + 1e-9)
        assert r["environment"]["model_sha256"] and r["environment"]["runtime_version"]
        assert r["environment"]["python"] and r["environment"]["kernel"] and r["environment"]["machine"]
        assert r["peak_rss_mb"] >= r["rss_after_load_mb"] > 0
        assert 0 < r["cpu_percent"] < 100 * 64
        # the table shows the JSON's median throughput
        row = next(ln for ln in result.stdout.lines if f"test_model[{r['framework']}]" in ln and "tiny.onnx" in ln)
        assert f"{r['summary']['fps']:.1f}" in row


def test_marked_test_without_explicit_measure_is_measured(project: pytest.Pytester) -> None:
    project.makepyfile(test_auto="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(framework):
            pass
    """)
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=1)
    assert len(json.loads(out.read_text())["results"]) == 1


def test_limits_fail_the_test_itself_with_limit_and_value(project: pytest.Pytester) -> None:
    project.makepyfile(test_limits="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", min_fps=1e9)
        def test_too_slow(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", max_memory_mb=1)
        def test_too_big(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", min_fps=1, max_latency_ms=10000)
        def test_within(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*fps was limited to >= 1e+09 but measured*",
        "*peak_memory_mb was limited to <= 1 but measured*",
    ])
    result.stdout.fnmatch_lines(["*FAILED*test_too_slow*", "*FAILED*test_too_big*"])


def test_crashing_worker_fails_one_test_and_the_session_goes_on(project: pytest.Pytester) -> None:
    project.makepyfile(crashy="""
        import ctypes

        def segfault(shape, dtype):
            ctypes.string_at(0)  # a real SIGSEGV inside the worker, as a crashing runtime would
    """)
    project.makepyfile(test_crash="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", inputs="crashy:segfault")
        def test_crashes(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_still_runs(edgeperf):
            assert edgeperf.measure().fps > 0
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]edgeperf[]] onnxruntime on tiny.onnx: worker crashed with SIGSEGV*"])
    assert "Traceback" not in result.stdout.str()


def test_hanging_worker_is_killed_after_the_timeout(project: pytest.Pytester) -> None:
    project.makepyfile(hangs="""
        import time

        def forever(shape, dtype):
            time.sleep(3600)
    """)
    project.makepyfile(test_hang="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", inputs="hangs:forever")
        def test_hangs(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST, "--edgeperf-worker-timeout=3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*onnxruntime on tiny.onnx: worker hung during warm-up (no answer within 3 s); killed*"])


def test_missing_and_non_model_files_fail_with_one_line(project: pytest.Pytester) -> None:
    (project.path / "garbage.onnx").write_bytes(b"this is not a protobuf")
    project.makepyfile(test_files="""
        import pytest

        @pytest.mark.edgeperf(model="nothere.onnx", frameworks="onnxruntime")
        def test_missing(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="garbage.onnx", frameworks="onnxruntime")
        def test_garbage(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*[[]edgeperf[]] model not found: nothere.onnx*",
        "*[[]edgeperf[]] onnxruntime on garbage.onnx: the runtime refused the model:*",
    ])


def test_quick_mode_uses_a_tiny_budget(project: pytest.Pytester) -> None:
    project.makepyfile(test_quick="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            r = edgeperf.measure()
            assert r.quick
            assert len(r.samples) >= 10
    """)
    result = project.runpytest("-p", "no:cacheprovider", "--edgeperf-quick")
    result.assert_outcomes(passed=1)


def test_preprocessing_is_timed_and_reported_apart(project: pytest.Pytester) -> None:
    project.makepyfile(realinputs="""
        import time
        import numpy as np

        def frames(shape, dtype):
            return [np.full(shape, i, dtype=dtype) for i in range(4)]

        def scale(x):
            t = time.perf_counter() + 0.0005  # half a millisecond of work per frame
            while time.perf_counter() < t:
                pass
            return x * 0.5
    """)
    project.makepyfile(test_pre="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            r = edgeperf.measure(inputs="realinputs:frames", prepare="realinputs:scale")
            values = r.metric_values()
            assert values["preprocess_p50_ms"] >= 0.5  # the busy loop cannot take less
            assert values["latency_p50_ms"] > values["preprocess_p50_ms"]
            assert values["inference_p50_ms"] > 0
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(passed=1)
