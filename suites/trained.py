"""The project's trained models (digits classifier, shapes detector) as IR graphs, with their eval sets.

Why a module: the weights are trained by ``scripts/train_digits.py`` / ``scripts/train_shapes.py`` and
shipped small in ``suites/models`` (npz of named arrays + a JSON with preprocessing and labels); the
evaluation sets in ``suites/data``. Here they become ``Graph`` objects the exporters turn into ONNX and
TFLite, so every runtime is scored on exactly the weights the training script reported on.

Why in ``suites/`` and not in the package: the weights and images are the suites' test data (3 MB), not the
plugin's; an installed wheel has no ``suites/``. The suites import this as ``trained`` (their folder is on
``sys.path``; the worker gets it too, so the detection decode is ``trained:shapes_decode``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgeperf.accuracy.datasets import ClassificationDataset, DetectionDataset
from pytest_edgeperf.accuracy.metrics import Detection, decode_detections
from pytest_edgeperf.accuracy.preprocess import PreprocessSpec, parse_preprocess
from pytest_edgeperf.models.graph import Graph, GraphBuilder

SUITES_DIR = Path(__file__).resolve().parent


class TrainedModelError(ValueError):
    """A shipped weight/metadata file is missing or does not fit the network (one line naming the file)."""


@dataclass
class TrainedModel:
    """Weights + metadata of one shipped model, read from ``<root>/models/<stem>.npz`` and ``.json``."""

    stem: str
    weights: dict[str, np.ndarray]
    meta: dict[str, Any]
    root: Path

    @property
    def preprocess(self) -> PreprocessSpec:
        return parse_preprocess(self.meta["preprocess"])

    @property
    def eval_path(self) -> Path:
        return self.root / self.meta["eval_set"]

    def w(self, key: str) -> np.ndarray:
        try:
            return self.weights[key]
        except KeyError:
            npz = self.root / "models" / f"{self.stem}.npz"
            raise TrainedModelError(f"{npz}: no array {key!r}") from None


def load_trained(stem: str, root: Path | None = None) -> TrainedModel:
    """Read a shipped model's npz + JSON (``root`` defaults to this ``suites/`` folder)."""
    root = Path(root) if root is not None else SUITES_DIR
    npz, meta_path = root / "models" / f"{stem}.npz", root / "models" / f"{stem}.json"
    try:
        with np.load(npz, allow_pickle=False) as data:
            weights = {k: np.asarray(data[k], dtype=np.float32) for k in data.files}
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainedModelError(f"{exc.filename}: trained model file not found "
                                f"(run scripts/train_{stem.split('_')[0]}.py)") from None
    except (OSError, ValueError) as exc:
        raise TrainedModelError(f"{npz}: cannot read trained model ({exc})") from None
    return TrainedModel(stem, weights, meta, root)


def digits_graph(root: Path | None = None) -> Graph:
    """The digits CNN (32x32x3 -> 10 softmax probabilities) with its trained weights."""
    m = load_trained("digits_cnn", root)
    b = GraphBuilder("digits_cnn", tuple(m.meta["input_shape"]))
    x = b.input_name
    i = 1
    while f"conv{i}.w" in m.weights:
        x = b.conv(x, m.w(f"conv{i}.w").shape[-1], 3, padding="same", act="relu", name=f"conv{i}",
                   w=m.w(f"conv{i}.w"), b=m.w(f"conv{i}.b"))
        x = b.maxpool(x, 2, name=f"pool{i}")
        i += 1
    x = b.op("flatten", x, name="flatten")
    x = b.dense(x, m.w("fc.w").shape[1], name="fc", w=m.w("fc.w"), b=m.w("fc.b"))
    x = b.op("softmax", x, name="probs")
    return b.build(x, meta=_graph_meta(m))


def shapes_graph(root: Path | None = None) -> Graph:
    """The shapes grid detector (64x64x3 -> 8x8x(5+C) raw head; decode with ``shapes_decode``)."""
    m = load_trained("shapes_det", root)
    b = GraphBuilder("shapes_det", tuple(m.meta["input_shape"]))
    x = b.input_name
    pools = int(m.meta.get("pools", 3))
    i = 1
    while f"conv{i}.w" in m.weights:
        x = b.conv(x, m.w(f"conv{i}.w").shape[-1], m.w(f"conv{i}.w").shape[0], padding="same", act="relu",
                   name=f"conv{i}", w=m.w(f"conv{i}.w"), b=m.w(f"conv{i}.b"))
        if i <= pools:
            x = b.maxpool(x, 2, name=f"pool{i}")
        i += 1
    x = b.conv(x, m.w("head.w").shape[-1], 1, padding="same", name="grid", w=m.w("head.w"), b=m.w("head.b"))
    return b.build(x, meta=_graph_meta(m))


def shapes_decode(output: np.ndarray, conf_threshold: float | None = None,
                  iou_threshold: float | None = None, layout: str = "NHWC",
                  root: Path | None = None) -> list[Detection]:
    """``decode_detections`` with the shipped detector's class count, input size and default thresholds."""
    meta = _read_meta("shapes_det", str(root) if root is not None else None)
    return decode_detections(output,
                             meta["conf_threshold"] if conf_threshold is None else conf_threshold,
                             meta["iou_threshold"] if iou_threshold is None else iou_threshold,
                             num_classes=len(meta["labels"]), input_hw=tuple(meta["input_shape"][:2]),
                             layout=layout)


def digits_eval_set(root: Path | None = None) -> ClassificationDataset:
    return ClassificationDataset.from_folder(load_trained("digits_cnn", root).eval_path)


def shapes_eval_set(root: Path | None = None) -> DetectionDataset:
    m = load_trained("shapes_det", root)
    return DetectionDataset.from_csv(m.eval_path, classes=list(m.meta["labels"]))


@functools.lru_cache(maxsize=8)
def _read_meta(stem: str, root: str | None) -> dict[str, Any]:
    """The JSON alone, cached: ``shapes_decode`` runs once per image in the accuracy pass."""
    path = (Path(root) if root is not None else SUITES_DIR) / "models" / f"{stem}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainedModelError(f"{path}: trained model file not found") from None
    except (OSError, ValueError) as exc:
        raise TrainedModelError(f"{path}: cannot read trained model metadata ({exc})") from None


def _graph_meta(m: TrainedModel) -> dict[str, Any]:
    keep = ("task", "labels", "preprocess", "eval_set", "trained_by", "seed")
    meta = {k: m.meta[k] for k in keep if k in m.meta}
    meta.update({k: v for k, v in m.meta.items() if k.startswith("eval_")})
    return meta
