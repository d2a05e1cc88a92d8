"""The registry of runtime adapters: name -> adapter class (built in, or added through a hook), which model file
each one would load, and the import path the worker process uses to build one.

Adapters added through ``pytest_edgeperf_add_runtimes`` (``hookspec.py``) are asked for whenever a runtime is
looked up, through the hook the plugin binds here for the length of a pytest session (``bind_hook``): a
``conftest.py`` loaded during collection adds its runtime too. Without a bound hook (the worker process, the
``edgeperf`` command) only the built-in adapters exist.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import EdgeperfError
from .base import FrameworkAdapter, ModelLoadError
from .litert_adapter import LiteRTAdapter
from .ncnn_adapter import NcnnAdapter
from .onnxruntime_adapter import OnnxRuntimeAdapter
from .opencv_adapter import OpenCVAdapter
from .openvino_adapter import OpenVINOAdapter

#: the built-in adapters (``adapters()`` adds those of the hook)
FRAMEWORKS: dict[str, type[FrameworkAdapter]] = {
    OnnxRuntimeAdapter.name: OnnxRuntimeAdapter,
    LiteRTAdapter.name: LiteRTAdapter,
    OpenCVAdapter.name: OpenCVAdapter,
    OpenVINOAdapter.name: OpenVINOAdapter,
    NcnnAdapter.name: NcnnAdapter,
}

#: other spellings users type for the same runtime
ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "tflite": "litert", "tflite-runtime": "litert",
           "ai-edge-litert": "litert", "cv2": "opencv", "opencv-dnn": "opencv",
           "ov": "openvino"}

HOOK = "pytest_edgeperf_add_runtimes"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")

#: the hook's callers, innermost pytest session last (pytester runs a session inside a session)
_hooks: list[Callable[[], Iterable[Iterable[type[FrameworkAdapter]] | None]]] = []


class UnknownFrameworkError(EdgeperfError, ValueError):
    """A framework name that no adapter answers to."""


class InvalidAdapterError(EdgeperfError, ValueError):
    """What the hook returned is not a usable adapter class; the message names the hook and the class."""


def bind_hook(call: Callable[[], Iterable[Iterable[type[FrameworkAdapter]] | None]]) -> None:
    """Ask ``call`` (the plugin manager's hook caller) for added adapters until ``unbind_hook``."""
    _hooks.append(call)


def unbind_hook(call: Callable[[], Iterable[Iterable[type[FrameworkAdapter]] | None]]) -> None:
    if call in _hooks:
        _hooks.remove(call)


def adapters() -> dict[str, type[FrameworkAdapter]]:
    """Every runtime by name: the built-in ones first, then the hook's in the order its implementations answer."""
    out = dict(FRAMEWORKS)
    if not _hooks:
        return out
    for answer in _hooks[-1]():
        if answer is None:
            continue
        if isinstance(answer, type) or not isinstance(answer, Iterable):
            raise InvalidAdapterError(f"{HOOK} must return a list of adapter classes, not {answer!r}")
        for cls in answer:
            name = _checked_name(cls)
            if name in FRAMEWORKS or name in ALIASES:
                raise InvalidAdapterError(f"{HOOK}: {_qualified(cls)} is called {name!r}, a built-in runtime's name")
            if name in out and out[name] is not cls:
                raise InvalidAdapterError(
                    f"{HOOK}: two adapters are called {name!r}: {_qualified(out[name])} and {_qualified(cls)}")
            out[name] = cls
    return out


def _checked_name(cls: object) -> str:
    if not (isinstance(cls, type) and issubclass(cls, FrameworkAdapter)):
        raise InvalidAdapterError(f"{HOOK}: {cls!r} is not a subclass of pytest_edgeperf.frameworks.FrameworkAdapter")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise InvalidAdapterError(f"{HOOK}: {_qualified(cls)} does not implement {missing}")
    if not isinstance(cls.name, str) or not _NAME.match(cls.name):
        raise InvalidAdapterError(f"{HOOK}: {_qualified(cls)}.name {cls.name!r} is not a lowercase runtime name "
                                  "(letters, digits, '_', '.', '+', '-')")
    if cls.__qualname__ != cls.__name__:
        raise InvalidAdapterError(f"{HOOK}: {_qualified(cls)} is not defined at the top level of its module, so the "
                                  "worker process cannot import it")
    return cls.name


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    known = adapters()
    if key not in known:
        raise UnknownFrameworkError(
            f"unknown framework {name!r} (known: {', '.join(known)}; aliases: {', '.join(sorted(ALIASES))})"
        )
    return key


def adapter_class(name: str) -> type[FrameworkAdapter]:
    key = canonical_name(name)
    return adapters()[key]


def get_adapter(name: str) -> FrameworkAdapter:
    return adapter_class(name)()


def model_file_for(name: str, model: Path) -> Path | None:
    return adapter_class(name).model_file(model)


def adapter_ref(name: str) -> str:
    """How the worker process imports this runtime's adapter: ``module:QualName``, or ``/path/file.py:QualName``.

    A class from an installed package (or a module on ``sys.path``) is imported by its module's name; one from a
    ``conftest.py`` (or a module pytest imported by path, which no name finds again) by its file's path, which
    the worker loads the way the plugin loads a user's ``module:function`` references.
    """
    cls = adapter_class(name)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    by_name = cls.__module__ != "__main__" and cls.__module__.rpartition(".")[2] != "conftest"
    if by_name:
        try:
            spec = importlib.util.find_spec(cls.__module__)
        except (ImportError, ValueError):
            spec = None
        by_name = spec is not None and (file is None or spec.origin is None
                                        or Path(spec.origin).resolve() == Path(file).resolve())
    if not by_name and file:
        return f"{Path(file).resolve()}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


__all__ = ["FRAMEWORKS", "FrameworkAdapter", "InvalidAdapterError", "ModelLoadError", "UnknownFrameworkError",
           "adapter_class", "adapter_ref", "adapters", "bind_hook", "canonical_name", "get_adapter",
           "model_file_for", "unbind_hook"]
