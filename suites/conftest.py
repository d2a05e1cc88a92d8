"""Shared fixtures of the suites: the project's own models, built on first use into the edgeperf cache.

Architectures (of the five source papers) come from the zoo with synthetic, seeded weights: honest for throughput
and memory,
meaningless for accuracy, so no accuracy is asserted for them. Accuracy comes from the two models the project
trains itself (``scripts/train_digits.py``, ``scripts/train_shapes.py``), shipped as small weight files in
``suites/models`` with their evaluation sets in ``suites/data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SUITES = Path(__file__).resolve().parent
#: the plugin's fixtures: a test that asks for one cannot run when the plugin is disabled
PLUGIN_FIXTURES = frozenset({"edgeperf", "framework", "model_cache", "pi_device", "thermal_guard", "power_meter"})


def _plugin_active(config: pytest.Config) -> bool:
    manager = config.pluginmanager
    return manager.has_plugin("edgeperf") or manager.has_plugin("pytest_edgeperf.plugin")


def pytest_configure(config: pytest.Config) -> None:
    """Under ``-p no:edgeperf`` register the marker ourselves, so --strict-markers still collects the suites."""
    if not _plugin_active(config):
        config.addinivalue_line("markers", "edgeperf: measured by pytest-edgeperf (disabled: -p no:edgeperf)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-p no:edgeperf`` the measured tests skip with the reason instead of erroring on missing fixtures."""
    if _plugin_active(config):
        return
    skip = pytest.mark.skip(reason="pytest-edgeperf is disabled (-p no:edgeperf)")
    for item in items:
        if item.get_closest_marker("edgeperf") or PLUGIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@dataclass(frozen=True)
class TrainedSet:
    """A trained model's files and how to score it."""

    stem: Path  # model stem: <stem>.onnx and <stem>.tflite
    accuracy: dict[str, Any]  # the marker/measure accuracy spec
    preprocess: dict[str, Any]
    eval_inputs: str  # dataset the timed run prepares its inputs from (throughput includes preprocessing)


def _calibration(dataset: Any, spec: Any, count: int = 64) -> list[np.ndarray]:
    from pytest_edgeperf.accuracy.datasets import load_image
    from pytest_edgeperf.accuracy.preprocess import preprocess_image

    items = list(dataset)[:count]
    return [preprocess_image(load_image(path), spec) for path, *_ in items]


@pytest.fixture(scope="session")
def suites_dir() -> Path:
    """Where the shipped trained weights (models/) and evaluation sets (data/) live."""
    return SUITES


#: the evaluation sets are images: reading and resizing them needs OpenCV (an [onnx]- or [litert]-only install
#: skips the accuracy suites with this reason; the timing suites still run)
NEEDS_OPENCV = "the suites' evaluation images need OpenCV: pip install 'pytest-edgeperf[opencv]'"


@pytest.fixture(scope="session")
def digits(model_cache: Any) -> TrainedSet:
    """The digits CNN trained by scripts/train_digits.py (classification: top-1 / top-5)."""
    pytest.importorskip("cv2", reason=NEEDS_OPENCV)
    from trained import digits_graph, load_trained

    trained = load_trained("digits_cnn", SUITES)
    stem = model_cache.build(digits_graph(SUITES), "digits_cnn")
    eval_dir = str(trained.eval_path)
    pre = dict(trained.meta["preprocess"])
    return TrainedSet(stem, {"task": "classification", "dataset": eval_dir, "preprocess": pre}, pre, eval_dir)


@pytest.fixture(scope="session")
def shapes(model_cache: Any) -> TrainedSet:
    """The shapes grid detector trained by scripts/train_shapes.py (detection: mAP at IoU 0.5)."""
    pytest.importorskip("cv2", reason=NEEDS_OPENCV)
    from trained import load_trained, shapes_graph

    trained = load_trained("shapes_det", SUITES)
    stem = model_cache.build(shapes_graph(SUITES), "shapes_det")
    pre = dict(trained.meta["preprocess"])
    spec = {"task": "detection", "dataset": str(trained.eval_path), "preprocess": pre,
            "decode": "trained:shapes_decode"}
    return TrainedSet(stem, spec, pre, "random")


@pytest.fixture(scope="session")
def digits_int8(digits: TrainedSet, model_cache: Any) -> Path:
    """Post-training int8 (ONNX Runtime's static quantizer, QDQ, per-channel), calibrated on the eval images."""
    pytest.importorskip("onnxruntime", reason="int8 quantisation uses onnxruntime.quantization")
    from pytest_edgeperf.accuracy.datasets import ClassificationDataset
    from pytest_edgeperf.accuracy.preprocess import parse_preprocess

    dataset = ClassificationDataset.from_folder(digits.eval_inputs)
    return model_cache.int8(digits.stem, _calibration(dataset, parse_preprocess(digits.preprocess)))
