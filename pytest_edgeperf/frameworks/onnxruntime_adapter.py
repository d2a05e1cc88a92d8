"""ONNX Runtime adapter: explicit intra/inter-op threads and no spinning idle threads (they inflate CPU% and power)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .base import FrameworkAdapter, ModelLoadError


class OnnxRuntimeAdapter(FrameworkAdapter):
    name = "onnxruntime"
    extensions = (".onnx",)
    modules = ("onnxruntime",)
    extra = "onnx"

    def __init__(self) -> None:
        self._session: Any = None

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
        self._input = self._session.get_inputs()[0]

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) and d > 0 else 1 for d in self._input.shape)

    @property
    def input_dtype(self) -> np.dtype:
        mapping = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
                   "tensor(float16)": np.float16}
        return np.dtype(mapping.get(self._input.type, np.float32))

    def make_runner(self, x: np.ndarray) -> Callable[[], Any]:
        session_run = self._session.run
        feed = {self._input.name: x}

        def run_once() -> Any:
            return session_run(None, feed)[0]

        return run_once


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
