"""Generate the shapes-with-boxes detection set and train the shipped tiny grid detector in numpy.

Why: issue 5 wants a detector whose mAP@0.5 is real and re-computable offline (the ChangSafe pruning study gated
YOLOv4-tiny on
VOC mAP). Images are 64x64 BGR: a blotchy colour background with pixel noise and 1-3 non-overlapping filled
squares, circles or triangles (side 12-28 px, random colour with contrast). Training images are drawn fresh
from the seeded generator every step; the evaluation set is a separate seed, written as PNGs with
``annotations.csv`` (``image,x1,y1,x2,y2,label``, pixels, x2/y2 exclusive, label = class name) and
``labels.txt`` (class names in index order).

Detector (YOLO-like, one box per cell): conv3x3(16) pool, conv3x3(32) pool, conv3x3(48) pool, conv3x3(64),
conv3x3(64), conv1x1(5 + 3) -> an 8x8 grid (stride 8). Per cell: objectness logit; tx, ty (centre within
the cell, sigmoid); tw, th (size / 64, sigmoid); 3 class logits. Loss: objectness BCE (negatives weighted
0.5), box MSE on the sigmoids (x5), class cross-entropy at the cell holding an object's centre. Adam, seed 0.

Writes (atomically): ``suites/models/shapes_det.npz``, ``suites/models/shapes_det.json``,
``suites/data/shapes/eval/{images/*.png, annotations.csv, labels.txt}``.

Usage: ``python scripts/train_shapes.py [--steps 1500] [--eval-images 150] [--out-root suites]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from numpy_nn import (  # the sibling module (scripts/ is on sys.path when run as a script)
    Adam,
    conv_backward,
    conv_forward,
    he_init,
    maxpool_backward,
    maxpool_forward,
    relu_forward,
    sigmoid,
    softmax,
)

from pytest_edgeperf.accuracy.preprocess import PreprocessSpec, preprocess_image

SEED = 0
EVAL_SEED = 12345
SIZE = 64
GRID = 8
STRIDE = SIZE // GRID
CLASSES = ["square", "circle", "triangle"]
CHANNELS = (16, 32, 48, 64, 64)
POOLS = 3
CONF_THRESHOLD = 0.05  # low, as for any mAP evaluation (the precision/recall curve needs the tail)
IOU_THRESHOLD = 0.45
MEAN_PX, SCALE = 127.5, 1.0 / 64.0


def _background(rng: np.random.Generator) -> np.ndarray:
    blotch = rng.uniform(30, 225, (4, 4, 3)).astype(np.float32)
    bg = cv2.resize(blotch, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    return bg + rng.normal(0, 5, bg.shape).astype(np.float32)


def make_image(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """One BGR uint8 image and its objects as (x1, y1, x2, y2, class) with exclusive x2/y2."""
    img = _background(rng)
    objects: list[tuple[int, int, int, int, int]] = []
    cells: set[tuple[int, int]] = set()
    want = int(rng.integers(1, 4))
    for _ in range(60):
        if len(objects) == want:
            break
        s = int(rng.integers(12, 29))
        x, y = int(rng.integers(0, SIZE - s + 1)), int(rng.integers(0, SIZE - s + 1))
        box = (x, y, x + s, y + s)
        cell = (int((y + s / 2) // STRIDE), int((x + s / 2) // STRIDE))
        if cell in cells or any(not (box[2] <= o[0] or o[2] <= box[0] or box[3] <= o[1] or o[3] <= box[1])
                                for o in objects):
            continue
        bg_mean = img[y:y + s, x:x + s].reshape(-1, 3).mean(axis=0)
        colour = rng.uniform(0, 255, 3)
        for _ in range(20):
            if np.abs(colour - bg_mean).mean() >= 70:
                break
            colour = rng.uniform(0, 255, 3)
        cls = int(rng.integers(0, len(CLASSES)))
        col = tuple(float(c) for c in colour)
        if cls == 0:
            cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), col, thickness=-1)
        elif cls == 1:
            r = s // 2
            cv2.circle(img, (x + r, y + r), r, col, thickness=-1, lineType=cv2.LINE_AA)
            box = (x, y, x + 2 * r + 1, y + 2 * r + 1)
        else:
            pts = np.array([[x, y + s - 1], [x + s - 1, y + s - 1], [x + (s - 1) // 2, y]], np.int32)
            cv2.fillPoly(img, [pts], col, lineType=cv2.LINE_AA)
        box = (box[0], box[1], min(box[2], SIZE), min(box[3], SIZE))
        objects.append((*box, cls))
        cells.add(cell)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def targets(objs_batch: list[list[tuple[int, int, int, int, int]]]) -> tuple[np.ndarray, ...]:
    n = len(objs_batch)
    obj = np.zeros((n, GRID, GRID), np.float32)
    box = np.zeros((n, GRID, GRID, 4), np.float32)
    cls = np.zeros((n, GRID, GRID), np.int64)
    for b, objs in enumerate(objs_batch):
        for x1, y1, x2, y2, c in objs:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            gx, gy = min(int(cx // STRIDE), GRID - 1), min(int(cy // STRIDE), GRID - 1)
            obj[b, gy, gx] = 1.0
            box[b, gy, gx] = (cx / STRIDE - gx, cy / STRIDE - gy, (x2 - x1) / SIZE, (y2 - y1) / SIZE)
            cls[b, gy, gx] = c
    return obj, box, cls


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    p: dict[str, np.ndarray] = {}
    cin = 3
    for i, cout in enumerate(CHANNELS, start=1):
        p[f"conv{i}.w"] = he_init(rng, (3, 3, cin, cout), 9 * cin)
        p[f"conv{i}.b"] = np.zeros(cout, np.float32)
        cin = cout
    p["head.w"] = (he_init(rng, (1, 1, cin, 5 + len(CLASSES)), cin) * 0.1).astype(np.float32)
    p["head.b"] = np.zeros(5 + len(CLASSES), np.float32)
    p["head.b"][0] = -3.0  # start with "no object" everywhere (most cells are empty)
    return p


def forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list]:
    caches = []
    for i in range(1, len(CHANNELS) + 1):
        x, c_conv = conv_forward(x, p[f"conv{i}.w"], p[f"conv{i}.b"])
        x, mask = relu_forward(x)
        c_pool = None
        if i <= POOLS:
            x, c_pool = maxpool_forward(x)
        caches.append((c_conv, mask, c_pool))
    out, c_head = conv_forward(x, p["head.w"], p["head.b"])
    caches.append(c_head)
    return out, caches


def backward(p: dict[str, np.ndarray], dout: np.ndarray, caches: list) -> dict[str, np.ndarray]:
    g: dict[str, np.ndarray] = {}
    dx, g["head.w"], g["head.b"] = conv_backward(dout, caches[-1])
    for i in range(len(CHANNELS), 0, -1):
        c_conv, mask, c_pool = caches[i - 1]
        if c_pool is not None:
            dx = maxpool_backward(dx, c_pool)
        dx, g[f"conv{i}.w"], g[f"conv{i}.b"] = conv_backward(dx * mask, c_conv, need_dx=i > 1)
    return g


def loss_and_grad(out: np.ndarray, obj: np.ndarray, box: np.ndarray,
                  cls: np.ndarray) -> tuple[float, np.ndarray]:
    n = out.shape[0]
    grad = np.zeros_like(out)
    p_obj = sigmoid(out[..., 0])
    w_obj = np.where(obj > 0, 1.0, 0.5)
    bce = -(obj * np.log(p_obj + 1e-9) + (1 - obj) * np.log(1 - p_obj + 1e-9))
    grad[..., 0] = w_obj * (p_obj - obj)
    pos = obj > 0
    s = sigmoid(out[..., 1:5])
    box_err = (s - box) * pos[..., None]
    grad[..., 1:5] = 5.0 * 2 * box_err * s * (1 - s)
    prob = softmax(out[..., 5:])
    onehot = np.eye(len(CLASSES), dtype=np.float32)[cls]
    ce = -(np.log((prob * onehot).sum(-1) + 1e-9) * pos)
    grad[..., 5:] = (prob - onehot) * pos[..., None]
    loss = float(((w_obj * bce).sum() + 5.0 * (box_err ** 2).sum() + ce.sum()) / n)
    return loss, (grad / n).astype(np.float32)


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; shipped files must be readable by everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_eval_set(root: Path, n: int) -> None:
    """PNG images + annotations.csv + labels.txt, built in a temp folder and swapped in whole."""
    rng = np.random.default_rng(EVAL_SEED)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the shipped folder must be readable by everyone
        (tmp / "images").mkdir()
        rows = ["image,x1,y1,x2,y2,label"]
        for i in range(n):
            img, objs = make_image(rng)
            name = f"images/{i:04d}.png"
            if not cv2.imwrite(str(tmp / name), img, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
                raise OSError(f"cannot write {tmp / name}")
            rows += [f"{name},{x1},{y1},{x2},{y2},{CLASSES[c]}" for x1, y1, x2, y2, c in objs]
        (tmp / "annotations.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (tmp / "labels.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-images", type=int, default=150)
    ap.add_argument("--out-root", type=Path, default=Path(__file__).resolve().parents[1] / "suites")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    spec = PreprocessSpec(size=(SIZE, SIZE), crop=None, mean=(MEAN_PX,) * 3, scale=SCALE,
                          channel_order="RGB", layout="NHWC")
    rng = np.random.default_rng(SEED)
    params = init_params(rng)
    opt = Adam(params, lr=args.lr, weight_decay=1e-4)
    losses = []
    for step in range(1, args.steps + 1):
        if step == int(args.steps * 0.75):
            opt.lr = args.lr * 0.2
        batch = [make_image(rng) for _ in range(args.batch)]
        x = np.concatenate([preprocess_image(img, spec) for img, _ in batch])
        out, caches = forward(params, x)
        loss, grad = loss_and_grad(out, *targets([objs for _, objs in batch]))
        opt.step(backward(params, grad, caches))
        losses.append(loss)
        if step % 200 == 0:
            print(f"step {step:5d}/{args.steps}  loss {np.mean(losses[-200:]):.4f}  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)

    eval_root = args.out_root / "data" / "shapes" / "eval"
    write_eval_set(eval_root, args.eval_images)

    from pytest_edgeperf.accuracy.datasets import DetectionDataset
    from pytest_edgeperf.accuracy.metrics import decode_detections, evaluate_detector
    ds = DetectionDataset.from_csv(eval_root / "annotations.csv")
    acc = evaluate_detector(lambda inp: forward(params, inp)[0], ds, spec,
                            lambda out: decode_detections(out, CONF_THRESHOLD, IOU_THRESHOLD,
                                                          num_classes=len(CLASSES), input_hw=(SIZE, SIZE)))
    n_obj = sum(len(a.labels) for _, a in ds)
    print(f"held-out eval ({acc['n']} images, {n_obj} objects): mAP@0.5 {acc['map50_pct']:.2f}%")

    models = args.out_root / "models"
    arrays = {k: v.astype(np.float32) for k, v in params.items()}
    _atomic_write_bytes(models / "shapes_det.npz",
                        lambda fh: np.savez_compressed(fh, **arrays))
    meta = {
        "name": "shapes_det",
        "task": "detection",
        "input_shape": [SIZE, SIZE, 3],
        "grid": [GRID, GRID],
        "pools": POOLS,
        "labels": CLASSES,
        "preprocess": spec.to_dict(),
        "eval_set": "data/shapes/eval/annotations.csv",
        "output_format": "grid (1, 8, 8, 5 + C): objectness logit, tx, ty, tw, th (sigmoid), class logits",
        "conf_threshold": CONF_THRESHOLD,
        "iou_threshold": IOU_THRESHOLD,
        "trained_by": "scripts/train_shapes.py",
        "seed": SEED,
        "eval_seed": EVAL_SEED,
        "steps": args.steps,
        "eval_map50_pct": round(acc["map50_pct"], 3),
        "eval_n": acc["n"],
        "eval_objects": n_obj,
    }
    arrays = {k: v.astype(np.float32) for k, v in params.items()}
    _atomic_write_bytes(models / "shapes_det.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    print(f"wrote {models / 'shapes_det.npz'}, {models / 'shapes_det.json'}, {eval_root} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
