"""Accuracy metrics and the accuracy pass: top-k, VOC mAP@0.5, grid-detector decoding with NMS, evaluators.

Accuracy is computed in its own pass over the whole evaluation set (as MLPerf does), never from the timed
run: ``evaluate_classifier`` / ``evaluate_detector`` take the runtime's ``predict`` (one preprocessed batch-1
input -> raw output) so the same code scores numpy, ONNX Runtime, LiteRT and OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pytest_edgeperf.accuracy.datasets import Annotation, ClassificationDataset, DetectionDataset, load_image
from pytest_edgeperf.accuracy.preprocess import PreprocessSpec, geometry, preprocess_image


@dataclass(frozen=True)
class Detection:
    """One predicted box in pixels (x2/y2 exclusive edges), with its confidence and class index."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: int

    @property
    def box(self) -> np.ndarray:
        return np.array([self.x1, self.y1, self.x2, self.y2], dtype=np.float64)


# --- classification ---------------------------------------------------------------------------------------
def topk_accuracy(logits: np.ndarray, labels: Sequence[int] | np.ndarray,
                  ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """``{"top1_pct": .., "top5_pct": .., "n": N}`` for logits (N, C) and integer labels (N,).

    A label is within the top k when fewer than k classes score strictly higher (ties favour the label,
    which only matters for degenerate constant outputs). k larger than C counts every sample as correct.
    """
    scores = np.asarray(logits, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[np.newaxis]
    scores = scores.reshape(scores.shape[0], -1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if scores.shape[0] != y.shape[0]:
        raise ValueError(f"topk_accuracy: {scores.shape[0]} logit rows but {y.shape[0]} labels")
    n = int(y.shape[0])
    out: dict[str, float] = {}
    if n == 0:
        for k in ks:
            out[f"top{k}_pct"] = 0.0
        out["n"] = 0
        return out
    if np.any((y < 0) | (y >= scores.shape[1])):
        raise ValueError(f"topk_accuracy: labels must be in 0..{scores.shape[1] - 1}")
    label_scores = scores[np.arange(n), y]
    rank = (scores > label_scores[:, np.newaxis]).sum(axis=1)
    for k in ks:
        out[f"top{k}_pct"] = float(100.0 * np.mean(rank < k))
    out["n"] = n
    return out


def evaluate_classifier(predict: Callable[[np.ndarray], np.ndarray], dataset: ClassificationDataset,
                        spec: PreprocessSpec, ks: Iterable[int] = (1, 5)) -> dict[str, float]:
    """Top-k over every image of ``dataset``: load -> ``preprocess_image`` -> ``predict`` -> compare."""
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for path, label in dataset:
        out = np.asarray(predict(preprocess_image(load_image(path), spec)))
        rows.append(out.reshape(-1).astype(np.float64))
        labels.append(label)
    widths = {r.size for r in rows}
    if len(widths) != 1:
        raise ValueError(f"evaluate_classifier: the model returned outputs of sizes {sorted(widths)}")
    return topk_accuracy(np.stack(rows), labels, ks)


# --- detection ----------------------------------------------------------------------------------------------
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4), x1 y1 x2 y2 with exclusive edges (area = w * h)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (class-agnostic: call per class)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = iou_matrix(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def decode_detections(output: np.ndarray, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                      num_classes: int | None = None, input_hw: tuple[int, int] = (64, 64),
                      layout: str = "NHWC") -> list[Detection]:
    """Boxes from a YOLO-like grid head, in model-input pixels, after per-class NMS.

    ``output`` is (1, S, S, 5 + C) for ``layout="NHWC"`` or (1, 5 + C, S, S) for ``"NCHW"`` (what the ONNX
    export returns; not guessed from the shape, which is ambiguous when S == 5 + C) with, per cell:
    objectness logit, tx, ty (cell-relative centre via sigmoid), tw, th (box size as a fraction of the input
    via sigmoid), then C class logits. Confidence = sigmoid(objectness) x softmax class prob.
    """
    out = np.asarray(output, dtype=np.float64)
    if out.ndim == 3:
        out = out[np.newaxis]
    if out.ndim != 4 or out.shape[0] != 1:
        raise ValueError(f"decode_detections: expected a (1, S, S, 5+C) grid, got shape {output.shape}")
    if layout == "NCHW":
        out = out.transpose(0, 2, 3, 1)
    elif layout != "NHWC":
        raise ValueError(f"decode_detections: layout must be 'NHWC' or 'NCHW', got {layout!r}")
    if num_classes is not None and out.shape[-1] != 5 + num_classes:
        raise ValueError(f"decode_detections: expected 5 + {num_classes} values a cell, got {out.shape[-1]}")
    grid = out[0]
    gh, gw, depth = grid.shape
    if depth < 6:
        raise ValueError(f"decode_detections: last axis {depth} < 6 (objectness, 4 box values, classes)")
    in_h, in_w = input_hw
    obj = _sigmoid(grid[..., 0])
    logits = grid[..., 5:]
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    label = probs.argmax(axis=-1)
    conf = obj * probs.max(axis=-1)
    ys, xs = np.nonzero(conf >= conf_threshold)
    if ys.size == 0:
        return []
    cell = grid[ys, xs]
    cx = (xs + _sigmoid(cell[:, 1])) * (in_w / gw)
    cy = (ys + _sigmoid(cell[:, 2])) * (in_h / gh)
    bw = _sigmoid(cell[:, 3]) * in_w
    bh = _sigmoid(cell[:, 4]) * in_h
    boxes = np.stack([np.clip(cx - bw / 2, 0, in_w), np.clip(cy - bh / 2, 0, in_h),
                      np.clip(cx + bw / 2, 0, in_w), np.clip(cy + bh / 2, 0, in_h)], axis=1)
    scores = conf[ys, xs]
    labels = label[ys, xs]
    dets: list[Detection] = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        for k in nms(boxes[idx], scores[idx], iou_threshold):
            j = idx[k]
            dets.append(Detection(*(float(v) for v in boxes[j]), score=float(scores[j]), label=int(c)))
    dets.sort(key=lambda d: -d.score)
    return dets


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ all-point interpolated AP: area under the monotone (max-to-the-right) precision envelope."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def mean_average_precision(detections: Sequence[Sequence[Detection]], ground_truth: Sequence[Annotation],
                           iou: float = 0.5, num_classes: int | None = None) -> float:
    """VOC-style mAP in percent: AP per class (all-point), averaged over classes with ground truth.

    ``detections[i]`` and ``ground_truth[i]`` belong to image i. Detections of a class are matched in
    descending score order to the unmatched ground-truth box of that class with the highest IoU >= ``iou``;
    a second detection of an already matched object (a duplicate) is a false positive.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"mean_average_precision: {len(detections)} detection lists "
                         f"but {len(ground_truth)} annotations")
    gt_labels = [np.asarray(g.labels, dtype=np.int64) for g in ground_truth]
    present = sorted({int(v) for lab in gt_labels for v in lab})
    if num_classes is not None:
        present = [c for c in present if c < num_classes]
    if not present:
        return 0.0
    aps = []
    for c in present:
        gt_boxes = [np.asarray(g.boxes, dtype=np.float64)[lab == c] for g, lab in zip(ground_truth, gt_labels,
                                                                                       strict=True)]
        n_gt = sum(len(b) for b in gt_boxes)
        cand = [(d.score, i, d.box) for i, dets in enumerate(detections) for d in dets if d.label == c]
        cand.sort(key=lambda t: -t[0])
        matched = [np.zeros(len(b), dtype=bool) for b in gt_boxes]
        tp = np.zeros(len(cand))
        for j, (_, i, box) in enumerate(cand):
            if len(gt_boxes[i]) == 0:
                continue
            ious = iou_matrix(box[None], gt_boxes[i])[0]
            ious[matched[i]] = -1.0  # an object is found once; later hits on it are duplicates
            best = int(np.argmax(ious))
            if ious[best] >= iou:
                tp[j] = 1.0
                matched[i][best] = True
        ctp = np.cumsum(tp)
        cfp = np.cumsum(1.0 - tp)
        recall = ctp / n_gt
        precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        aps.append(average_precision(recall, precision) if cand else 0.0)
    return float(100.0 * np.mean(aps))


def evaluate_detector(predict: Callable[[np.ndarray], np.ndarray], dataset: DetectionDataset,
                      spec: PreprocessSpec,
                      decode: Callable[[np.ndarray], list[Detection]]) -> dict[str, float]:
    """mAP@0.5 over every image: preprocess -> ``predict`` -> ``decode`` (model-input pixels) -> back to the
    image's own coordinates (undoing resize and crop) -> ``mean_average_precision``."""
    all_dets: list[list[Detection]] = []
    truths: list[Annotation] = []
    for i in range(len(dataset)):
        img, ann = dataset.load(i)
        sy, sx, oy, ox = geometry(img.shape[:2], spec)
        dets = decode(np.asarray(predict(preprocess_image(img, spec))))
        mapped = [Detection((d.x1 + ox) / sx, (d.y1 + oy) / sy, (d.x2 + ox) / sx, (d.y2 + oy) / sy,
                            d.score, d.label) for d in dets]
        all_dets.append(mapped)
        truths.append(ann)
    return {"map50_pct": mean_average_precision(all_dets, truths, 0.5, dataset.num_classes or None),
            "n": len(dataset)}
