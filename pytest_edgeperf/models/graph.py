"""The model IR: a tiny NHWC layer graph that the exporters (ONNX, TFLite) and the variant transforms share.

Why an IR of our own: the studies' architectures and the project's trained networks must exist in ONNX *and*
TFLite with bit-for-bit the same weights, built offline without TensorFlow or PyTorch. One plain description
(layers + numpy weights) exported twice gives that, and ``forward_numpy`` is the slow reference both exports
are checked against.

Conventions: every tensor is either *spatial* ``(H, W, C)`` or *flat* ``(N,)`` (batch left out; it is 1 in the
exports). Conv weights are HWIO ``(kh, kw, cin, cout)``, depthwise ``(kh, kw, c, 1)``, dense ``(in, out)``.
Padding ``"same"`` is TensorFlow's (extra row/column at the bottom/right); an int pads symmetrically.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgeperf.errors import EdgeperfError
from pytest_edgeperf.fileio import atomic_path

OPS = (
    "conv", "dwconv", "dense", "relu", "relu6", "leaky_relu", "maxpool", "avgpool", "gap", "concat", "add",
    "softmax", "flatten", "upsample2x", "batchnorm", "sigmoid",
)
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid")
_FORMAT = "edgeperf-graph/1"


class GraphError(EdgeperfError, ValueError):
    """A graph that cannot be built or exported; the message names the graph and the layer."""


@dataclass
class Layer:
    """One operation; ``inputs`` name earlier layers' outputs (or the graph input)."""

    op: str
    name: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Graph:
    """A whole model: NHWC input, ordered layers, named outputs and free-form ``meta``."""

    name: str
    input_name: str
    input_shape: tuple[int, int, int]  # (H, W, C)
    layers: list[Layer]
    outputs: list[str]
    meta: dict = field(default_factory=dict)

    # --- structure ---------------------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise GraphError(f"graph {self.name!r}: no layer named {name!r}")

    def consumers(self) -> dict[str, list[str]]:
        """Map each tensor name to the layers that read it (graph outputs are not listed)."""
        out: dict[str, list[str]] = {self.input_name: []}
        for lay in self.layers:
            out.setdefault(lay.name, [])
            for src in lay.inputs:
                out.setdefault(src, []).append(lay.name)
        return out

    def infer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every tensor (no batch); raises GraphError naming the first inconsistent layer."""
        shapes: dict[str, tuple[int, ...]] = {self.input_name: tuple(int(v) for v in self.input_shape)}
        if len(shapes[self.input_name]) != 3:
            raise GraphError(f"graph {self.name!r}: input_shape must be (H, W, C), got {self.input_shape}")
        for lay in self.layers:
            if lay.op not in OPS:
                raise GraphError(f"graph {self.name!r}, layer {lay.name!r}: unknown op {lay.op!r}")
            if lay.name in shapes:
                raise GraphError(f"graph {self.name!r}: duplicate tensor name {lay.name!r}")
            missing = [s for s in lay.inputs if s not in shapes]
            if missing or not lay.inputs:
                raise GraphError(
                    f"graph {self.name!r}, layer {lay.name!r}: inputs {missing or lay.inputs} "
                    "are not earlier tensors"
                )
            try:
                shapes[lay.name] = _out_shape(lay, [shapes[s] for s in lay.inputs])
            except GraphError as exc:
                raise GraphError(f"graph {self.name!r}, layer {lay.name!r}: {exc}") from None
        for out in self.outputs:
            if out not in shapes:
                raise GraphError(f"graph {self.name!r}: output {out!r} is not a layer")
        return shapes

    def validate(self) -> None:
        self.infer_shapes()

    def param_count(self) -> int:
        """Trainable parameters: all weight arrays except batchnorm's running mean/var and eps."""
        total = 0
        for lay in self.layers:
            for key, arr in lay.weights.items():
                if lay.op == "batchnorm" and key in ("mean", "var", "eps"):
                    continue
                total += int(np.asarray(arr).size)
        return total

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    # --- reference execution -----------------------------------------------------------------------------
    def forward_numpy(self, x_nhwc: np.ndarray) -> list[np.ndarray]:
        """Run the graph in numpy (float64 inside, float32 out); outputs keep the batch axis (NHWC / NF)."""
        self.infer_shapes()
        x = np.asarray(x_nhwc, dtype=np.float64)
        if x.ndim == 3:
            x = x[None]
        if tuple(x.shape[1:]) != tuple(self.input_shape):
            raise GraphError(f"graph {self.name!r}: input shape {x.shape[1:]} != {tuple(self.input_shape)}")
        values: dict[str, np.ndarray] = {self.input_name: x}
        remaining = self.consumers()
        with single_blas_thread():
            for lay in self.layers:
                values[lay.name] = _run(lay, [values[s] for s in lay.inputs])
                for src in lay.inputs:  # free tensors nobody needs any more (keeps resnet50 at 224 small)
                    remaining[src].remove(lay.name)
                    if not remaining[src] and src not in self.outputs and src != self.input_name:
                        values.pop(src, None)
        return [values[o].astype(np.float32) for o in self.outputs]

    # --- storage -----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the graph as one ``.npz`` (structure as JSON + weights), atomically."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        layers = []
        for i, lay in enumerate(self.layers):
            keys = {}
            for key, arr in lay.weights.items():
                arrays[f"w{i}_{key}"] = np.asarray(arr)
                keys[key] = f"w{i}_{key}"
            layers.append({"op": lay.op, "name": lay.name, "inputs": list(lay.inputs),
                           "attrs": _jsonable(lay.attrs), "weights": keys})
        header = {"format": _FORMAT, "name": self.name, "input_name": self.input_name,
                  "input_shape": list(self.input_shape), "outputs": list(self.outputs),
                  "meta": _jsonable(self.meta), "layers": layers}
        arrays["__graph__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Graph:
        """Read a graph written by ``save``; a bad file raises GraphError naming it."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                header = json.loads(bytes(data["__graph__"]).decode())
                if header.get("format") != _FORMAT:
                    raise GraphError(f"{path}: not an edgeperf graph file (format {header.get('format')!r})")
                layers = [Layer(op=d["op"], name=d["name"], inputs=list(d["inputs"]), attrs=dict(d["attrs"]),
                                weights={k: np.array(data[v]) for k, v in d["weights"].items()})
                          for d in header["layers"]]
        except GraphError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise GraphError(f"{path}: cannot read graph file ({exc})") from None
        graph = cls(name=header["name"], input_name=header["input_name"],
                    input_shape=tuple(header["input_shape"]), layers=layers, outputs=list(header["outputs"]),
                    meta=header.get("meta", {}))
        graph.validate()
        return graph


def single_blas_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread: on a shared 2-core box (or beside pytest-xdist workers) multi-threaded
    OpenBLAS on small matrices was 10-50x slower than one thread. A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn; optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --- attribute helpers (shared with the exporters) -------------------------------------------------------
#: a conv/pool layer's padding: TensorFlow's "same" or "valid", or that many pixels on every side
Padding = str | int


def pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 1)`` stays."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise GraphError(f"expected an int or a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def conv_geometry(layer: Layer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], Padding]:
    """(kernel, stride, dilation, padding) of a conv/dwconv/pool layer with defaults filled in."""
    if layer.op in ("conv", "dwconv"):
        w = layer.weights.get("w")
        kernel = pair(layer.attrs.get("kernel", w.shape[:2] if w is not None else 1))
        dilation = pair(layer.attrs.get("dilation", 1))
    else:
        kernel = pair(layer.attrs.get("size", 2))
        dilation = (1, 1)
    stride = pair(layer.attrs.get("stride", 1 if layer.op in ("conv", "dwconv") else kernel))
    padding = layer.attrs.get("padding", "valid")
    if not (padding in ("same", "valid") or isinstance(padding, int)):
        raise GraphError(f"padding must be 'same', 'valid' or an int, got {padding!r}")
    return kernel, stride, dilation, padding


def pads_1d(size: int, k: int, s: int, d: int, padding: Padding) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) along one axis, TensorFlow SAME semantics for ``"same"``."""
    eff = (k - 1) * d + 1
    if padding == "same":
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        return total // 2, total - total // 2, out
    p = 0 if padding == "valid" else int(padding)
    out = (size + 2 * p - eff) // s + 1
    if out < 1:
        raise GraphError(f"kernel {k} (dilation {d}) does not fit an input of {size}, padding {padding!r}")
    return p, p, out


def _out_shape(lay: Layer, ins: list[tuple[int, ...]]) -> tuple[int, ...]:
    op, x = lay.op, ins[0]
    spatial = len(x) == 3
    if op in ("conv", "dwconv", "maxpool", "avgpool"):
        if not spatial:
            raise GraphError(f"{op} needs a spatial (H, W, C) input, got {x}")
        (kh, kw), (sh, sw), (dh, dw), padding = conv_geometry(lay)
        _, _, oh = pads_1d(x[0], kh, sh, dh, padding)
        _, _, ow = pads_1d(x[1], kw, sw, dw, padding)
        c = x[2]
        if op == "conv":
            w = _weight(lay, "w", 4)
            if w.shape[:3] != (kh, kw, c):
                raise GraphError(f"conv weight {w.shape} != kernel {(kh, kw)} x {c} input channels")
            c = w.shape[3]
            _bias(lay, c)
        elif op == "dwconv":
            w = _weight(lay, "w", 4)
            if w.shape != (kh, kw, c, 1):
                raise GraphError(f"dwconv weight {w.shape} != {(kh, kw, c, 1)}")
            _bias(lay, c)
        return (oh, ow, c)
    if op == "dense":
        if spatial:
            raise GraphError(f"dense needs a flat input (add a flatten or gap first), got {x}")
        w = _weight(lay, "w", 2)
        if w.shape[0] != x[0]:
            raise GraphError(f"dense weight {w.shape} does not take {x[0]} inputs")
        _bias(lay, w.shape[1])
        return (w.shape[1],)
    if op in ("gap", "flatten"):
        if not spatial:
            raise GraphError(f"{op} needs a spatial input, got {x}")
        return (x[2],) if op == "gap" else (x[0] * x[1] * x[2],)
    if op == "upsample2x":
        if not spatial:
            raise GraphError(f"upsample2x needs a spatial input, got {x}")
        return (x[0] * 2, x[1] * 2, x[2])
    if op == "concat":
        axis = int(lay.attrs.get("axis", -1))
        if axis not in (-1, len(x) - 1):
            raise GraphError(f"concat supports the channel axis (-1) only, got {axis}")
        if any(len(s) != len(x) or s[:-1] != x[:-1] for s in ins):
            raise GraphError(f"concat inputs disagree outside the channel axis: {ins}")
        return (*x[:-1], sum(s[-1] for s in ins))
    if op == "add":
        if len(ins) < 2 or any(s != x for s in ins):
            raise GraphError(f"add needs >= 2 inputs of the same shape, got {ins}")
        return x
    if len(ins) != 1:
        raise GraphError(f"{op} takes one input, got {len(ins)}")
    if op == "batchnorm":
        for key in ("gamma", "beta", "mean", "var"):
            if np.asarray(lay.weights.get(key, np.zeros(0))).shape != (x[-1],):
                raise GraphError(f"batchnorm {key!r} must have shape ({x[-1]},)")
    return x


def _weight(lay: Layer, key: str, ndim: int) -> np.ndarray:
    w = lay.weights.get(key)
    if w is None or np.asarray(w).ndim != ndim:
        raise GraphError(f"{lay.op} needs a {ndim}-D weight {key!r}")
    return np.asarray(w)


def _bias(lay: Layer, n: int) -> None:
    b = lay.weights.get("b")
    if b is not None and np.asarray(b).shape != (n,):
        raise GraphError(f"bias shape {np.asarray(b).shape} != ({n},)")


def bn_scale_shift(lay: Layer) -> tuple[np.ndarray, np.ndarray]:
    """A batchnorm as ``y = x * scale + shift`` (float64), the form exporters and folding use."""
    w = lay.weights
    eps = float(np.asarray(w.get("eps", lay.attrs.get("eps", 1e-3))))
    scale = np.asarray(w["gamma"], np.float64) / np.sqrt(np.asarray(w["var"], np.float64) + eps)
    shift = np.asarray(w["beta"], np.float64) - np.asarray(w["mean"], np.float64) * scale
    return scale, shift


# --- numpy kernels ---------------------------------------------------------------------------------------
def _pad_nhwc(x: np.ndarray, ph: tuple[int, int], pw: tuple[int, int], value: float) -> np.ndarray:
    if ph == (0, 0) and pw == (0, 0):
        return x
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def _windows(lay: Layer, x: np.ndarray, value: float):
    """Yield (i, j, strided slice) for each kernel tap: convs and pools as kh*kw shifted views."""
    (kh, kw), (sh, sw), (dh, dw), padding = conv_geometry(lay)
    t, b, oh = pads_1d(x.shape[1], kh, sh, dh, padding)
    left, r, ow = pads_1d(x.shape[2], kw, sw, dw, padding)
    xp = _pad_nhwc(x, (t, b), (left, r), value)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            yield i, j, xp[:, r0: r0 + (oh - 1) * sh + 1: sh, c0: c0 + (ow - 1) * sw + 1: sw, :]


def _run(lay: Layer, ins: list[np.ndarray]) -> np.ndarray:
    op, x = lay.op, ins[0]
    if op == "conv":
        w = np.asarray(lay.weights["w"], np.float64)
        out = None
        for i, j, sl in _windows(lay, x, 0.0):
            term = sl @ w[i, j]
            out = term if out is None else out + term
        b = lay.weights.get("b")
        return out if b is None else out + np.asarray(b, np.float64)
    if op == "dwconv":
        w = np.asarray(lay.weights["w"], np.float64)
        out = None
        for i, j, sl in _windows(lay, x, 0.0):
            term = sl * w[i, j, :, 0]
            out = term if out is None else out + term
        b = lay.weights.get("b")
        return out if b is None else out + np.asarray(b, np.float64)
    if op == "maxpool":
        out = None
        for _, _, sl in _windows(lay, x, -np.inf):
            out = sl.copy() if out is None else np.maximum(out, sl)
        return out
    if op == "avgpool":  # padding is excluded from the count (TF SAME / ONNX count_include_pad=0)
        ones = np.ones((1, *x.shape[1:3], 1))
        total = count = None
        for (_, _, sl), (_, _, cl) in zip(_windows(lay, x, 0.0), _windows(lay, ones, 0.0), strict=True):
            total = sl.copy() if total is None else total + sl
            count = cl.copy() if count is None else count + cl
        return total / count
    if op == "dense":
        out = x @ np.asarray(lay.weights["w"], np.float64)
        b = lay.weights.get("b")
        return out if b is None else out + np.asarray(b, np.float64)
    if op == "relu":
        return np.maximum(x, 0.0)
    if op == "relu6":
        return np.clip(x, 0.0, 6.0)
    if op == "leaky_relu":
        alpha = float(lay.attrs.get("alpha", 0.1))
        return np.where(x >= 0, x, alpha * x)
    if op == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if op == "gap":
        return x.mean(axis=(1, 2))
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "upsample2x":
        return x.repeat(2, axis=1).repeat(2, axis=2)
    if op == "concat":
        return np.concatenate(ins, axis=-1)
    if op == "add":
        out = ins[0]
        for other in ins[1:]:
            out = out + other
        return out
    if op == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if op == "batchnorm":
        scale, shift = bn_scale_shift(lay)
        return x * scale + shift
    raise GraphError(f"layer {lay.name!r}: unknown op {op!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# --- a convenience builder ---------------------------------------------------------------------------------
class GraphBuilder:
    """Append layers with short calls; missing weights are seeded He-scaled random (finite over 50+ layers).

    Every method returns the new tensor's name, so networks read like ``x = b.conv(x, 64, 3)``. Trained
    weights (e.g. from the accuracy scripts) are passed as ``w=``/``b=`` and used as they are.
    """

    def __init__(self, name: str, input_shape: tuple[int, int, int], input_name: str = "input",
                 seed: int = 0) -> None:
        self.name = name
        self.input_name = input_name
        self.input_shape = tuple(int(v) for v in input_shape)
        self.layers: list[Layer] = []
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self._shapes: dict[str, tuple[int, ...]] = {input_name: self.input_shape}
        self._counts: dict[str, int] = {}

    # bookkeeping
    def shape(self, tensor: str) -> tuple[int, ...]:
        return self._shapes[tensor]

    def _name(self, op: str, name: str | None) -> str:
        if name is None:
            self._counts[op] = self._counts.get(op, 0) + 1
            name = f"{op}{self._counts[op]}"
        if name in self._shapes:
            raise GraphError(f"graph {self.name!r}: duplicate tensor name {name!r}")
        return name

    def add_layer(self, op: str, inputs: list[str], name: str | None = None, attrs: dict | None = None,
                  weights: dict[str, np.ndarray] | None = None) -> str:
        lay = Layer(op=op, name=self._name(op, name), inputs=list(inputs), attrs=dict(attrs or {}),
                    weights={k: np.asarray(v, np.float32) for k, v in (weights or {}).items()})
        try:
            self._shapes[lay.name] = _out_shape(lay, [self._shapes[s] for s in lay.inputs])
        except KeyError as exc:
            raise GraphError(f"graph {self.name!r}, layer {lay.name!r}: unknown input {exc}") from None
        except GraphError as exc:
            raise GraphError(f"graph {self.name!r}, layer {lay.name!r}: {exc}") from None
        self.layers.append(lay)
        return lay.name

    def _he(self, shape: tuple[int, ...], fan_in: int, gain: float) -> np.ndarray:
        return (self.rng.standard_normal(shape) * (gain * math.sqrt(2.0 / max(fan_in, 1)))).astype(np.float32)

    def _small(self, n: int) -> np.ndarray:
        return (self.rng.standard_normal(n) * 0.05).astype(np.float32)

    def _act(self, x: str, act: str | None, alpha: float, name: str | None) -> str:
        if act is None:
            return x
        if act not in ACTIVATIONS:
            raise GraphError(f"graph {self.name!r}: unknown activation {act!r}")
        attrs = {"alpha": alpha} if act == "leaky_relu" else {}
        return self.add_layer(act, [x], None if name is None else f"{name}_{act}", attrs)

    # layers
    def conv(self, x: str, cout: int, kernel: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1,
             padding: str | int = "same", dilation: int = 1, bias: bool = True, act: str | None = None,
             alpha: float = 0.1, bn: bool = False, gain: float = 1.0, name: str | None = None,
             w: np.ndarray | None = None, b: np.ndarray | None = None) -> str:
        """Conv (+ optional batchnorm) (+ optional activation); returns the last tensor's name."""
        kh, kw = pair(kernel)
        cin = self._shapes[x][-1]
        weights = {"w": w if w is not None else self._he((kh, kw, cin, cout), kh * kw * cin, gain)}
        if b is not None or (bias and not bn):
            weights["b"] = b if b is not None else self._small(cout)
        y = self.add_layer("conv", [x], name, {"kernel": (kh, kw), "stride": pair(stride), "padding": padding,
                                               "dilation": pair(dilation)}, weights)
        if bn:
            y = self.batchnorm(y, name=None if name is None else f"{name}_bn")
        return self._act(y, act, alpha, name)

    def dwconv(self, x: str, kernel: int = 3, stride: int = 1, padding: str | int = "same", bias: bool = True,
               act: str | None = None, alpha: float = 0.1, name: str | None = None,
               w: np.ndarray | None = None, b: np.ndarray | None = None) -> str:
        kh, kw = pair(kernel)
        c = self._shapes[x][-1]
        weights = {"w": w if w is not None else self._he((kh, kw, c, 1), kh * kw, 1.0)}
        if b is not None or bias:
            weights["b"] = b if b is not None else self._small(c)
        y = self.add_layer("dwconv", [x], name, {"kernel": (kh, kw), "stride": pair(stride),
                                                 "padding": padding, "dilation": (1, 1)}, weights)
        return self._act(y, act, alpha, name)

    def batchnorm(self, x: str, name: str | None = None, eps: float = 1e-3,
                  **given: np.ndarray) -> str:
        c = self._shapes[x][-1]
        weights = {
            "gamma": given.get("gamma", self.rng.uniform(0.5, 1.5, c)),
            "beta": given.get("beta", self._small(c)),
            "mean": given.get("mean", self._small(c)),
            "var": given.get("var", self.rng.uniform(0.5, 1.5, c)),
            "eps": np.asarray(eps, np.float32),
        }
        return self.add_layer("batchnorm", [x], name, {}, weights)

    def dense(self, x: str, units: int, act: str | None = None, gain: float = 1.0, name: str | None = None,
              w: np.ndarray | None = None, b: np.ndarray | None = None) -> str:
        n_in = self._shapes[x][0]
        weights = {"w": w if w is not None else self._he((n_in, units), n_in, gain * math.sqrt(0.5)),
                   "b": b if b is not None else self._small(units)}
        return self._act(self.add_layer("dense", [x], name, {}, weights), act, 0.1, name)

    def maxpool(self, x: str, size: int = 2, stride: int | None = None, padding: str | int = "valid",
                name: str | None = None) -> str:
        return self.add_layer("maxpool", [x], name, {"size": pair(size), "stride": pair(stride or size),
                                                     "padding": padding})

    def avgpool(self, x: str, size: int = 2, stride: int | None = None, padding: str | int = "valid",
                name: str | None = None) -> str:
        return self.add_layer("avgpool", [x], name, {"size": pair(size), "stride": pair(stride or size),
                                                     "padding": padding})

    def act(self, x: str, op: str, alpha: float = 0.1, name: str | None = None) -> str:
        return self.add_layer(op, [x], name, {"alpha": alpha} if op == "leaky_relu" else {})

    def op(self, op: str, inputs: list[str] | str, name: str | None = None, **attrs: Any) -> str:
        """Any weightless op: gap, flatten, softmax, concat, add, upsample2x, relu, ..."""
        return self.add_layer(op, [inputs] if isinstance(inputs, str) else list(inputs), name, attrs)

    def build(self, outputs: list[str] | str, meta: dict | None = None) -> Graph:
        meta = {"seed": self.seed, **(meta or {})}
        graph = Graph(name=self.name, input_name=self.input_name, input_shape=self.input_shape,
                      layers=self.layers, outputs=[outputs] if isinstance(outputs, str) else list(outputs),
                      meta=meta)
        graph.validate()
        return graph
