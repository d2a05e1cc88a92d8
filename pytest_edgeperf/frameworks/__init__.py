"""The registry of runtime adapters: name -> adapter class, and which model file each one would load."""

from __future__ import annotations

from pathlib import Path

from .base import FrameworkAdapter, ModelLoadError
from .litert_adapter import LiteRTAdapter
from .ncnn_adapter import NcnnAdapter
from .onnxruntime_adapter import OnnxRuntimeAdapter
from .opencv_adapter import OpenCVAdapter
from .openvino_adapter import OpenVINOAdapter

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


class UnknownFrameworkError(ValueError):
    """A framework name that no adapter answers to."""


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FRAMEWORKS:
        raise UnknownFrameworkError(
            f"unknown framework {name!r} (known: {', '.join(FRAMEWORKS)}; aliases: {', '.join(sorted(ALIASES))})"
        )
    return key


def get_adapter(name: str) -> FrameworkAdapter:
    return FRAMEWORKS[canonical_name(name)]()


def model_file_for(name: str, model: Path) -> Path | None:
    return FRAMEWORKS[canonical_name(name)].model_file(model)


__all__ = ["FRAMEWORKS", "FrameworkAdapter", "ModelLoadError", "UnknownFrameworkError", "canonical_name",
           "get_adapter", "model_file_for"]
