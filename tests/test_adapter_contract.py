"""The contract every runtime adapter keeps, run over every registered runtime (a runtime not installed skips).

Outputs equal ONNX Runtime's on the zoo models within a tolerance, the runtime reports the thread count it was
given, and a measurement through the plugin reports load time, first inference, peak memory and the provider.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_edgeperf.frameworks import FRAMEWORKS, get_adapter
from pytest_edgeperf.frameworks.base import FrameworkAdapter
from pytest_edgeperf.frameworks.signature import resolve_inputs
from pytest_edgeperf.models.build import ModelFiles, ensure_zoo_model

pytest_plugins = ["pytester"]

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.1",
        "--edgeperf-max-time=5", "--edgeperf-idle-time=0", "--edgeperf-processes=1", "--edgeperf-no-reference"]
#: zoo models (name, build arguments) every runtime must compute like ONNX Runtime
MODELS = [("tiny_cnn", {}), ("squeezenet1_1", {"input_size": 64})]
#: OpenVINO computes in bf16 (x86) or f16 (Arm) by default; the others in fp32
TOLERANCE = {"openvino": 5e-2}


def runtime_or_skip(name: str) -> None:
    installed, why = FRAMEWORKS[name].is_installed()
    if not installed:
        pytest.skip(why)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelFiles]:
    root = tmp_path_factory.mktemp("zoo")
    return {name: ensure_zoo_model(name, root, **kwargs) for name, kwargs in MODELS}


def load(name: str, stem: Path, cache: Path, threads: int = 2):
    cls = FRAMEWORKS[name]
    model_file = cls.model_file(stem) or cls.convert(stem, cache)
    if model_file is None:
        pytest.skip(f"{name} loads none of the zoo's formats")
    adapter = get_adapter(name)
    adapter.load(model_file, threads)
    plan = resolve_inputs(adapter.inputs, stem.name)
    adapter.set_input_shapes({spec.name: spec.concrete_shape() for spec in plan.specs})
    return adapter


def to_model_layout(adapter: FrameworkAdapter, x_nhwc: np.ndarray) -> np.ndarray:
    """An NHWC batch in the adapter's input layout (the zoo's ONNX models are NCHW)."""
    if adapter.input_layout == "NCHW" and x_nhwc.ndim == 4:
        return np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
    return x_nhwc


@pytest.mark.usefixtures("quiet_device")
@pytest.mark.parametrize("model", [m for m, _ in MODELS])
@pytest.mark.parametrize("runtime", sorted(FRAMEWORKS))
def test_outputs_equal_the_reference(runtime: str, model: str, zoo: dict[str, ModelFiles], tmp_path: Path) -> None:
    runtime_or_skip(runtime)
    runtime_or_skip("onnxruntime")
    files = zoo[model]
    x_nchw = np.random.default_rng(1).standard_normal(files.read_meta()["onnx_input_shape"]).astype(np.float32)
    reference = get_adapter("onnxruntime")
    reference.load(files.onnx, 1)
    expected = reference.run(x_nchw)
    adapter = load(runtime, files.stem, tmp_path)
    got = adapter.run(to_model_layout(adapter, np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))))
    assert got.size == expected.size
    assert got.shape == expected.shape, "the batch axis is part of every runtime's output"
    np.testing.assert_allclose(got, expected, atol=TOLERANCE.get(runtime, 1e-4), rtol=TOLERANCE.get(runtime, 1e-3))


@pytest.mark.usefixtures("quiet_device")
@pytest.mark.parametrize("runtime", sorted(FRAMEWORKS))
def test_the_runtime_runs_on_the_threads_given(runtime: str, zoo: dict[str, ModelFiles], tmp_path: Path) -> None:
    runtime_or_skip(runtime)
    for threads in (1, 2):
        adapter = load(runtime, zoo["tiny_cnn"].stem, tmp_path, threads)
        assert adapter.threads_in_use() == threads
        assert adapter.provider()  # the accelerator path is always said, default or not


@pytest.mark.parametrize("runtime", sorted(FRAMEWORKS))
def test_a_measurement_reports_load_first_inference_memory_and_provider(runtime: str,
                                                                         pytester: pytest.Pytester) -> None:
    runtime_or_skip(runtime)
    pytester.makepyfile(test_m=f"""
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=[{runtime!r}])
        def test_tiny(edgeperf):
            r = edgeperf.measure()
            assert r.load_time_s > 0 and r.first_inference_s > 0 and r.peak_rss_mb > 0
            assert r.valid_count >= 10
    """)
    out = pytester.path / "r.json"
    result = pytester.runpytest(*FAST, f"--edgeperf-json={out}", f"--edgeperf-cache-dir={pytester.path / 'cache'}")
    result.assert_outcomes(passed=1)
    record, = json.loads(out.read_text())["results"]
    assert record["test_id"].endswith(f"test_tiny[{runtime}]")
    env = record["environment"]
    assert env["runtime"] == runtime and env["provider"] and env["runtime_version"]


def test_openvino_measures_a_three_input_model_with_an_int64_input(pytester: pytest.Pytester) -> None:
    runtime_or_skip("openvino")
    from sigmodels import SIG_BUILDER

    pytester.makepyfile(sigbuilder=SIG_BUILDER)
    pytester.makeconftest("""
        import sigbuilder
        sigbuilder.build_three("three.onnx")
    """)
    pytester.makepyfile(test_three="""
        import pytest

        @pytest.mark.edgeperf(model="three.onnx", frameworks=["openvino"])
        def test_three(edgeperf):
            r = edgeperf.measure()
            assert [i["dtype"] for i in r.environment["inputs"]] == ["float32", "float32", "int64"]
    """)
    result = pytester.runpytest(*FAST)
    result.assert_outcomes(passed=1)


def test_ncnn_without_pnnx_skips_saying_how_to_install_it(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runtime_or_skip("ncnn")
    monkeypatch.setitem(sys.modules, "pnnx", None)  # the converter is not installed (conversion runs in pytest)
    monkeypatch.setenv("PATH", str(pytester.path / "bin"))
    pytester.makepyfile(test_m="""
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["ncnn"])
        def test_tiny(edgeperf):
            edgeperf.measure()
    """)
    result = pytester.runpytest(*FAST, "-rs", f"--edgeperf-cache-dir={pytester.path / 'cache'}")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*ncnn: converting ONNX to ncnn needs pnnx (pip install --no-deps pnnx*"])
