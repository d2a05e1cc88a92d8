"""ONNX Runtime adapter: explicit intra/inter-op threads and no spinning idle threads (they inflate CPU% and power)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .base import Feed, FrameworkAdapter, ModelLoadError
from .signature import Dim, TensorSpec

#: ONNX Runtime's type strings -> numpy dtype names (others, e.g. tensor(string), stay as ONNX Runtime says them)
_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
          "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(uint16)": "uint16", "tensor(int16)": "int16",
          "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(uint32)": "uint32", "tensor(uint64)": "uint64",
          "tensor(bool)": "bool"}


class OnnxRuntimeAdapter(FrameworkAdapter):
    name = "onnxruntime"
    extensions = (".onnx",)
    modules = ("onnxruntime",)
    extra = "onnx"

    def __init__(self) -> None:
        self._session: Any = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    def load(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
            raise ModelLoadError(_first_line(exc)) from exc
        self._inputs = [_spec(arg) for arg in self._session.get_inputs()]
        self._outputs = [_spec(arg) for arg in self._session.get_outputs()]

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        session_run = self._session.run
        by_name = self.as_feed(feed)

        def run_once() -> Any:
            return session_run(None, by_name)[0]

        return run_once


def _spec(arg: Any) -> TensorSpec:
    """A NodeArg: its shape holds ints, symbolic names (str) or None for an unnamed dynamic dimension."""
    shape: tuple[Dim, ...] = tuple(d if isinstance(d, (int, str)) else None for d in (arg.shape or []))
    return TensorSpec(name=arg.name, shape=shape, dtype=_TYPES.get(arg.type, arg.type))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
