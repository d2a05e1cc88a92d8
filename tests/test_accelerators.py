"""Accelerator paths as a user asks for them: a provider the machine lacks is a skip that says so (a failure when
strict), never a silent run on the CPU; the path that ran is in the test id and in the JSON environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_edgeperf.frameworks import FRAMEWORKS
from pytest_edgeperf.frameworks.accelerators import AcceleratorError, id_suffix, normalize
from pytest_edgeperf.verdict.environment import INCOMPARABLE_KEYS, _environment_differences

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.1",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0", "--edgeperf-processes=1", "--edgeperf-no-reference"]


def need(*names: str) -> None:
    for name in names:
        installed, why = FRAMEWORKS[name].is_installed()
        if not installed:
            pytest.skip(why)


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["test_id"].split("::", 1)[1]: r for r in json.loads(path.read_text())["results"]}


def run(pytester: pytest.Pytester, source: str, *args: str) -> tuple[pytest.RunResult, Path]:
    pytester.makepyfile(test_acc=source)
    out = pytester.path / "r.json"
    return pytester.runpytest(*FAST, "-rs", f"--edgeperf-json={out}",
                              f"--edgeperf-cache-dir={pytester.path / 'cache'}", *args), out


CUDA = """
    import pytest

    @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"], providers=["CUDAExecutionProvider"])
    def test_cuda(edgeperf):
        edgeperf.measure()
"""


def test_a_provider_this_build_lacks_is_a_skip_with_the_reason(pytester: pytest.Pytester) -> None:
    need("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    result, out = run(pytester, CUDA)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([
        "SKIPPED*test_acc.py*onnxruntime on zoo:tiny_cnn: CUDAExecutionProvider is not available in this "
        "onnxruntime * build (available: *CPUExecutionProvider*)"])
    assert "test_cuda[onnxruntime-CUDAExecutionProvider]" in pytester.runpytest("--collect-only", "-q").stdout.str()
    assert not out.exists() or not results(out)  # nothing measured on the CPU in its place


def test_a_provider_this_build_lacks_fails_under_strict(pytester: pytest.Pytester) -> None:
    need("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    result, _ = run(pytester, CUDA, "--edgeperf-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CUDAExecutionProvider is not available in this onnxruntime*(--edgeperf-strict)"])
    assert "Traceback" not in result.stdout.str()


def test_the_providers_that_ran_are_in_the_json(pytester: pytest.Pytester) -> None:
    need("onnxruntime")
    result, out = run(pytester, """
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"])
        def test_default(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"], providers=["cpu"])
        def test_cpu(edgeperf):
            edgeperf.measure()
    """)
    result.assert_outcomes(passed=2)
    by_test = results(out)
    assert by_test["test_default[onnxruntime]"]["environment"]["provider"] == "CPUExecutionProvider"
    cpu = by_test["test_cpu[onnxruntime-CPUExecutionProvider]"]["environment"]
    assert cpu["provider"] == "CPUExecutionProvider"
    assert cpu["accelerator"] == {"providers": [["CPUExecutionProvider", {}]]}


def test_litert_without_xnnpack_runs_and_is_recorded(pytester: pytest.Pytester) -> None:
    need("litert")
    _, out = run(pytester, """
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["litert", "onnxruntime"], delegates=[])
        def test_plain(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["litert"])
        def test_default(edgeperf):
            edgeperf.measure()
    """)
    by_test = results(out)
    assert by_test["test_plain[litert-no-xnnpack]"]["environment"]["provider"] == "builtin"
    assert by_test["test_default[litert]"]["environment"]["provider"] == "xnnpack"
    # delegates= is LiteRT's argument: ONNX Runtime in the same marker keeps its plain id and default path
    if FRAMEWORKS["onnxruntime"].is_installed()[0]:
        assert by_test["test_plain[onnxruntime]"]["environment"]["provider"] == "CPUExecutionProvider"


def test_a_delegate_library_that_is_not_there_is_a_skip(pytester: pytest.Pytester) -> None:
    need("litert")
    result, _ = run(pytester, """
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["litert"],
                              delegates=[("libedgetpu.so.1", {"device": "usb"})])
        def test_tpu(edgeperf):
            edgeperf.measure()
    """)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*litert on zoo:tiny_cnn: LiteRT delegate libedgetpu.so.1 could not be loaded*"])


def test_opencv_backend_and_target_are_in_the_id_and_recorded(pytester: pytest.Pytester) -> None:
    need("opencv")
    result, out = run(pytester, """
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["opencv"], backend="opencv", target="cpu")
        def test_cpu(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["opencv"], backend="cuda")
        def test_cuda(edgeperf):
            edgeperf.measure()
    """)
    by_test = results(out)
    assert by_test["test_cpu[opencv-opencv-cpu]"]["environment"]["provider"] == "opencv/cpu"
    import cv2

    if not cv2.dnn.getAvailableTargets(cv2.dnn.DNN_BACKEND_CUDA):
        result.stdout.fnmatch_lines(["SKIPPED*OpenCV DNN backend 'cuda' is not available in this OpenCV*"])


def test_measure_takes_a_provider_too(pytester: pytest.Pytester) -> None:
    need("onnxruntime")
    result, out = run(pytester, """
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"])
        def test_two(edgeperf):
            edgeperf.measure(label="default")
            edgeperf.measure(label="cpu", providers=[("CPUExecutionProvider",
                                                      {"arena_extend_strategy": "kSameAsRequested"})])
    """)
    result.assert_outcomes(passed=1)
    by_test = results(out)
    assert by_test["test_two[onnxruntime]::cpu"]["environment"]["accelerator"]["providers"] == [
        ["CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}]]


def test_openvino_and_ncnn_are_selectable_in_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sel="""
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["openvino", "ov", "ncnn"])
        def test_new(edgeperf):
            pass
    """)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_new[[]openvino[]]", "*test_new[[]ncnn[]]"])


@pytest.mark.parametrize(("arg", "value", "message"), [
    ("providers", "bogus", "unknown provider 'bogus'"),
    ("providers", ["cuda", "CUDAExecutionProvider"], "provider 'CUDAExecutionProvider' is given twice"),
    ("providers", [("cuda", "fast")], "options must be a dict"),
    ("delegates", [("xnnpack", {"a": 1})], "'xnnpack' takes no options"),
    ("backend", "tpu", "unknown OpenCV DNN backend 'tpu'"),
    ("target", 3, "unknown OpenCV DNN target 3"),
])
def test_a_wrong_accelerator_argument_is_one_line(pytester: pytest.Pytester, arg: str, value: Any,
                                                  message: str) -> None:
    with pytest.raises(AcceleratorError, match=message.replace("(", r"\(").replace("[", r"\[")):
        normalize(arg, value)
    pytester.makepyfile(test_bad=f"""
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", {arg}={value!r})
        def test_bad(edgeperf):
            pass
    """)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"argument '{arg}': " in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_names_and_ids() -> None:
    assert normalize("providers", "cuda") == [["CUDAExecutionProvider", {}]]
    assert id_suffix({"providers": normalize("providers", ["tensorrt", "cuda"])}) == (
        "TensorrtExecutionProvider+CUDAExecutionProvider")
    assert id_suffix({"delegates": normalize("delegates", "none")}) == "no-xnnpack"
    assert id_suffix({"delegates": normalize("delegates", ["/usr/lib/libedgetpu.so.1"])}) == "edgetpu"
    assert id_suffix({"backend": "cuda", "target": normalize("target", "DNN_TARGET_CUDA_FP16")}) == "cuda-cuda_fp16"


def test_another_provider_is_not_comparable_with_the_baseline() -> None:
    assert "provider" in INCOMPARABLE_KEYS
    diffs = _environment_differences({"provider": "CUDAExecutionProvider, CPUExecutionProvider"},
                                     {"provider": "CPUExecutionProvider"}, INCOMPARABLE_KEYS)
    assert diffs == ["provider CPUExecutionProvider -> CUDAExecutionProvider, CPUExecutionProvider"]
