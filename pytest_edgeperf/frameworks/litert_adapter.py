"""LiteRT (TFLite) adapter: ai-edge-litert, else tflite-runtime; the thread count is always passed (default is 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .base import FrameworkAdapter, ModelLoadError


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # 32-bit Pi OS fallback; needs numpy<2

        return Interpreter, "tflite-runtime"


class LiteRTAdapter(FrameworkAdapter):
    name = "litert"
    extensions = (".tflite",)
    modules = ("ai_edge_litert", "tflite_runtime")
    extra = "litert"

    def __init__(self) -> None:
        self._interpreter: Any = None
        self._package = ""

    def load(self, path: Path, threads: int) -> None:
        interpreter_class, self._package = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a bad flatbuffer or op
            text = str(exc).strip().splitlines()
            raise ModelLoadError(text[0] if text else type(exc).__name__) from exc
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for dist in (self._package or "ai-edge-litert", "ai-edge-litert", "tflite-runtime"):
            try:
                return f"{dist} {version(dist)}"
            except PackageNotFoundError:
                continue
        return "unknown"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"])

    @property
    def input_layout(self) -> str:
        return "NHWC"

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def make_runner(self, x: np.ndarray) -> Callable[[], Any]:
        interpreter = self._interpreter
        set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
        in_index, out_index = self._input["index"], self._output["index"]

        def run_once() -> Any:
            set_tensor(in_index, x)
            invoke()
            return get_tensor(out_index)

        return run_once
