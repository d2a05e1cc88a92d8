"""Training-time numpy layers (forward + backward) and Adam, shared by train_digits.py and train_shapes.py.

Why numpy: the project ships trained models without TensorFlow or PyTorch, and the training must be
reproducible from a seed on any machine. Tensors are NHWC and conv weights HWIO, the layout of
``pytest_edgeperf.models.graph``, so trained arrays go into the IR unchanged. Only what the two small networks
need is here: 3x3/1x1 "same" conv (stride 1) via im2col, relu, 2x2 max-pool, dense.
"""

from __future__ import annotations

import numpy as np


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Stride-1 'same' conv (odd kernel): x (N,H,W,C), w (k,k,C,O) -> (N,H,W,O), plus the backward cache."""
    n, h, wd, c = x.shape
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # N,H,W,C,k,k
    cols = cols.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * wd, k * k * c)
    out = cols @ w.reshape(k * k * c, -1) + b
    return out.reshape(n, h, wd, -1), (x.shape, cols, w)


def conv_backward(dout: np.ndarray, cache: tuple,
                  need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of ``conv_forward``; col2im adds the k*k shifted slices back.

    ``need_dx=False`` skips dx (the first layer's input gradient is never used and is the costliest).
    """
    (n, h, wd, c), cols, w = cache
    k = w.shape[0]
    p = k // 2
    d2 = dout.reshape(n * h * wd, -1)
    dw = (cols.T @ d2).reshape(w.shape)
    db = d2.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = (d2 @ w.reshape(k * k * c, -1).T).reshape(n, h, wd, k, k, c)
    dxp = np.zeros((n, h + 2 * p, wd + 2 * p, c), dtype=dout.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, i:i + h, j:j + wd, :] += dcols[:, :, :, i, j, :]
    dx = dxp[:, p:p + h, p:p + wd, :] if p else dxp
    return dx, dw, db


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = x > 0
    return x * mask, mask


def maxpool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """2x2 stride-2 max-pool (H, W even)."""
    n, h, w, c = x.shape
    r = x.reshape(n, h // 2, 2, w // 2, 2, c)
    out = r.max(axis=(2, 4))
    mask = (r == out[:, :, None, :, None, :]).astype(x.dtype)
    mask /= mask.sum(axis=(2, 4), keepdims=True)  # ties share the gradient
    return out, (mask, x.shape)


def maxpool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    mask, shape = cache
    return (mask * dout[:, :, None, :, None, :]).reshape(shape)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def he_init(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


class Adam:
    """Adam over a dict of float32 arrays, updated in place."""

    def __init__(self, params: dict[str, np.ndarray], lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.b1, self.b2, self.eps, self.wd = params, lr, b1, b2, eps, weight_decay
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1 = 1 - self.b1 ** self.t
        c2 = 1 - self.b2 ** self.t
        for k, g in grads.items():
            if self.wd and k.endswith(".w"):
                g = g + self.wd * self.params[k]
            self.m[k] = self.b1 * self.m[k] + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v[k] + (1 - self.b2) * g * g
            self.params[k] -= (self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)).astype(
                np.float32)
