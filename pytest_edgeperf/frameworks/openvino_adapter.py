"""OpenVINO adapter: reads .xml (IR), .onnx and .tflite directly and compiles for the CPU with an explicit thread count.

Dynamic dimensions show as ``?`` in the partial shapes; once the test resolved them (signature.py) the model is
reshaped to the concrete shapes and compiled again, so the measured network is static like in the other runtimes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import DeclaredSignatureAdapter, Feed, ModelLoadError
from .signature import Dim, TensorSpec

if TYPE_CHECKING:
    import openvino as ov

#: the OpenVINO device the model is compiled for (its CPU plugin; GPU/NPU are other accelerator paths)
DEVICE = "CPU"
#: OpenVINO's element type names -> the short names recorded in ``provider``
_PRECISIONS = {"<type: 'float32'>": "f32", "<type: 'float16'>": "f16", "<type: 'bfloat16'>": "bf16",
               "f32": "f32", "f16": "f16", "bf16": "bf16"}


class OpenVINOAdapter(DeclaredSignatureAdapter):
    name = "openvino"
    extensions = (".xml", ".onnx", ".tflite")
    modules = ("openvino",)
    extra = "openvino"

    def __init__(self) -> None:
        super().__init__()
        self._core: ov.Core | None = None
        self._model: ov.Model | None = None
        self._compiled: ov.CompiledModel | None = None
        self._request: ov.InferRequest | None = None
        self._threads = 1

    def load(self, path: Path, threads: int) -> None:
        import openvino as ov

        self._threads = threads
        try:
            self._core = ov.Core()
            self._model = self._core.read_model(str(path))
            self._compile()
        except Exception as exc:  # OpenVINO raises RuntimeError (or its own types) for an unsupported model
            raise ModelLoadError(openvino_message(exc)) from exc
        self._inputs = [_spec(port, i) for i, port in enumerate(self._model.inputs)]
        self._outputs = [_spec(port, i) for i, port in enumerate(self._model.outputs)]

    def _compile(self) -> None:
        # one stream and a latency hint: one request at a time, as the timing loop runs it, on the threads asked
        self._compiled = self._core.compile_model(self._model, DEVICE, {
            "INFERENCE_NUM_THREADS": self._threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
        self._request = self._compiled.create_infer_request()

    def version(self) -> str:
        import openvino as ov

        return ov.__version__.split("-", 1)[0]

    def provider(self) -> str:
        """The devices the compiled model runs on and its inference precision, as OpenVINO says (``CPU bf16``).

        OpenVINO's CPU plugin computes in bf16 where the CPU has it (x86 AVX512-BF16/AMX) and in f16 on Arm cores
        with fp16 arithmetic, by default: that is what a user of OpenVINO gets, and the record says so.
        """
        try:
            devices = ", ".join(str(d) for d in self._compiled.get_property("EXECUTION_DEVICES"))
        except Exception:  # an older OpenVINO without the property
            devices = DEVICE
        try:
            precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        except Exception:
            return devices
        return f"{devices} {_PRECISIONS.get(precision, precision)}"

    def threads_in_use(self) -> int | None:
        return int(self._compiled.get_property("INFERENCE_NUM_THREADS"))

    def set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Reshape a model with dynamic dims to the resolved shapes and compile it again (static is faster)."""
        super().set_input_shapes(shapes)
        if all(spec.is_static for spec in self._inputs):
            return
        by_port = {port: list(shapes[spec.name]) for port, spec in zip(self._model.inputs, self._inputs, strict=True)
                   if spec.name in shapes}
        self._model.reshape(by_port)
        self._compile()

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        import openvino as ov

        request = self._request
        keep = []
        for spec, x in self.feed_by_spec(feed):
            x = np.require(x, requirements="C")  # (ascontiguousarray would make a 0-d array 1-d)
            keep.append(x)  # the tensor shares the array's memory: keep it alive as long as the runner
            request.set_input_tensor(spec.index, ov.Tensor(x, shared_memory=True))
        infer, output = request.infer, request.get_output_tensor

        def run_once() -> Any:
            infer()
            return output(0).data

        run_once.keep = keep  # type: ignore[attr-defined]
        return run_once

    def run(self, feed: Feed) -> np.ndarray:
        return np.array(self.make_runner(feed)())  # a copy: the request's output buffer is reused


def _spec(port: ov.Output, i: int) -> TensorSpec:
    """A model port: ``?`` (dynamic) dims become None (OpenVINO keeps no symbolic names); the element type as numpy."""
    shape: tuple[Dim, ...] = tuple(int(d.get_length()) if d.is_static else None for d in port.get_partial_shape())
    try:
        dtype: str | None = np.dtype(port.get_element_type().to_dtype()).name
    except (TypeError, RuntimeError, AttributeError):
        dtype = None
    try:
        name = port.get_any_name()
    except RuntimeError:  # a port without a tensor name
        name = f"input{i}"
    return TensorSpec(name=name, shape=shape, dtype=dtype, index=i)


#: OpenVINO's lines that say where in its C++ sources a check failed, or only introduce the next line
_WHERE = re.compile(r"(\.(cpp|hpp|h):\d+:?|:)$|^(Check '|While validating|FrontEnd API failed)")


def openvino_message(exc: BaseException) -> str:
    """One line from an OpenVINO error: its reasons, without the source locations around them.

    OpenVINO's first line is "Exception from src/inference/src/cpp/core.cpp:84:", which alone says nothing; the
    reasons (an unsupported operator, a rank it needs static) and the summary of failed operations follow.
    """
    lines = [ln.strip().lstrip("-").strip() for ln in str(exc).splitlines()]
    reasons = [ln for ln in lines if ln and not _WHERE.search(ln)]
    message = "; ".join(dict.fromkeys(reasons)) or next((ln for ln in lines if ln), type(exc).__name__)
    return message if len(message) <= 400 else message[:397] + "..."
