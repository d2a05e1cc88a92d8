"""LiteRT (TFLite) adapter: ai-edge-litert, else tflite-runtime; the thread count is always passed (default is 1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .accelerators import XNNPACK, AcceleratorUnavailable, delegate_label
from .base import DeclaredSignatureAdapter, Feed, ModelLoadError, first_line
from .signature import TensorSpec

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


def _interpreter_module() -> tuple[ModuleType, str]:
    """The interpreter module (``Interpreter``, ``load_delegate``, ``OpResolverType``) and its distribution."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime import interpreter  # 32-bit Pi OS fallback; needs numpy<2

        return interpreter, "tflite-runtime"


class LiteRTAdapter(DeclaredSignatureAdapter):
    name = "litert"
    extensions = (".tflite",)
    modules = ("ai_edge_litert", "tflite_runtime")
    extra = "litert"

    def __init__(self) -> None:
        super().__init__()
        self._interpreter: Interpreter | None = None
        self._package = ""
        self._threads: int | None = None

    def load(self, path: Path, threads: int) -> None:
        """Load with the default resolver (XNNPACK applied by LiteRT), or exactly the delegates asked for.

        ``delegates`` without ``xnnpack`` selects ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (the built-in kernels only);
        an external delegate library is loaded with ``load_delegate(library, options)`` before the model.
        """
        module, self._package = _interpreter_module()
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": threads}
        delegates = self.accelerator.get("delegates")
        self._provider = XNNPACK
        if delegates is not None:
            names = [str(name) for name, _ in delegates]
            if XNNPACK not in names:
                resolver = getattr(module, "OpResolverType", None)
                if resolver is None or not hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
                    raise AcceleratorUnavailable(f"{self._package} cannot turn XNNPACK off "
                                                 f"(no OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)")
                kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            loaded = []
            for name, options in delegates:
                if name == XNNPACK:
                    continue
                try:
                    loaded.append(module.load_delegate(str(name), {k: str(v) for k, v in dict(options).items()}))
                except (OSError, ValueError, RuntimeError) as exc:
                    raise AcceleratorUnavailable(f"LiteRT delegate {name} could not be loaded: "
                                                 f"{first_line(exc)}") from exc
            if loaded:
                kwargs["experimental_delegates"] = loaded
            self._provider = "+".join(delegate_label(n) if n != XNNPACK else n for n in names) or "builtin"
        try:
            self._interpreter = module.Interpreter(**kwargs)
            self._interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError for a bad flatbuffer or op
            if kwargs.get("experimental_delegates") and "delegate" in str(exc).lower():
                raise AcceleratorUnavailable(f"LiteRT could not apply the delegate: {first_line(exc)}") from exc
            raise ModelLoadError(first_line(exc)) from exc
        self._inputs = [_spec(d) for d in self._interpreter.get_input_details()]
        self._outputs = [_spec(d) for d in self._interpreter.get_output_details()]
        self._threads = threads  # LiteRT has no getter: the count passed (never None: None runs on 1 thread)

    def provider(self) -> str:
        """``xnnpack`` (LiteRT's default), ``builtin`` (delegates=[]), or the delegates applied (``edgetpu``)."""
        return getattr(self, "_provider", XNNPACK)

    def threads_in_use(self) -> int | None:
        return self._threads

    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        for dist in (self._package or "ai-edge-litert", "ai-edge-litert", "tflite-runtime"):
            try:
                return f"{dist} {version(dist)}"
            except PackageNotFoundError:
                continue
        return "unknown"

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
        pairs = [(spec.index, x) for spec, x in self.feed_by_spec(feed)]
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
