"""ONNX Runtime adapter: explicit intra/inter-op threads and no spinning idle threads (they inflate CPU% and power)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .accelerators import AcceleratorUnavailable
from .base import DeclaredSignatureAdapter, Feed, ModelLoadError, first_line
from .signature import Dim, TensorSpec

if TYPE_CHECKING:
    import onnxruntime as ort

#: ONNX Runtime's type strings -> numpy dtype names (others, e.g. tensor(string), stay as ONNX Runtime says them)
_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
          "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(uint16)": "uint16", "tensor(int16)": "int16",
          "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(uint32)": "uint32", "tensor(uint64)": "uint64",
          "tensor(bool)": "bool"}


class OnnxRuntimeAdapter(DeclaredSignatureAdapter):
    name = "onnxruntime"
    extensions = (".onnx",)
    modules = ("onnxruntime",)
    extra = "onnx"

    def __init__(self) -> None:
        super().__init__()
        self._session: ort.InferenceSession | None = None

    def load(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        requested = [(str(name), dict(opts)) for name, opts in self.accelerator.get("providers", [])]
        available = ort.get_available_providers()
        for name, _ in requested:
            if name not in available:
                raise AcceleratorUnavailable(f"{name} is not available in this onnxruntime {ort.__version__} build "
                                             f"(available: {', '.join(available)})")
        providers: list[str | tuple[str, dict[str, Any]]] = [
            (name, opts) if opts else name for name, opts in requested] or ["CPUExecutionProvider"]
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad model
            message = first_line(exc)
            if requested and any(name in str(exc) for name, _ in requested):
                raise AcceleratorUnavailable(message) from exc  # a provider that could not start (no device)
            raise ModelLoadError(message) from exc
        used = self._session.get_providers()
        # a provider that fails to initialise falls back to the CPU without an error: that is not what was asked
        missing = [name for name, _ in requested if name not in used]
        if missing:
            raise AcceleratorUnavailable(f"{', '.join(missing)} could not be initialised by onnxruntime "
                                         f"(the session would run on {', '.join(used)})")
        self._inputs = [_spec(arg) for arg in self._session.get_inputs()]
        self._outputs = [_spec(arg) for arg in self._session.get_outputs()]

    def provider(self) -> str:
        """The providers the session actually uses, in priority order (``CPUExecutionProvider`` by default)."""
        return ", ".join(self._session.get_providers())

    def threads_in_use(self) -> int | None:
        value = self._session.get_session_options().intra_op_num_threads
        return int(value) if value else None

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        session_run = self._session.run
        by_name = self.as_feed(feed)

        def run_once() -> Any:
            return session_run(None, by_name)[0]

        return run_once


def _spec(arg: ort.NodeArg) -> TensorSpec:
    """A NodeArg: its shape holds ints, symbolic names (str) or None for an unnamed dynamic dimension."""
    shape: tuple[Dim, ...] = tuple(d if isinstance(d, (int, str)) else None for d in (arg.shape or []))
    return TensorSpec(name=arg.name, shape=shape, dtype=_TYPES.get(arg.type, arg.type))
