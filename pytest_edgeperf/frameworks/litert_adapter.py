"""LiteRT (TFLite) adapter: ai-edge-litert, else tflite-runtime; the thread count is always passed (default is 1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .base import Feed, FrameworkAdapter, ModelLoadError
from .signature import TensorSpec


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
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    def load(self, path: Path, threads: int) -> None:
        interpreter_class, self._package = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a bad flatbuffer or op
            text = str(exc).strip().splitlines()
            raise ModelLoadError(text[0] if text else type(exc).__name__) from exc
        self._inputs = [_spec(d) for d in self._interpreter.get_input_details()]
        self._outputs = [_spec(d) for d in self._interpreter.get_output_details()]

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for dist in (self._package or "ai-edge-litert", "ai-edge-litert", "tflite-runtime"):
            try:
                return f"{dist} {version(dist)}"
            except PackageNotFoundError:
                continue
        return "unknown"

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    @property
    def input_layout(self) -> str:
        return "NHWC"

    def set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Resize the inputs whose declared shape differs (a dynamic dim), then allocate the tensors again."""
        super().set_input_shapes(shapes)
        current = {d["name"]: tuple(int(n) for n in d["shape"]) for d in self._interpreter.get_input_details()}
        changed = False
        for spec in self._inputs:
            shape = shapes.get(spec.name)
            if shape is not None and tuple(shape) != current.get(spec.name):
                self._interpreter.resize_tensor_input(spec.index, list(shape), strict=True)
                changed = True
        if changed:
            self._interpreter.allocate_tensors()

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        interpreter = self._interpreter
        set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
        index = {spec.name: spec.index for spec in self._inputs}
        pairs = [(index[name], x) for name, x in self.as_feed(feed).items()]
        out_index = self._outputs[0].index
        if len(pairs) == 1:
            (in_index, x), = pairs

            def run_once() -> Any:
                set_tensor(in_index, x)
                invoke()
                return get_tensor(out_index)

            return run_once

        def run_many() -> Any:
            for in_index, x in pairs:
                set_tensor(in_index, x)
            invoke()
            return get_tensor(out_index)

        return run_many


def _spec(detail: dict[str, Any]) -> TensorSpec:
    """One tensor detail: ``shape_signature`` marks dynamic dims with -1 (``shape`` shows them as 1)."""
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) == len(detail["shape"]) else detail["shape"]
    shape = tuple(int(d) if int(d) > 0 else None for d in dims)
    scale, zero_point = detail.get("quantization") or (0.0, 0)
    quantized = bool(scale)
    return TensorSpec(name=str(detail["name"]), shape=shape, dtype=np.dtype(detail["dtype"]).name,
                      scale=float(scale) if quantized else None, zero_point=int(zero_point) if quantized else None,
                      index=int(detail["index"]))
