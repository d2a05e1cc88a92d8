"""Accelerator paths: ONNX Runtime execution providers, LiteRT delegates, OpenCV DNN backends and targets.

A test asks for one with the marker's (or ``measure()``'s) ``providers=``, ``delegates=``, ``backend=``/``target=``;
this module checks those arguments without importing any runtime (the worker does that), makes them JSON-ready for
the worker request, and names the choice for the test id. Each argument belongs to one runtime: a marker that
measures several runtimes applies ``providers=`` to ONNX Runtime only. The adapter reads back the path that
actually ran (``FrameworkAdapter.provider``); a requested path the machine or build lacks is ``AcceleratorUnavailable``
(a skip with the reason, a failure under ``--edgeperf-strict``), never a silent fallback to the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_edgeperf.errors import EdgeperfError

#: every accelerator argument of the marker and of measure(), and the runtime it belongs to
ACCELERATOR_ARGUMENTS = {"providers": "onnxruntime", "delegates": "litert", "backend": "opencv", "target": "opencv"}

#: short provider names users type -> ONNX Runtime's own prefix ("cuda" -> "CUDAExecutionProvider")
_PROVIDER_PREFIX = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "Tensorrt", "trt": "Tensorrt", "openvino": "OpenVINO",
                    "coreml": "CoreML", "xnnpack": "Xnnpack", "qnn": "QNN", "acl": "ACL", "armnn": "ArmNN",
                    "dnnl": "Dnnl", "rocm": "ROCM", "migraphx": "MIGraphX", "nnapi": "Nnapi", "dml": "Dml",
                    "azure": "Azure", "vitisai": "VitisAI", "webgpu": "WebGpu", "cann": "CANN"}

#: OpenCV DNN backend and target names (``cv2.dnn.DNN_BACKEND_<NAME>`` / ``DNN_TARGET_<NAME>``), with aliases
OPENCV_BACKENDS = {"default": "DEFAULT", "opencv": "OPENCV", "cuda": "CUDA", "vulkan": "VKCOM", "vkcom": "VKCOM",
                   "openvino": "INFERENCE_ENGINE", "inference_engine": "INFERENCE_ENGINE", "timvx": "TIMVX",
                   "cann": "CANN", "webnn": "WEBNN"}
OPENCV_TARGETS = {"cpu": "CPU", "cpu_fp16": "CPU_FP16", "opencl": "OPENCL", "opencl_fp16": "OPENCL_FP16",
                  "cuda": "CUDA", "cuda_fp16": "CUDA_FP16", "vulkan": "VULKAN", "npu": "NPU", "fpga": "FPGA",
                  "myriad": "MYRIAD", "hddl": "HDDL"}

#: LiteRT's built-in delegate (applied by default to float and int8 models); any other entry is a library path
XNNPACK = "xnnpack"


class AcceleratorError(EdgeperfError, ValueError):
    """An accelerator argument that cannot be used as given (one line, naming what is wrong)."""


class AcceleratorUnavailable(EdgeperfError):
    """The requested provider, delegate or backend is not available here: the test skips with this reason."""


def _options(value: Any, what: str) -> dict[str, str | int | float | bool]:
    if not isinstance(value, Mapping):
        raise AcceleratorError(f"{what}: options must be a dict, got {type(value).__name__}")
    out: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int, float, bool)):
            raise AcceleratorError(f"{what}: options map names to str, int, float or bool, got {key!r}: {item!r}")
        out[key] = item
    return out


def _entries(value: Any, arg: str) -> list[tuple[str, dict[str, Any]]]:
    """A name, or a list of names and ``(name, {option: value})`` pairs."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], str) and isinstance(items[1], Mapping):
        items = [items]  # one (name, options) pair
    if not isinstance(items, (list, tuple)):
        raise AcceleratorError(f"expected a name or a list of names and (name, options) pairs, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append((item.strip(), {}))
        elif (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str) and item[0].strip()):
            out.append((item[0].strip(), _options(item[1], f"{arg} {item[0]!r}")))
        else:
            raise AcceleratorError(f"each entry is a name or a (name, options) pair, got {item!r}")
    return out


def normalize_providers(value: Any) -> list[list[Any]]:
    """``["cuda", ("TensorrtExecutionProvider", {"trt_fp16_enable": True})]`` -> ``[[full name, options], ...]``."""
    out: list[list[Any]] = []
    for name, options in _entries(value, "providers"):
        if not name.endswith("ExecutionProvider"):
            prefix = _PROVIDER_PREFIX.get(name.lower())
            if prefix is None:
                raise AcceleratorError(f"unknown provider {name!r}: give ONNX Runtime's name, e.g. "
                                       f"'CUDAExecutionProvider' (short names: {', '.join(sorted(_PROVIDER_PREFIX))})")
            name = prefix + "ExecutionProvider"
        if any(name == have for have, _ in out):
            raise AcceleratorError(f"provider {name!r} is given twice")
        out.append([name, options])
    if not out:
        raise AcceleratorError("expected at least one provider")
    return out


def normalize_delegates(value: Any) -> list[list[Any]]:
    """The delegates to apply, in order: ``"xnnpack"`` and external libraries (``("libedgetpu.so.1", {...})``).

    ``[]`` (or ``"none"``) runs LiteRT's built-in kernels without its default XNNPACK delegate; leaving the argument
    out keeps LiteRT's default (XNNPACK).
    """
    if isinstance(value, str) and value.strip().lower() == "none":
        return []
    if isinstance(value, (list, tuple)) and not value:
        return []
    out: list[list[Any]] = []
    for name, options in _entries(value, "delegates"):
        if name.lower() == XNNPACK:
            if options:
                raise AcceleratorError("'xnnpack' takes no options (LiteRT applies it with the thread count)")
            name = XNNPACK
        if any(name == have for have, _ in out):
            raise AcceleratorError(f"delegate {name!r} is given twice")
        out.append([name, options])
    return out


def normalize_backend(value: Any) -> str:
    return _opencv_name(value, OPENCV_BACKENDS, "backend")


def normalize_target(value: Any) -> str:
    return _opencv_name(value, OPENCV_TARGETS, "target")


def _opencv_name(value: Any, names: dict[str, str], what: str) -> str:
    key = value.strip().lower().removeprefix(f"dnn_{what}_") if isinstance(value, str) else None
    if key not in names:
        raise AcceleratorError(f"unknown OpenCV DNN {what} {value!r} (known: {', '.join(names)})")
    return key


def normalize(name: str, value: Any) -> Any:
    """One accelerator argument checked and made JSON-ready; AcceleratorError says what is wrong in one line."""
    return globals()[f"normalize_{name}"](value)


def options_for(framework: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The accelerator arguments (already normalised) that apply to ``framework``; the others are not its own."""
    return {arg: value for arg, value in given.items()
            if value is not None and ACCELERATOR_ARGUMENTS.get(arg) == framework}


def id_suffix(options: Mapping[str, Any]) -> str:
    """What the test id adds after the runtime: ``CUDAExecutionProvider``, ``no-xnnpack``, ``cuda-cuda_fp16``.

    Empty when no accelerator was asked for (the runtime's default path keeps the plain runtime id).
    """
    parts: list[str] = []
    if "providers" in options:
        parts.append("+".join(name for name, _ in options["providers"]))
    if "delegates" in options:
        parts.append("+".join(delegate_label(name) for name, _ in options["delegates"]) or "no-xnnpack")
    parts.extend(options[arg] for arg in ("backend", "target") if arg in options)
    return "-".join(parts)


def delegate_label(library: str) -> str:
    """``/usr/lib/libedgetpu.so.1`` -> ``edgetpu``: a short name for ids and the recorded provider."""
    base = library.rsplit("/", 1)[-1]
    base = base.removeprefix("lib")
    return base.split(".so", 1)[0].split(".dll", 1)[0].split(".dylib", 1)[0] or library
