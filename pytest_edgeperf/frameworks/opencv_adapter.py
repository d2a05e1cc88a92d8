"""OpenCV DNN adapter: readNet with an explicit cv2.setNumThreads; the input shape comes from the ONNX graph."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .base import FrameworkAdapter, ModelLoadError


class OpenCVAdapter(FrameworkAdapter):
    name = "opencv"
    extensions = (".onnx", ".tflite")
    modules = ("cv2",)
    extra = "opencv"
    process_wide_threads = True

    def __init__(self) -> None:
        self._net: Any = None
        self._shape: tuple[int, ...] = ()
        self._path = Path()

    def load(self, path: Path, threads: int) -> None:
        import cv2

        cv2.setNumThreads(threads)
        self._path = path
        try:
            if path.suffix == ".tflite":
                # The default engine was seen to segfault on hand-built TFLite files; the classic one loads them.
                self._net = cv2.dnn.readNet(str(path), engine=cv2.dnn.ENGINE_CLASSIC)
            else:
                self._net = cv2.dnn.readNet(str(path))
        except cv2.error as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            raise ModelLoadError(lines[-1].strip() if lines else "OpenCV could not read the model") from exc
        if self._net is None or self._net.empty():
            raise ModelLoadError("OpenCV returned an empty network")
        self._shape = _input_shape(path)

    def version(self) -> str:
        import cv2

        return cv2.__version__

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def input_layout(self) -> str:
        return "NCHW"  # OpenCV DNN takes NCHW blobs for TFLite models too (and returns NCHW maps)

    def make_runner(self, x: np.ndarray) -> Callable[[], Any]:
        net = self._net
        set_input, forward = net.setInput, net.forward

        def run_once() -> Any:
            set_input(x)
            return forward()

        return run_once


def _input_shape(path: Path) -> tuple[int, ...]:
    """Read the input shape from the model builder's sidecar, else from the ONNX graph (outside any timing)."""
    sidecar = path.with_suffix(".json")
    if sidecar.exists():
        try:
            meta = json.loads(sidecar.read_text())
            h, w, c = meta["input_shape_hwc"]
            return (1, c, h, w)
        except (ValueError, KeyError, TypeError):
            pass
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        return tuple(d.dim_value if d.dim_value > 0 else 1 for d in dims)
    from .litert_adapter import LiteRTAdapter

    probe = LiteRTAdapter()
    probe.load(path, 1)
    n, h, w, c = probe.input_shape
    return (n, c, h, w)
