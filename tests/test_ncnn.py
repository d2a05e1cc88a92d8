"""ncnn on models with dynamic inputs: pnnx converts at one static shape, so the plugin converts at the shape
``input_shapes`` resolves, caches one conversion per shape, and reports the source model's input names.

Before: every dynamic-input ONNX model failed on ncnn with "pnnx converts static shapes only", whatever
``input_shapes`` said (the shapes never reached pnnx's ``inputshape=``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_edgeperf.frameworks import FRAMEWORKS

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.1",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0", "--edgeperf-processes=1", "--edgeperf-no-reference"]


def ncnn_or_skip() -> None:
    """ncnn and pnnx's converter binary (never ``import pnnx``: its package imports torch, which is not needed)."""
    from pytest_edgeperf.frameworks.base import ConverterMissing
    from pytest_edgeperf.frameworks.ncnn_adapter import pnnx_binary

    ok, why = FRAMEWORKS["ncnn"].is_installed()
    if not ok:
        pytest.skip(why)
    try:
        pnnx_binary()
    except ConverterMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """dynamic.onnx ``images [N, 3, height, width]`` and three.onnx (three inputs, one int64), built by onnx.helper."""
    ncnn_or_skip()
    from sigmodels import SIG_BUILDER

    pytester.makepyfile(sigbuilder=SIG_BUILDER)
    pytester.makeconftest("""
        import sigbuilder
        sigbuilder.build_dynamic("dynamic.onnx")
        sigbuilder.build_three("three.onnx")
    """)
    return pytester


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["test_id"].split("::", 1)[1]: r for r in json.loads(path.read_text())["results"]}


def test_dynamic_input_model_is_converted_at_input_shapes_one_conversion_per_shape(project: pytest.Pytester) -> None:
    project.makepyfile(test_dyn="""
        import pytest

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks=["ncnn"], input_shapes={"images": [1, 3, 48, 40]})
        def test_marker_shape(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks=["ncnn"])
        def test_measure_shape(edgeperf):
            edgeperf.measure(input_shapes=[1, 3, 24, 32])

        @pytest.mark.edgeperf(model="dynamic.onnx", frameworks=["ncnn"])
        def test_no_shape(edgeperf):
            edgeperf.measure()
    """)
    out, cache = project.path / "r.json", project.path / "cache"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", f"--edgeperf-cache-dir={cache}")
    result.assert_outcomes(passed=2, failed=1)
    # nothing resolves height and width: one line naming the input and the dimension, never a conversion at 1x1
    assert ("[edgeperf] ncnn on dynamic.onnx: input 'images' dimension 2 ('height') is dynamic; give "
            "input_shapes={'images': [1, 3, height, width]}") in result.stdout.lines
    assert "Traceback" not in result.stdout.str()
    by_test = results(out)
    for test, shape in (("test_marker_shape[ncnn]", [1, 3, 48, 40]), ("test_measure_shape[ncnn]", [1, 3, 24, 32])):
        env = by_test[test]["environment"]
        assert by_test[test]["status"] == "ok"
        assert env["inputs"] == [{"name": "images", "shape": shape, "dtype": "float32"}]
        assert env["declared_inputs"] == [{"name": "images", "shape": ["N", 3, "height", "width"],
                                           "dtype": "float32"}]
        assert env["input_shape"] == shape
    # the shape is part of the converted model's key: each shape has its own conversion
    converted = sorted(json.loads(p.read_text())["inputs"][0]["converted_shape"]
                       for p in (cache / "converted" / "ncnn").glob("dynamic-*/dynamic.ncnn.json"))
    assert converted == [[1, 3, 24, 32], [1, 3, 48, 40]]


def test_ncnn_output_matches_onnxruntime_at_the_converted_shape(tmp_path: Path) -> None:
    """The converted model computes the source model's output at that shape (not just a model that runs)."""
    ncnn_or_skip()
    ok, why = FRAMEWORKS["onnxruntime"].is_installed()
    if not ok:
        pytest.skip(why)
    import numpy as np
    from sigmodels import SIG_BUILDER

    from pytest_edgeperf.frameworks import get_adapter
    from pytest_edgeperf.frameworks.ncnn_adapter import NcnnAdapter

    namespace: dict[str, Any] = {}
    exec(SIG_BUILDER, namespace)
    source = tmp_path / "dynamic.onnx"
    namespace["build_dynamic"](str(source))
    x = np.random.default_rng(1).standard_normal((1, 3, 20, 28)).astype(np.float32)
    param = NcnnAdapter.convert(source, tmp_path / "cache", {"images": [1, 3, 20, 28]})
    assert param is not None
    ncnn = get_adapter("ncnn")
    ncnn.load(param, 1)
    assert [s.name for s in ncnn.inputs] == ["images"]
    ncnn.set_input_shapes({"images": (1, 3, 20, 28)})
    ort = get_adapter("onnxruntime")
    ort.load(source, 1)
    np.testing.assert_allclose(ncnn.run({"images": x}), ort.run({"images": x}), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"converted at \[1, 3, 20, 28\], not \[1, 3, 16, 16\]"):
        ncnn.set_input_shapes({"images": (1, 3, 16, 16)})


def test_a_model_pnnx_cannot_convert_is_one_line_with_the_reason(project: pytest.Pytester) -> None:
    """three.onnx has an int64 scalar input (``sr``): no ncnn blob has rank 0, so it is refused before pnnx runs."""
    project.makepyfile(test_three="""
        import pytest

        @pytest.mark.edgeperf(model="three.onnx", frameworks=["ncnn"], input_values={"sr": 16000})
        def test_three(edgeperf):
            edgeperf.measure()
    """)
    result = project.runpytest(*FAST, f"--edgeperf-cache-dir={project.path / 'cache'}")
    result.assert_outcomes(failed=1)
    assert ("[edgeperf] ncnn on three.onnx: pnnx could not convert three.onnx to ncnn: input 'sr' is a scalar "
            "(ncnn blobs have at least one axis)") in result.stdout.lines
    assert "Traceback" not in result.stdout.str()
