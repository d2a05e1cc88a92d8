"""Issue 17: pretrained models as users bring them, measured on every installed runtime that loads them.

The models ship inside PyPI wheels and are named ``pretrained:KEY``: the plugin finds the file through the
installed package (``pytest_edgeperf.models.pretrained``), never downloads it, and a missing package is a skip with
the pip command. The name, not the site-packages path, is what results and baselines record. Each is measured at
the shape its own library feeds it: Silero VAD on 512-sample chunks at 16 kHz (three inputs, one int64,
dynamic dims), the PP-OCRv4 detector on a 640x640 page and its recogniser on a 48x320 text line (dynamic dims),
MediaPipe's hand landmark and BlazeFace models at their fixed inputs. A runtime that loads the file but refuses the
model (OpenCV on an operator it lacks, LiteRT on a custom op, pnnx on a model it cannot convert for ncnn: Silero VAD's
scalar ``sr``) is a skip with the runtime's own reason. ncnn measures the dynamic-input models converted at those
shapes (pnnx converts one static shape; each shape is its own cached conversion).

The uint8-quantised TFLite model is the project's trained digits CNN with a uint8 input (no wheel on the
registries ships a uint8 TFLite model, see ``pytest_edgeperf.models.uint8_input``); its accuracy pass runs on the
real evaluation images of ``suites/data/digits`` with ``preprocess=`` quantising them with the model's scale and
zero point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_edgeperf.fixture import EdgeperfFailure

#: key -> the measure() arguments that give its real input (none for a model whose inputs are all fixed)
MODELS: dict[str, dict[str, Any]] = {
    "silero_vad": {"input_shapes": {"input": [1, 512], "state": [2, 1, 128]}, "input_values": {"sr": 16000}},
    "ppocr_det": {"input_shapes": [1, 3, 640, 640]},
    "ppocr_rec": {"input_shapes": [1, 3, 48, 320]},
    "hand_landmark": {},
    "face_detection": {},
}
#: a runtime that cannot take the model: its own refusal, or ncnn's converter (pnnx) refusing to convert it
REFUSED = ("the runtime refused the model", "pnnx could not convert")


def measure_or_skip(edgeperf: Any, model: str, **kwargs: Any) -> Any:
    """measure(); a runtime that refuses the model skips with its reason (the suite measures where it loads)."""
    try:
        return edgeperf.measure(model, **kwargs)
    except EdgeperfFailure as exc:
        if any(reason in str(exc) for reason in REFUSED):
            pytest.skip(str(exc))
        raise


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.edgeperf(min_time_s=3)
def test_pretrained(edgeperf, framework, key):
    result = measure_or_skip(edgeperf, f"pretrained:{key}", **MODELS[key])
    measured = {spec["name"]: spec["shape"] for spec in result.environment["inputs"]}
    shapes = MODELS[key].get("input_shapes")
    if shapes is not None:  # measured at the real shape, never a dynamic dimension silently set to 1
        wanted = shapes if isinstance(shapes, dict) else {next(iter(measured)): shapes}
        assert {name: measured[name] for name in wanted} == wanted
    assert result.load_time_s > 0


def test_custom_op_model_is_a_skip_with_the_runtimes_reason(edgeperf, framework):
    """MediaPipe's attention face mesh needs three custom ops that stock runtimes do not register."""
    measure_or_skip(edgeperf, "pretrained:face_landmark_attention")
    pytest.fail(f"{framework} loaded a model with custom ops: update the suite (it is no longer refused)")


@pytest.fixture(scope="session")
def digits_uint8(digits: Any, model_cache: Any) -> Path:
    """The trained digits CNN with a uint8 input: real = scale * (pixel - zero_point), its own normalisation."""
    pytest.importorskip("ai_edge_litert", reason="the uint8 model is built with the TFLite schema of ai-edge-litert")
    from pytest_edgeperf.models.uint8_input import write_uint8_input

    pre = digits.preprocess
    scale, zero_point = float(pre["scale"]), round(float(pre["mean"][0]))
    out = Path(f"{digits.stem}_uint8.tflite")
    if not out.exists():
        write_uint8_input(f"{digits.stem}.tflite", out, scale, zero_point)
    return out


@pytest.mark.edgeperf(min_top1_pct=95.0, frameworks=["litert"])
def test_uint8_tflite_digits(edgeperf, framework, digits, digits_uint8):
    result = edgeperf.measure(digits_uint8, inputs=digits.eval_inputs, preprocess=digits.preprocess,
                              accuracy=digits.accuracy)
    (image,) = result.environment["inputs"]
    assert image["dtype"] == "uint8" and image["zero_point"] == round(digits.preprocess["mean"][0])
    assert result.accuracy["n"] == 360
