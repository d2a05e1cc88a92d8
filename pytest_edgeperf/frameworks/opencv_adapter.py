"""OpenCV DNN adapter: readNet with an explicit cv2.setNumThreads; the signature comes from the model file itself.

OpenCV has no API for a network's input signature, so it is read from the ONNX graph (or, for ``.tflite``, from
LiteRT when installed), outside the timed load; every input is then set by name (``setInput(blob, name)``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .accelerators import OPENCV_BACKENDS, OPENCV_TARGETS, AcceleratorUnavailable
from .base import Feed, FrameworkAdapter, ModelLoadError
from .signature import Dim, TensorSpec

if TYPE_CHECKING:
    import cv2
    from onnx import ValueInfoProto


class OpenCVAdapter(FrameworkAdapter):
    name = "opencv"
    extensions = (".onnx", ".tflite")
    modules = ("cv2",)
    extra = "opencv"
    process_wide_threads = True

    def __init__(self) -> None:
        self._net: cv2.dnn.Net | None = None
        self._path = Path()
        self._signature: tuple[list[TensorSpec], list[TensorSpec]] | None = None

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
            raise ModelLoadError(opencv_message(str(exc))) from exc
        if self._net is None or self._net.empty():
            raise ModelLoadError("OpenCV returned an empty network")
        self._set_backend(cv2)

    def _set_backend(self, cv2: ModuleType) -> None:
        """Apply ``backend=``/``target=``; OpenCV would fall back to its CPU path with a warning, so a pair this
        build does not list in ``getAvailableTargets`` is AcceleratorUnavailable instead."""
        if "backend" not in self.accelerator and "target" not in self.accelerator:
            return  # OpenCV's own choice; setting it would also warn under the new graph engine
        backend = self.accelerator.get("backend", "default")
        target = self.accelerator.get("target")
        backend_id = getattr(cv2.dnn, "DNN_BACKEND_" + OPENCV_BACKENDS[backend], None)
        targets = list(cv2.dnn.getAvailableTargets(backend_id)) if backend_id is not None else []
        names = {getattr(cv2.dnn, "DNN_TARGET_" + const, None): name for name, const in OPENCV_TARGETS.items()}
        if target is None:
            if not targets:
                raise AcceleratorUnavailable(f"OpenCV DNN backend {backend!r} is not available in this OpenCV "
                                             f"{cv2.__version__} build")
            target = "cpu" if cv2.dnn.DNN_TARGET_CPU in targets else names.get(targets[0], "cpu")
        target_id = getattr(cv2.dnn, "DNN_TARGET_" + OPENCV_TARGETS[target], None)
        if target_id is None or target_id not in targets:
            have = ", ".join(names.get(t, str(t)) for t in targets) or "none"
            raise AcceleratorUnavailable(f"OpenCV DNN target {target!r} is not available with backend {backend!r} "
                                         f"in this OpenCV {cv2.__version__} build (available targets: {have})")
        self._net.setPreferableBackend(backend_id)
        self._net.setPreferableTarget(target_id)
        self._provider = f"{backend}/{target}"

    def provider(self) -> str:
        """``backend/target`` as applied (``default/cpu`` unless asked otherwise)."""
        return getattr(self, "_provider", "default/cpu")

    def threads_in_use(self) -> int | None:
        import cv2

        return int(cv2.getNumThreads())

    def version(self) -> str:
        import cv2

        return cv2.__version__

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._read_signature()[0]

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._read_signature()[1]

    @property
    def input_layout(self) -> str:
        return "NCHW"  # OpenCV DNN takes NCHW blobs for TFLite models too (and returns NCHW maps)

    def _read_signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """Read once, on first use (after ``load`` was timed: importing onnx is not the runtime's load time)."""
        if self._signature is None:
            self._signature = _signature(self._path)
        return self._signature

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        net = self._net
        set_input, forward = net.setInput, net.forward
        pairs = list(self.as_feed(feed).items())
        if len(pairs) == 1:
            (name, x), = pairs

            def run_once() -> Any:
                set_input(x, name)
                return forward()

            return run_once

        def run_many() -> Any:
            for name, x in pairs:
                set_input(x, name)
            return forward()

        return run_many


def opencv_message(text: str) -> str:
    """One line from a cv2.error: the error line's reason plus the detail lines OpenCV prefixes with '>'.

    OpenCV's messages end with a bare '>' line, so its last line alone says nothing.
    """
    lines = [ln.strip().lstrip(">").strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    head = ""
    details: list[str] = []
    for line in lines:
        if " error: " in line and not head:
            head = line.split(" error: ", 1)[1].strip()
        elif head:
            details.append(line)
    parts = [p for p in (head, *details) if p] or lines
    message = "; ".join(parts) if parts else "OpenCV could not read the model"
    return message if len(message) <= 400 else message[:397] + "..."


def _signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    if path.suffix == ".onnx":
        return _onnx_signature(path)
    from .litert_adapter import LiteRTAdapter  # a .tflite file: its own runtime reads the signature

    if not LiteRTAdapter.is_installed()[0]:
        return _sidecar_signature(path)
    probe = LiteRTAdapter()
    probe.load(path, 1)

    def nchw(spec: TensorSpec) -> TensorSpec:
        if len(spec.shape) != 4:
            return TensorSpec(spec.name, spec.shape, spec.dtype, spec.scale, spec.zero_point)
        n, h, w, c = spec.shape
        return TensorSpec(spec.name, (n, c, h, w), spec.dtype, spec.scale, spec.zero_point)

    return [nchw(s) for s in probe.inputs], [nchw(s) for s in probe.outputs]


def _sidecar_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model builder's sidecar (zoo models) when nothing can read a .tflite signature: the input by its shape
    only (the empty name is OpenCV's "first input")."""
    import json

    try:
        h, w, c = json.loads(path.with_suffix(".json").read_text())["input_shape_hwc"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelLoadError(f"{path.name}: cannot read its input signature without LiteRT "
                             f"(pip install 'pytest-edgeperf[litert]')") from None
    return [TensorSpec("", (1, int(c), int(h), int(w)), "float32")], []


def _onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph inputs that are not initializers (old exporters list the weights as inputs too), and the outputs."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    weights = {init.name for init in graph.initializer}

    def spec(value: ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dims: tuple[Dim, ...] = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
            for d in tensor.shape.dim)
        try:
            dtype: str | None = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, TypeError, ValueError):
            dtype = None
        return TensorSpec(value.name, dims, dtype)

    return ([spec(v) for v in graph.input if v.name not in weights], [spec(v) for v in graph.output])
