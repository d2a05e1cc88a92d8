"""Train the shipped digits classifier in numpy and write its weights, metadata and held-out eval images.

Why: issue 5 wants at least one classifier whose accuracy is real and re-computable offline. scikit-learn's
bundled digits (1797 8x8 images, 10 classes) are upscaled onto canvases of varying size with jitter and
noise, written as grey PNGs, and read back through the Pi 3 framework comparison's path (OpenCV resize of the
shorter side to
36, centre crop 32x32, mean subtraction and scaling; 3 channels RGB, NHWC) so that resize and crop matter.
Training images go through the very same render + ``preprocess_image`` path, with fresh jitter every epoch.

Network (NHWC, 32x32x3 -> 10): conv3x3(16)+relu, maxpool2, conv3x3(32)+relu, maxpool2, conv3x3(32)+relu,
maxpool2, flatten (4*4*32), dense(10), softmax. Adam, softmax cross-entropy, seed 0: deterministic.

Writes (atomically): ``suites/models/digits_cnn.npz``, ``suites/models/digits_cnn.json`` and
``suites/data/digits/eval/<class>/<index>.png`` (20% stratified hold-out, never trained on).

Usage: ``python scripts/train_digits.py [--epochs 14] [--out-root suites]``
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
    softmax,
)

from pytest_edgeperf.accuracy.preprocess import PreprocessSpec, preprocess_image

SEED = 0
INPUT_HW = 32
RESIZE_SHORTER = 36
CHANNELS = (16, 32, 32)
NUM_CLASSES = 10


def render_digit(img8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 digit (values 0..16) as a grey uint8 image on a canvas of random size with offset and noise."""
    h = int(rng.integers(36, 49))
    w = int(rng.integers(36, 49))
    side = round(min(h, w) * rng.uniform(0.62, 0.78))
    glyph = cv2.resize((img8 / 16.0 * 255.0).astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((h, w), rng.uniform(0, 40), dtype=np.float32)
    top = (h - side) // 2 + int(rng.integers(-3, 4))
    left = (w - side) // 2 + int(rng.integers(-3, 4))
    top, left = int(np.clip(top, 0, h - side)), int(np.clip(left, 0, w - side))
    region = canvas[top:top + side, left:left + side]
    canvas[top:top + side, left:left + side] = np.maximum(region, glyph * rng.uniform(0.7, 1.0))
    canvas += rng.normal(0, 8, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def batch_inputs(images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    return np.concatenate([preprocess_image(im, spec) for im in images]).astype(np.float32)


def init_params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    p: dict[str, np.ndarray] = {}
    cin = 3
    for i, cout in enumerate(CHANNELS, start=1):
        p[f"conv{i}.w"] = he_init(rng, (3, 3, cin, cout), 9 * cin)
        p[f"conv{i}.b"] = np.zeros(cout, np.float32)
        cin = cout
    flat = (INPUT_HW // 8) ** 2 * cin
    p["fc.w"] = he_init(rng, (flat, NUM_CLASSES), flat) * np.float32(0.5)
    p["fc.b"] = np.zeros(NUM_CLASSES, np.float32)
    return p


def forward(p: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list]:
    caches = []
    for i in range(1, len(CHANNELS) + 1):
        x, c_conv = conv_forward(x, p[f"conv{i}.w"], p[f"conv{i}.b"])
        x, mask = relu_forward(x)
        x, c_pool = maxpool_forward(x)
        caches.append((c_conv, mask, c_pool))
    shape = x.shape
    flat = x.reshape(shape[0], -1)
    logits = flat @ p["fc.w"] + p["fc.b"]
    caches.append((flat, shape))
    return logits, caches


def backward(p: dict[str, np.ndarray], dlogits: np.ndarray, caches: list) -> dict[str, np.ndarray]:
    g: dict[str, np.ndarray] = {}
    flat, shape = caches[-1]
    g["fc.w"] = flat.T @ dlogits
    g["fc.b"] = dlogits.sum(axis=0)
    dx = (dlogits @ p["fc.w"].T).reshape(shape)
    for i in range(len(CHANNELS), 0, -1):
        c_conv, mask, c_pool = caches[i - 1]
        dx = maxpool_backward(dx, c_pool) * mask
        dx, g[f"conv{i}.w"], g[f"conv{i}.b"] = conv_backward(dx, c_conv, need_dx=i > 1)
    return g


def predict(p: dict[str, np.ndarray], x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([forward(p, x[i:i + batch])[0] for i in range(0, len(x), batch)])


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


def write_eval_set(root: Path, images: list[np.ndarray], labels: np.ndarray) -> None:
    """Write ``root/<class>/<i>.png`` into a temp folder, then swap it in (never half-written)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the shipped folder must be readable by everyone
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            (tmp / str(int(lab))).mkdir(exist_ok=True)
            if not cv2.imwrite(str(tmp / str(int(lab)) / f"{i:04d}.png"), img,
                               [cv2.IMWRITE_PNG_COMPRESSION, 9]):
                raise OSError(f"cannot write {tmp}/{lab}/{i:04d}.png")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> int:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out-root", type=Path, default=Path(__file__).resolve().parents[1] / "suites")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    digits = load_digits()
    idx = np.arange(len(digits.target))
    train_idx, eval_idx = train_test_split(idx, test_size=0.2, random_state=SEED, stratify=digits.target)
    rng = np.random.default_rng(SEED)
    eval_images = [render_digit(digits.images[i], rng) for i in eval_idx]
    eval_labels = digits.target[eval_idx]

    # Mean/std in pixel units from one rendering of the training images (the preprocessing constants).
    probe = PreprocessSpec(size=RESIZE_SHORTER, crop=(INPUT_HW, INPUT_HW))
    px = batch_inputs([render_digit(digits.images[i], rng) for i in train_idx], probe)
    mean, std = float(px.mean()), float(px.std())
    spec = PreprocessSpec(size=RESIZE_SHORTER, crop=(INPUT_HW, INPUT_HW), mean=(mean, mean, mean),
                          scale=1.0 / std, channel_order="RGB", layout="NHWC")

    params = init_params(rng)
    opt = Adam(params, lr=args.lr, weight_decay=1e-4)
    y_train = digits.target[train_idx]
    for epoch in range(args.epochs):
        if epoch == int(args.epochs * 0.7):
            opt.lr = args.lr * 0.2
        x_train = batch_inputs([render_digit(digits.images[i], rng) for i in train_idx], spec)
        order = rng.permutation(len(train_idx))
        losses = []
        for s in range(0, len(order), args.batch):
            b = order[s:s + args.batch]
            logits, caches = forward(params, x_train[b])
            prob = softmax(logits)
            losses.append(float(-np.log(prob[np.arange(len(b)), y_train[b]] + 1e-12).mean()))
            prob[np.arange(len(b)), y_train[b]] -= 1.0
            opt.step(backward(params, (prob / len(b)).astype(np.float32), caches))
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {np.mean(losses):.4f}", flush=True)

    models = args.out_root / "models"
    eval_root = args.out_root / "data" / "digits" / "eval"
    write_eval_set(eval_root, eval_images, eval_labels)

    # Score from the files on disk, through the same loader + preprocessing the plugin uses.
    from pytest_edgeperf.accuracy.datasets import ClassificationDataset, load_image
    from pytest_edgeperf.accuracy.metrics import topk_accuracy
    ds = ClassificationDataset.from_folder(eval_root)
    x_eval = batch_inputs([load_image(pth) for pth, _ in ds], spec)
    acc = topk_accuracy(predict(params, x_eval), [lab for _, lab in ds])
    print(f"held-out eval ({acc['n']} images): top1 {acc['top1_pct']:.2f}%  top5 {acc['top5_pct']:.2f}%")

    arrays = {k: v.astype(np.float32) for k, v in params.items()}
    _atomic_write_bytes(models / "digits_cnn.npz",
                        lambda fh: np.savez_compressed(fh, **arrays))
    meta = {
        "name": "digits_cnn",
        "task": "classification",
        "input_shape": [INPUT_HW, INPUT_HW, 3],
        "labels": [str(i) for i in range(NUM_CLASSES)],
        "preprocess": spec.to_dict(),
        "eval_set": "data/digits/eval",
        "trained_by": "scripts/train_digits.py",
        "seed": SEED,
        "epochs": args.epochs,
        "train_images": len(train_idx),
        "eval_top1_pct": round(acc["top1_pct"], 3),
        "eval_top5_pct": round(acc["top5_pct"], 3),
        "eval_n": acc["n"],
    }
    arrays = {k: v.astype(np.float32) for k, v in params.items()}
    _atomic_write_bytes(models / "digits_cnn.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    print(f"wrote {models / 'digits_cnn.npz'}, {models / 'digits_cnn.json'}, {eval_root} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
