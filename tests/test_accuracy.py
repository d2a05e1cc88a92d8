"""Accuracy: top-k and VOC mAP on hand-made cases with known answers, NMS, grid decoding, the evaluators,
and the shipped trained models re-scored from their evaluation sets in numpy and ONNX Runtime."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs OpenCV (pip install -e '.[dev]')")
pytest.importorskip("hypothesis", reason="property tests need hypothesis (pip install -e '.[dev]')")

import cv2
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgeperf.accuracy.datasets import Annotation, ClassificationDataset, DetectionDataset
from pytest_edgeperf.accuracy.metrics import (
    Detection,
    average_precision,
    decode_detections,
    evaluate_classifier,
    evaluate_detector,
    iou_matrix,
    mean_average_precision,
    nms,
    topk_accuracy,
)
from pytest_edgeperf.accuracy.preprocess import parse_preprocess

# --- top-k ------------------------------------------------------------------------------------------------


def test_topk_on_tiny_logits():
    logits = np.array([
        [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # label 1: top-1
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 4: rank 4 -> top-5 only
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # label 5: rank 5 -> neither
        [0.0, 0.0, 0.0, 0.7, 0.8, 0.0],  # label 3: rank 1 -> top-5 only
    ])
    acc = topk_accuracy(logits, [1, 4, 5, 3])
    assert acc == {"top1_pct": 25.0, "top5_pct": 75.0, "n": 4}
    assert topk_accuracy(logits, [1, 4, 5, 3], ks=(2,))["top2_pct"] == 50.0


def test_topk_with_fewer_classes_than_k_counts_everything_in_top5():
    acc = topk_accuracy(np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), [0, 2])
    assert acc["top1_pct"] == 50.0 and acc["top5_pct"] == 100.0


def test_topk_rejects_mismatched_or_out_of_range_labels():
    with pytest.raises(ValueError, match="2 logit rows but 1 labels"):
        topk_accuracy(np.zeros((2, 3)), [0])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        topk_accuracy(np.zeros((1, 3)), [3])


# --- boxes, NMS, AP ------------------------------------------------------------------------------------


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5]])
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 0.25])


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.5]])
    scores = np.array([0.6, 0.9, 0.5, 0.3])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2, 3]  # nothing overlaps that much
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_average_precision_all_point_interpolation():
    # P/R points (0.5, 1.0), (0.5, 0.5), (1.0, 0.667): the envelope is 1.0 up to R=0.5, then 2/3.
    ap = average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def _ann(*objs: tuple[float, float, float, float, int]) -> Annotation:
    return Annotation(np.array([o[:4] for o in objs], np.float32).reshape(-1, 4),
                      np.array([o[4] for o in objs], np.int64))


def _det(x1, y1, x2, y2, score, label=0) -> Detection:
    return Detection(x1, y1, x2, y2, score, label)


def test_map_perfect_detections_is_100():
    gt = [_ann((0, 0, 10, 10, 0), (20, 20, 30, 30, 1)), _ann((5, 5, 15, 15, 1))]
    dets = [[_det(0, 0, 10, 10, 0.9, 0), _det(20, 20, 30, 30, 0.8, 1)], [_det(5, 5, 15, 15, 0.7, 1)]]
    assert mean_average_precision(dets, gt) == pytest.approx(100.0)


def test_map_one_false_negative_halves_the_ap():
    gt = [_ann((0, 0, 10, 10, 0)), _ann((0, 0, 10, 10, 0))]
    dets = [[_det(0, 0, 10, 10, 0.9)], []]
    assert mean_average_precision(dets, gt) == pytest.approx(50.0)


def test_map_false_positive_ranked_first_costs_a_third():
    gt = [_ann((0, 0, 10, 10, 0)), _ann((0, 0, 10, 10, 0))]
    # FP (IoU 0 with anything) scores highest: P/R = (0,0), (1/2, 1/2), (2/3, 1) -> AP = .5*2/3 + .5*2/3
    dets = [[_det(40, 40, 50, 50, 0.95), _det(0, 0, 10, 10, 0.9)], [_det(1, 0, 11, 10, 0.8)]]
    assert mean_average_precision(dets, gt) == pytest.approx(100 * 2 / 3)
    # The same FP ranked last does not lower the all-point AP.
    dets_last = [[_det(40, 40, 50, 50, 0.1), _det(0, 0, 10, 10, 0.9)], [_det(1, 0, 11, 10, 0.8)]]
    assert mean_average_precision(dets_last, gt) == pytest.approx(100.0)


def test_map_duplicate_detection_is_a_false_positive():
    gt = [_ann((0, 0, 10, 10, 0)), _ann((0, 0, 10, 10, 0))]
    # image 0: TP 0.9 then a duplicate 0.8 (FP); image 1: TP 0.7 -> P/R (1, .5), (.5, .5), (2/3, 1)
    dets = [[_det(0, 0, 10, 10, 0.9), _det(0, 0, 10, 9, 0.8)], [_det(0, 0, 10, 10, 0.7)]]
    assert mean_average_precision(dets, gt) == pytest.approx(100 * (0.5 + 0.5 * 2 / 3))


def test_map_iou_threshold_and_wrong_class():
    gt = [_ann((0, 0, 10, 10, 0))]
    shifted = [[_det(5, 0, 15, 10, 0.9)]]  # IoU 1/3
    assert mean_average_precision(shifted, gt, iou=0.5) == 0.0
    assert mean_average_precision(shifted, gt, iou=0.3) == pytest.approx(100.0)
    assert mean_average_precision([[_det(0, 0, 10, 10, 0.9, label=1)]], gt) == 0.0


def test_map_averages_only_classes_with_ground_truth():
    gt = [_ann((0, 0, 10, 10, 0), (20, 20, 30, 30, 2))]
    # class 0 perfect (AP 1), class 2 missed (AP 0), class 1 has only a FP and no GT (ignored)
    dets = [[_det(0, 0, 10, 10, 0.9, 0), _det(50, 50, 60, 60, 0.9, 1)]]
    assert mean_average_precision(dets, gt, num_classes=3) == pytest.approx(50.0)


# --- grid decoding ------------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _grid_with_box(grid: np.ndarray, gy: int, gx: int, cx: float, cy: float, w: float, h: float, cls: int,
                   obj: float = 0.9, size: int = 64) -> None:
    stride = size / grid.shape[0]
    grid[gy, gx, 0] = _logit(obj)
    grid[gy, gx, 1:5] = [_logit(cx / stride - gx), _logit(cy / stride - gy), _logit(w / size), _logit(h / size)]
    grid[gy, gx, 5 + cls] = 20.0


def test_decode_recovers_the_encoded_box_and_class():
    grid = np.full((8, 8, 8), -20.0)
    _grid_with_box(grid, 2, 3, cx=28.0, cy=20.0, w=16.0, h=8.0, cls=2)
    dets = decode_detections(grid[None], conf_threshold=0.5, iou_threshold=0.45, num_classes=3)
    assert len(dets) == 1
    d = dets[0]
    assert d.label == 2 and d.score == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose([d.x1, d.y1, d.x2, d.y2], [20, 16, 36, 24], atol=1e-6)
    nchw = decode_detections(grid[None].transpose(0, 3, 1, 2), 0.5, 0.45, num_classes=3, layout="NCHW")
    assert nchw == dets


def test_decode_suppresses_duplicates_per_class_only():
    grid = np.full((8, 8, 8), -20.0)
    _grid_with_box(grid, 2, 3, cx=28.0, cy=20.0, w=16.0, h=16.0, cls=0, obj=0.9)
    _grid_with_box(grid, 2, 2, cx=23.9, cy=20.0, w=16.0, h=16.0, cls=0, obj=0.8)  # same object, weaker
    _grid_with_box(grid, 6, 6, cx=52.0, cy=52.0, w=10.0, h=10.0, cls=1, obj=0.7)
    dets = decode_detections(grid[None], 0.5, 0.45, num_classes=3)
    assert [(d.label, round(d.score, 3)) for d in dets] == [(0, 0.9), (1, 0.7)]
    grid[6, 6, 5:] = -20.0
    grid[6, 6, 5] = 20.0  # now class 0 too, but far away: both kept
    assert len(decode_detections(grid[None], 0.5, 0.45, num_classes=3)) == 2


def test_decode_rejects_a_wrong_depth():
    with pytest.raises(ValueError, match="5 \\+ 3"):
        decode_detections(np.zeros((1, 8, 8, 9)), num_classes=3)


# --- evaluators ---------------------------------------------------------------------------------------------


def test_evaluate_classifier_runs_every_image_through_preprocessing(tmp_path):
    for cls, value in (("dark", 30), ("mid", 128), ("light", 220)):
        for i in range(2):
            (tmp_path / cls).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), np.full((20, 30, 3), value + i, np.uint8))
    ds = ClassificationDataset.from_folder(tmp_path)  # classes: dark=0, light=1, mid=2
    spec = parse_preprocess({"size": 10, "crop": 8, "mean": 128, "scale": 1 / 128})
    seen: list[tuple[int, ...]] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        m = float(x.mean())  # dark ~ -0.77, mid ~ 0, light ~ +0.72
        return np.array([[-abs(m + 0.77), -abs(m - 0.72), -abs(m)]])

    acc = evaluate_classifier(predict, ds, spec)
    assert acc == {"top1_pct": 100.0, "top5_pct": 100.0, "n": 6}
    assert seen == [(1, 8, 8, 3)] * 6


def test_evaluate_detector_maps_boxes_back_through_resize(tmp_path):
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((128, 128, 3), np.uint8))
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text("a.png,20,40,60,80,0\nb.png,64,64,128,128,1\n")
    ds = DetectionDataset.from_csv(csv_path, num_classes=2)
    spec = parse_preprocess({"size": [64, 64]})
    truths = iter([(10, 20, 30, 40, 0), (32, 32, 64, 64, 1)])  # the GT boxes in 64x64 model pixels

    def decode(out: np.ndarray) -> list[Detection]:
        assert out.shape == (1, 64, 64, 3)
        x1, y1, x2, y2, lab = next(truths)
        return [Detection(x1, y1, x2, y2, 0.9, lab)]

    assert evaluate_detector(lambda x: x, ds, spec, decode) == {"map50_pct": pytest.approx(100.0), "n": 2}


# --- the shipped trained models -----------------------------------------------------------------------------

SUITES = Path(__file__).resolve().parents[1] / "suites"
DIGITS_TOP1_FLOOR_PCT = 90.0
SHAPES_MAP50_FLOOR_PCT = 50.0


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``suites/trained.py``, imported as the suites import it (their folder on ``sys.path``)."""
    monkeypatch.syspath_prepend(str(SUITES))
    return importlib.import_module("trained")


def _ort_predict(graph, tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    from pytest_edgeperf.models.onnx_export import to_onnx

    path = to_onnx(graph, tmp_path / f"{graph.name}.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]


@pytest.mark.skipif(not (SUITES / "models" / "digits_cnn.npz").exists(), reason="digits model not trained")
def test_shipped_digits_model_top1_is_recomputed_equal_in_numpy_and_onnxruntime(tmp_path, trained):
    model = trained.load_trained("digits_cnn")
    graph = trained.digits_graph()
    ds = trained.digits_eval_set()
    assert len(ds) == model.meta["eval_n"] and ds.num_classes == 10
    ref = evaluate_classifier(lambda x: graph.forward_numpy(x)[0], ds, model.preprocess)
    assert ref["top1_pct"] >= DIGITS_TOP1_FLOOR_PCT
    assert ref["top5_pct"] >= ref["top1_pct"]
    assert ref["top1_pct"] == pytest.approx(model.meta["eval_top1_pct"], abs=0.5)  # what training reported
    onnx_acc = evaluate_classifier(_ort_predict(graph, tmp_path), ds, model.preprocess)
    assert onnx_acc["top1_pct"] == pytest.approx(ref["top1_pct"], abs=0.5)
    assert onnx_acc["top5_pct"] == pytest.approx(ref["top5_pct"], abs=0.5)


@pytest.mark.skipif(not (SUITES / "models" / "digits_cnn.npz").exists(), reason="digits model not trained")
def test_shipped_digits_model_top1_is_the_same_in_litert(tmp_path, trained):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    from pytest_edgeperf.models.tflite_export import to_tflite

    model = trained.load_trained("digits_cnn")
    interp = litert.Interpreter(model_path=str(to_tflite(trained.digits_graph(), tmp_path / "d.tflite")),
                                num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def predict(x: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)

    acc = evaluate_classifier(predict, trained.digits_eval_set(), model.preprocess)
    assert acc["top1_pct"] == pytest.approx(model.meta["eval_top1_pct"], abs=0.5)


@pytest.mark.skipif(not (SUITES / "models" / "shapes_det.npz").exists(), reason="shapes model not trained")
def test_shipped_shapes_detector_map_is_recomputed_equal_in_numpy_and_onnxruntime(tmp_path, trained):
    shapes_decode = trained.shapes_decode
    model = trained.load_trained("shapes_det")
    graph = trained.shapes_graph()
    ds = trained.shapes_eval_set()
    assert ds.classes == model.meta["labels"]
    ref = evaluate_detector(lambda x: graph.forward_numpy(x)[0], ds, model.preprocess, shapes_decode)
    assert ref["map50_pct"] >= SHAPES_MAP50_FLOOR_PCT
    assert ref["map50_pct"] == pytest.approx(model.meta["eval_map50_pct"], abs=0.5)
    onnx_acc = evaluate_detector(_ort_predict(graph, tmp_path), ds, model.preprocess,
                                 lambda out: shapes_decode(out, layout="NCHW"))
    assert onnx_acc["map50_pct"] == pytest.approx(ref["map50_pct"], abs=0.5)


# --- properties ---------------------------------------------------------------------------------------------

_box = st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(2, 30), st.integers(2, 30), st.integers(0, 2))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(_box, min_size=0, max_size=4), min_size=1, max_size=5), st.randoms())
def test_ground_truth_as_detections_scores_100_whatever_the_scores(images, rnd):
    gt = [_ann(*[(x, y, x + w, y + h, c) for x, y, w, h, c in objs]) for objs in images]
    dets = [[_det(x, y, x + w, y + h, rnd.random() + 0.01, c) for x, y, w, h, c in objs] for objs in images]
    expected = 100.0 if any(objs for objs in images) else 0.0
    assert mean_average_precision(dets, gt) == pytest.approx(expected)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 20), st.integers(1, 20),
                          st.floats(0.01, 1.0)), min_size=1, max_size=12),
       st.floats(0.1, 0.9))
def test_nms_survivors_overlap_at_most_the_threshold(rows, thr):
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in rows], float)
    scores = np.array([s for *_, s in rows])
    keep = nms(boxes, scores, thr)
    assert scores.max() == scores[keep[0]]  # the best box always survives
    ious = iou_matrix(boxes[keep], boxes[keep])
    np.fill_diagonal(ious, 0.0)
    assert np.all(ious <= thr)
    dropped = np.setdiff1d(np.arange(len(rows)), keep)
    for j in dropped:  # each dropped box is covered by a kept one at least as good
        cover = iou_matrix(boxes[j:j + 1], boxes[keep])[0] > thr
        assert np.any(cover & (scores[keep] >= scores[j]))
