"""Model signatures as users bring them: dynamic dimensions, several inputs, int64 and uint8-quantised inputs.

The models are built here (onnx.helper, the TFLite schema) with the signatures that went wrong before: a detector
``[N, 3, height, width]`` was measured at ``[1, 3, 1, 1]`` (status ok), a three-input model with an int64 input
failed with "Required inputs are missing".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_edgeperf.frameworks import FRAMEWORKS, get_adapter
from pytest_edgeperf.frameworks.signature import (
    SignatureError,
    TensorSpec,
    check_feed,
    dequantize,
    generate_input,
    resolve_inputs,
    to_input_dtype,
)

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.1",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0", "--edgeperf-processes=1", "--edgeperf-no-reference"]
DETECTOR = TensorSpec("images", ("N", 3, "height", "width"), "float32")


def installed(name: str) -> bool:
    return FRAMEWORKS[name].is_installed()[0]


def sig_builder() -> dict[str, Any]:
    from sigmodels import SIG_BUILDER

    namespace: dict[str, Any] = {}
    exec(SIG_BUILDER, namespace)  # the same source the inner projects import
    return namespace


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    from sigmodels import SIG_BUILDER

    pytester.makepyfile(sigbuilder=SIG_BUILDER)
    pytester.makeconftest("""
        import sigbuilder
        sigbuilder.build_dynamic("dynamic.onnx")
        sigbuilder.build_dynamic("batch.onnx", dims=("N", 3, 16, 16))
        sigbuilder.build_three("three.onnx")
    """)
    return pytester


def reasons(result: pytest.RunResult) -> list[str]:
    """The plugin's failure lines, not its "waiting for the device lock" line (another xdist worker measuring)."""
    return [ln for ln in result.stdout.lines
            if ln.startswith("[edgeperf] ") and not ln.startswith("[edgeperf] waiting for the device lock")]


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["test_id"].split("::", 1)[1]: r for r in json.loads(path.read_text())["results"]}


# ---- resolving the declared inputs (pure) ------------------------------------------------------------------------

def test_a_dynamic_dimension_nothing_resolves_is_an_error_naming_input_and_dimension() -> None:
    with pytest.raises(SignatureError) as err:
        resolve_inputs([DETECTOR], "det.onnx")
    assert str(err.value) == ("det.onnx: input 'images' dimension 2 ('height') is dynamic; give "
                              "input_shapes={'images': [1, 3, height, width]}")


def test_input_shapes_resolve_and_a_leading_batch_defaults_to_1_with_a_note() -> None:
    plan = resolve_inputs([DETECTOR], "det.onnx", shapes=[1, 3, 640, 640])
    assert plan.specs[0].shape == (1, 3, 640, 640) and plan.notes == []
    batch_only = resolve_inputs([TensorSpec("x", (None, 3, 32, 32), "float32")], "m")
    assert batch_only.specs[0].shape == (1, 3, 32, 32)
    assert batch_only.notes == ["input 'x': dynamic batch dimension unnamed measured at 1"]
    # a symbolic name given for one input resolves it in the others
    two = [DETECTOR, TensorSpec("mask", ("N", "height", "width"), "bool")]
    plan = resolve_inputs(two, "m", shapes={"images": [2, 3, 64, 48]})
    assert plan.specs[1].shape == (2, 64, 48)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"shapes": [1, 64]}, "m: input_shapes=[1, 64] is one shape, but the model has 3 inputs ('input', 'state', "
                          "'sr'); give input_shapes={name: shape}"),
    ({"shapes": {"audio": [1, 64]}}, "m: input_shapes names input 'audio', which the model does not have "
                                     "(inputs: 'input', 'state', 'sr')"),
    ({"shapes": {"input": [1, 32]}}, "m: input 'input' dimension 1 is fixed at 64 in the model; input_shapes "
                                     "gives 32"),
    ({"shapes": {"state": [2, 16]}}, "m: input 'state' has 3 dimensions [2, 1, 16]; input_shapes gives 2: [2, 16]"),
    ({"dtypes": {"sr": "float32"}}, "m: input 'sr' is int64 in the model; input_dtypes gives float32"),
    ({"values": {"rate": 16000}}, "m: input_values names input 'rate', which the model does not have "
                                  "(inputs: 'input', 'state', 'sr')"),
])
def test_wrong_input_arguments_are_one_line_errors(kwargs: dict[str, Any], message: str) -> None:
    three = [TensorSpec("input", (1, 64), "float32"), TensorSpec("state", (2, 1, 16), "float32"),
             TensorSpec("sr", (), "int64")]
    with pytest.raises(SignatureError) as err:
        resolve_inputs(three, "m", **kwargs)
    assert str(err.value) == message


def test_inputs_are_generated_per_dtype() -> None:
    def gen(dtype: str, value: Any = None) -> np.ndarray:
        return generate_input(TensorSpec("t", (1, 4096), dtype), value, 0)

    floats = gen("float32")
    assert floats.dtype == np.float32 and abs(float(floats.mean())) < 0.1 and 0.9 < float(floats.std()) < 1.1
    for dtype in ("uint8", "int8"):
        info = np.iinfo(dtype)
        values = gen(dtype)
        assert values.dtype == np.dtype(dtype) and values.min() <= info.min + 2 and values.max() >= info.max - 2
    assert not gen("int64").any() and gen("int64").dtype == np.int64
    assert gen("bool").all()
    assert generate_input(TensorSpec("sr", (), "int64"), 16000, 0) == np.array(16000)
    assert (gen("int32", 7) == 7).all()


def test_real_values_are_quantised_with_the_inputs_scale_and_zero_point() -> None:
    spec = TensorSpec("image", (1, 2), "uint8", scale=1 / 127.5, zero_point=128)
    q = to_input_dtype(np.array([[-0.9, 0.5]], np.float32), spec)
    assert q.dtype == np.uint8 and q.tolist() == [[13, 192]]  # round(x / scale + zero_point)
    assert to_input_dtype(np.array([[9.0, -9.0]], np.float32), spec).tolist() == [[255, 0]]  # clipped
    int8 = TensorSpec("image", (1, 1), "int8", scale=0.5, zero_point=-3)
    assert to_input_dtype(np.array([[1.0]], np.float32), int8).tolist() == [[-1]]
    assert np.allclose(dequantize(np.array([255], np.uint8), spec), 127 / 127.5)


def test_a_feed_from_a_callable_is_checked_by_name_shape_and_dtype() -> None:
    plan = resolve_inputs([DETECTOR, TensorSpec("sr", (), "int64")], "m", open_ok=True)
    assert plan.specs[0].shape == (1, 3, "height", "width")
    ok = {"images": np.zeros((1, 3, 40, 30), np.float32)}
    assert set(check_feed(ok, plan, "m", "f")) == {"images"}
    assert plan.specs[0].shape == (1, 3, 40, 30)  # the feed closed the open dimensions
    bad = [({"image": ok["images"]}, "m: f gave input 'image', which the model does not have (inputs: 'images', "
                                     "'sr')"),
           ({"images": np.zeros((1, 4, 40, 30), np.float32)},
            "m: f gave input 'images' with shape [1, 4, 40, 30]; the model takes [1, 3, 40, 30]"),
           ({"sr": np.array(1.0)}, "m: f gave input 'sr' as float64; the model takes int64")]
    for feed, message in bad:
        with pytest.raises(SignatureError) as err:
            check_feed(feed, plan, "m", "f")
        assert str(err.value) == message


# ---- the adapters: every input fed by name --------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["onnxruntime", "opencv"])
def test_three_inputs_are_fed_by_name_with_the_values_given(runtime: str, tmp_path: Path) -> None:
    if not installed(runtime):
        pytest.skip(f"{runtime} is not installed")
    sig_builder()["build_three"](str(tmp_path / "three.onnx"))
    adapter = get_adapter(runtime)
    adapter.load(tmp_path / "three.onnx", 1)
    assert [(s.name, s.shape, s.dtype) for s in adapter.inputs] == [
        ("input", (1, 64), "float32"), ("state", (2, 1, 16), "float32"), ("sr", (), "int64")]
    assert [s.name for s in adapter.outputs] == ["out", "state_out"]
    from pytest_edgeperf.worker.child import generated_feed

    plan = resolve_inputs(adapter.inputs, "three.onnx", values={"sr": 16000, "state": 0.25})
    feed = generated_feed(plan, plan.specs, 0)
    out = adapter.run(feed)
    assert np.allclose(out - feed["input"], 16000 + 0.25 * 32)
    assert plan.notes == []  # every non-float input had a value: no default to mention


@pytest.mark.skipif(not installed("litert"), reason="LiteRT is not installed")
def test_litert_reports_quantisation_and_resizes_a_dynamic_batch(tmp_path: Path) -> None:
    sig_builder()["build_quant_tflite"](str(tmp_path / "q.tflite"))
    adapter = get_adapter("litert")
    adapter.load(tmp_path / "q.tflite", 1)
    (spec,) = adapter.inputs
    assert spec.to_json() == {"name": "image", "shape": [None, 8, 8, 3], "dtype": "uint8",
                              "scale": pytest.approx(1 / 127.5), "zero_point": 128}
    adapter.set_input_shapes({"image": (2, 8, 8, 3)})
    real = np.linspace(-1, 1, 2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
    out = adapter.run(to_input_dtype(real, spec))
    assert out.shape == (2, 3) and np.allclose(out, real.mean(axis=(1, 2)), atol=1 / 127.5)


def test_opencv_refusal_keeps_the_reason_not_the_last_line() -> None:
    from pytest_edgeperf.frameworks.opencv_adapter import opencv_message

    text = ("OpenCV(5.0.0) /io/opencv/modules/dnn/src/onnx/onnx_importer2.cpp:1110: error: (-2:Unspecified error) "
            "in function 'parseNode'\n> Node [Foo@ai.onnx]:(onnx_node!x) parse error: unsupported op\n> ")
    assert opencv_message(text) == ("(-2:Unspecified error) in function 'parseNode'; Node [Foo@ai.onnx]:"
                                    "(onnx_node!x) parse error: unsupported op")


def test_openvino_refusal_keeps_the_reasons_not_the_source_location() -> None:
    """OpenVINO's first line is a C++ location; the reasons are deeper (its real text for Silero VAD v6)."""
    from pytest_edgeperf.frameworks.openvino_adapter import openvino_message

    text = ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at src/frontends/"
            "common_translators/"
            "src/unconverted_ops_report.cpp:151:\nFrontEnd API failed with OpConversionFailure:\nModel wasn't fully "
            "converted. Failed operations detailed log:\n-- Conv-16 with a message:\nWhile validating ONNX node "
            "'<Node(Conv): x>': Check 'data.get_partial_shape().rank().is_static()' failed at src/frontends/onnx/"
            "frontend/src/op/conv.cpp:38:\nFrontEnd API failed with GeneralFailure:\nThe input data tensor's rank "
            "has to be known (static)\n\n-- ReduceMean-16 with a message:\nUnsupported input type dynamic\n\n"
            "Summary:\n-- Conversion is failed for: Conv-16, ReduceMean-16\n\n")
    assert openvino_message(RuntimeError(text)) == (
        "The input data tensor's rank has to be known (static); Unsupported input type dynamic; "
        "Conversion is failed for: Conv-16, ReduceMean-16")
    # nothing but locations: the first line rather than nothing
    assert openvino_message(RuntimeError("Exception from src/a.cpp:1:\n")) == "Exception from src/a.cpp:1:"


# ---- through the plugin -----------------------------------------------------------------------------------------

def test_dynamic_model_without_input_shapes_fails_in_one_line_never_at_1(project: pytest.Pytester) -> None:
    project.makepyfile(test_dyn="""
        import pytest

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks=["onnxruntime", "opencv"])
        def test_detector(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST)
    runtimes = [r for r in ("onnxruntime", "opencv") if installed(r)]
    result.assert_outcomes(failed=len(runtimes), skipped=2 - len(runtimes))
    assert sorted(reasons(result)) == sorted(
        f"[edgeperf] {r} on dynamic.onnx: input 'images' dimension 2 ('height') is dynamic; give "
        f"input_shapes={{'images': [1, 3, height, width]}}" for r in runtimes)
    assert "Traceback" not in result.stdout.str()


def test_input_shapes_measure_at_that_shape_and_the_json_says_so(project: pytest.Pytester) -> None:
    project.makepyfile(test_dyn="""
        import pytest

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks=["onnxruntime", "opencv"],
                              input_shapes={"images": [1, 3, 48, 40]})
        def test_detector(edgeperf):
            r = edgeperf.measure()
            assert r.environment["input_shape"] == [1, 3, 48, 40]

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks="onnxruntime")
        def test_shape_in_measure(edgeperf):
            edgeperf.measure(input_shapes=[2, 3, 24, 24])

        @pytest.mark.edgeperf(model="batch.onnx", frameworks="onnxruntime")
        def test_batch_only(edgeperf):
            edgeperf.measure()
    """)
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}")
    runtimes = [r for r in ("onnxruntime", "opencv") if installed(r)]
    result.assert_outcomes(passed=len(runtimes) + 2, skipped=2 - len(runtimes))
    by_test = results(out)
    for runtime in runtimes:
        env = by_test[f"test_detector[{runtime}]"]["environment"]
        assert env["inputs"] == [{"name": "images", "shape": [1, 3, 48, 40], "dtype": "float32"}]
        assert env["declared_inputs"] == [{"name": "images", "shape": ["N", 3, "height", "width"],
                                           "dtype": "float32"}]
        assert env["outputs"] == [{"name": "out", "shape": ["N", 8, "height", "width"], "dtype": "float32"}]
    assert by_test["test_shape_in_measure[onnxruntime]"]["environment"]["input_shape"] == [2, 3, 24, 24]
    batch = by_test["test_batch_only[onnxruntime]"]
    assert batch["environment"]["input_shape"] == [1, 3, 16, 16]
    assert "input 'images': dynamic batch dimension 'N' measured at 1" in batch["notes"]


def test_three_input_model_with_int64_is_measured_without_extra_code(project: pytest.Pytester) -> None:
    project.makepyfile(feeds="""
        import numpy as np

        def chunks(shapes, dtypes):
            # several inputs: called with {name: shape} and {name: dtype}; returns feeds by name
            return [{"input": np.full(shapes["input"], i, dtypes["input"]), "sr": np.array(8000, dtypes["sr"])}
                    for i in range(3)]

        def misnamed(shapes, dtypes):
            return [{"audio": np.zeros(shapes["input"], dtypes["input"])}]

        def wrong_dtype(shapes, dtypes):
            return {"input": np.zeros(shapes["input"], np.float64)}
    """)
    project.makepyfile(test_three="""
        import pytest

        @pytest.mark.edgeperf(model="three.onnx", frameworks=["onnxruntime", "opencv", "litert"])
        def test_plain(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="three.onnx", frameworks="onnxruntime", input_values={"sr": 16000})
        def test_values(edgeperf):
            edgeperf.measure()

        @pytest.mark.parametrize("ref", ["feeds:chunks", "feeds:misnamed", "feeds:wrong_dtype"])
        @pytest.mark.edgeperf(model="three.onnx", frameworks="onnxruntime")
        def test_callable(edgeperf, ref):
            edgeperf.measure(inputs=ref)

        @pytest.mark.edgeperf(model="three.onnx", frameworks="onnxruntime", input_shapes=[1, 64])
        def test_one_shape_for_three(edgeperf):
            edgeperf.measure()
    """)
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", "-rs")
    runtimes = [r for r in ("onnxruntime", "opencv") if installed(r)]
    # litert: a skip (it does not load .onnx); the misnamed and wrong-dtype feeds and one shape for 3 inputs fail
    result.assert_outcomes(passed=len(runtimes) + 2, failed=3, skipped=1 + 2 - len(runtimes))
    prefix = "[edgeperf] onnxruntime on three.onnx: "
    assert sorted(reasons(result)) == sorted([
        prefix + "the inputs callable feeds:misnamed gave input 'audio', which the model does not have (inputs: "
                 "'input', 'state', 'sr')",
        prefix + "the inputs callable feeds:wrong_dtype gave input 'input' as float64; the model takes float32",
        prefix + "input_shapes=[1, 64] is one shape, but the model has 3 inputs ('input', 'state', 'sr'); give "
                 "input_shapes={name: shape}",
    ])
    by_test = results(out)
    for runtime in runtimes:
        r = by_test[f"test_plain[{runtime}]"]
        assert r["status"] == "ok"
        assert r["environment"]["inputs"] == [{"name": "input", "shape": [1, 64], "dtype": "float32"},
                                              {"name": "state", "shape": [2, 1, 16], "dtype": "float32"},
                                              {"name": "sr", "shape": [], "dtype": "int64"}]
        assert ("input 'sr' (int64) fed zeros; give input_values={'sr': ...} for another value"
                in r["notes"])
    assert not any("fed zeros" in n for n in by_test["test_values[onnxruntime]"]["notes"])
    # the callable gave input and sr; state got a generated array, and nothing to note about sr
    assert not any("fed zeros" in n for n in by_test["test_callable[onnxruntime-feeds:chunks]"]["notes"])


def test_marker_input_arguments_are_checked_before_measuring(project: pytest.Pytester) -> None:
    project.makepyfile(test_bad="""
        import pytest

        @pytest.mark.edgeperf(model="dynamic.onnx", input_shapes={"images": [1, 3, 0, 640]})
        def test_detector(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("ERROR: test_bad.py::test_detector: @pytest.mark.edgeperf argument 'input_shapes': input 'images': "
            "every size must be a positive int, got [1, 3, 0, 640]") in result.stderr.lines


@pytest.mark.skipif(not installed("litert"), reason="LiteRT is not installed")
def test_uint8_tflite_is_fed_uint8_and_real_images_are_quantised(pytester: pytest.Pytester) -> None:
    from sigmodels import SIG_BUILDER

    pytester.makepyfile(sigbuilder=SIG_BUILDER)
    pytester.makeconftest("""
        import sigbuilder
        sigbuilder.build_quant_tflite("quant.tflite")
        sigbuilder.write_colours("colours")
    """)
    # the model's output is the mean real value per channel: a red image scores highest on channel 0 only if the
    # preprocessed [-1, 1] floats were quantised with the input's scale and zero point (a plain cast wraps -1)
    pytester.makepyfile(test_q="""
        import pytest

        PRE = {"size": [8, 8], "mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}

        @pytest.mark.edgeperf(model="quant.tflite", frameworks="litert", min_top1_pct=100,
                              accuracy={"dataset": "colours", "preprocess": PRE})
        def test_random_and_accuracy(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="quant.tflite", frameworks="litert")
        def test_images(edgeperf):
            edgeperf.measure(inputs="colours", preprocess=PRE)
    """)
    out = pytester.path / "r.json"
    result = pytester.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=2)
    by_test = results(out)
    accuracy = by_test["test_random_and_accuracy[litert]"]
    assert accuracy["accuracy"]["top1_pct"] == 100.0
    (spec,) = accuracy["environment"]["inputs"]
    assert spec == {"name": "image", "shape": [1, 8, 8, 3], "dtype": "uint8", "scale": pytest.approx(1 / 127.5),
                    "zero_point": 128}
    assert "input 'image': dynamic batch dimension unnamed measured at 1" in accuracy["notes"]
    assert by_test["test_images[litert]"]["environment"]["inputs"][0]["dtype"] == "uint8"


def test_a_different_input_shape_is_not_comparable_with_the_baseline(project: pytest.Pytester) -> None:
    test = """
        import pytest

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks="onnxruntime", input_shapes=[1, 3, {size}, {size}])
        def test_detector(edgeperf):
            edgeperf.measure()
    """
    project.makepyfile(test_dyn=test.format(size=32))
    recorded = project.runpytest(*FAST, "--edgeperf-update-baselines", "--edgeperf-update-passes=1")
    recorded.assert_outcomes(passed=1)
    project.makepyfile(test_dyn=test.format(size=48))
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}")
    result.assert_outcomes(passed=1)  # another workload: never a regression
    r = results(out)["test_detector[onnxruntime]"]
    assert r["overall_verdict"] == "INCONCLUSIVE"
    assert ("incomparable environment: inputs images 1x3x32x32 float32 -> images 1x3x48x48 float32"
            in r["notes"])
