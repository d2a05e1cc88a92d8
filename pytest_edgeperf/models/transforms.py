"""Graph-to-graph variants: batchnorm folding, low-rank conv decomposition (the low-rank acceleration article),
channel pruning (the ChangSafe pruning study), and int8 post-training quantisation of an exported ONNX file.

Why here and not in the exporters: a variant is a new model with its own file, size and accuracy that the
suites compare with its fp32 parent, so each transform returns a new ``Graph`` (the parent is never changed)
and records what it did in ``meta["variant"]``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from pytest_edgeperf.fileio import atomic_path
from pytest_edgeperf.models.graph import Graph, Layer, bn_scale_shift, conv_geometry, single_blas_thread


# --- batchnorm folding -----------------------------------------------------------------------------------
def fold_batchnorm(graph: Graph) -> Graph:
    """Fold each batchnorm into the conv/dwconv/dense before it when that layer feeds only the batchnorm.

    The folded layer takes the batchnorm's name so downstream layers and outputs stay wired. Batchnorms that
    cannot be folded stay (the exporters lower them to an affine op).
    """
    consumers = graph.consumers()
    by_name = {lay.name: lay for lay in graph.layers}
    folded: dict[str, Layer] = {}  # producer name -> replacement (emitted at the batchnorm's position)
    drop: set[str] = set()
    for lay in graph.layers:
        if lay.op != "batchnorm":
            continue
        prod = by_name.get(lay.inputs[0])
        if (prod is None or prod.op not in ("conv", "dwconv", "dense") or consumers[prod.name] != [lay.name]
                or prod.name in graph.outputs or prod.name in folded):
            continue
        scale, shift = bn_scale_shift(lay)
        w = np.asarray(prod.weights["w"], np.float64)
        w = w * scale[None, None, :, None] if prod.op == "dwconv" else w * scale
        b = np.asarray(prod.weights.get("b", np.zeros(scale.shape)), np.float64) * scale + shift
        folded[prod.name] = Layer(op=prod.op, name=lay.name, inputs=list(prod.inputs), attrs=dict(prod.attrs),
                                  weights={"w": w.astype(np.float32), "b": b.astype(np.float32)})
        drop.add(prod.name)
    if not folded:
        return graph
    out = graph.copy()
    layers: list[Layer] = []
    for lay in out.layers:
        if lay.name in drop:
            continue
        if lay.op == "batchnorm" and lay.inputs[0] in folded:
            layers.append(folded[lay.inputs[0]])
            continue
        layers.append(lay)
    out.layers = layers
    return out


def _variant(graph: Graph, kind: str, **info: object) -> Graph:
    out = graph.copy()
    out.meta = dict(out.meta)
    out.meta["variant"] = [*graph.meta.get("variant", []), {"kind": kind, **info}]
    out.meta["parent"] = graph.name
    out.meta["parent_param_count"] = graph.param_count()
    return out


# --- low-rank decomposition (the low-rank acceleration article) ----------------------------------------------
def lowrank_decompose(graph: Graph, rank_ratio: float | None = None, energy: float | None = None,
                      only_if_smaller: bool = True, min_kernel: int = 2) -> Graph:
    """Each eligible k x k conv with d filters -> r filters k x k (no bias) then a 1x1 conv with d filters.

    The low-rank acceleration article (PCA of the filter bank): the weights reshaped to ``(k*k*c, d)`` are
    factored by SVD; keeping the r largest singular values gives the best rank-r approximation, and
    r = min(k*k*c, d) is exact. ``r`` is ``ceil(rank_ratio * d)`` or the fewest singular values holding ``energy``
    of the squared spectrum. Convs are skipped when smaller than ``min_kernel`` or (with ``only_if_smaller``) when
    the pair would not have fewer parameters. The 1x1 keeps the original name (and bias), so downstream wiring is
    unchanged.
    """
    if (rank_ratio is None) == (energy is None):
        raise ValueError("lowrank_decompose: give exactly one of rank_ratio or energy")
    if rank_ratio is not None and not 0 < rank_ratio <= 1:
        raise ValueError(f"lowrank_decompose: rank_ratio must be in (0, 1], got {rank_ratio}")
    if energy is not None and not 0 < energy <= 1:
        raise ValueError(f"lowrank_decompose: energy must be in (0, 1], got {energy}")
    out = _variant(graph, "lowrank", rank_ratio=rank_ratio, energy=energy)
    layers: list[Layer] = []
    decomposed: dict[str, int] = {}
    for lay in out.layers:
        (kh, kw), _, dil, _ = conv_geometry(lay) if lay.op == "conv" else ((1, 1), None, (1, 1), None)
        if lay.op != "conv" or max(kh, kw) < min_kernel or dil != (1, 1):
            layers.append(lay)
            continue
        w = np.asarray(lay.weights["w"], np.float64)
        cin, d = w.shape[2], w.shape[3]
        mat = w.reshape(kh * kw * cin, d)
        eig, axes = _principal_axes(mat)
        full = min(mat.shape)
        if rank_ratio is not None:
            r = min(full, max(1, int(np.ceil(rank_ratio * d - 1e-9))))
        else:
            cum = np.cumsum(eig) / max(float(np.sum(eig)), 1e-30)
            r = min(full, int(np.searchsorted(cum, energy - 1e-12) + 1))
        if only_if_smaller and r * (kh * kw * cin + d) >= kh * kw * cin * d:
            layers.append(lay)
            continue
        basis = axes[:, :r]  # (d, r): the top-r principal directions of the filter bank
        first = Layer(op="conv", name=f"{lay.name}_lowrank", inputs=list(lay.inputs), attrs=dict(lay.attrs),
                      weights={"w": (mat @ basis).reshape(kh, kw, cin, r).astype(np.float32)})
        second_w = {"w": basis.T.reshape(1, 1, r, d).astype(np.float32)}
        if "b" in lay.weights:
            second_w["b"] = lay.weights["b"]
        second = Layer(op="conv", name=lay.name, inputs=[first.name],
                       attrs={"kernel": (1, 1), "stride": (1, 1), "padding": "valid", "dilation": (1, 1)},
                       weights=second_w)
        layers += [first, second]
        decomposed[lay.name] = r
    out.layers = layers
    out.meta["variant"][-1]["ranks"] = decomposed
    out.name = f"{graph.name}_lowrank"
    out.validate()
    return out


def _principal_axes(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of ``mat.T @ mat``: PCA of the filters, as the low-rank article does.

    Why not ``np.linalg.svd``: on a busy 2-core machine multi-threaded LAPACK SVD of a 4608x512 matrix took
    12 s; the d x d eigenproblem on one BLAS thread takes 0.2 s and gives the same rank-r projection.
    """
    with single_blas_thread():
        eig, vec = np.linalg.eigh(mat.T @ mat)
    order = np.argsort(eig)[::-1]
    return np.clip(eig[order], 0.0, None), vec[:, order]


# --- channel pruning (the ChangSafe pruning study) -----------------------------------------------------------
class _NotPrunable(Exception):
    pass


_PER_CHANNEL = ("batchnorm", "relu", "relu6", "leaky_relu", "sigmoid", "maxpool", "avgpool", "upsample2x",
                "dwconv")


def _plan_removal(graph: Graph, shapes: dict, consumers: dict, tensor: str, drop: np.ndarray,
                  edits: list) -> None:
    """Collect the edits that remove channels ``drop`` of ``tensor`` everywhere downstream (or raise)."""
    if tensor in graph.outputs:
        raise _NotPrunable(tensor)
    by_name = {lay.name: lay for lay in graph.layers}
    for cname in consumers.get(tensor, []):
        lay = by_name[cname]
        if lay.op in _PER_CHANNEL:
            edits.append((lay, "channel", drop))
            _plan_removal(graph, shapes, consumers, lay.name, drop, edits)
        elif lay.op == "conv":
            edits.append((lay, "conv_in", drop))
        elif lay.op == "concat":
            offset = 0
            for src in lay.inputs:
                if src == tensor:
                    _plan_removal(graph, shapes, consumers, lay.name, drop + offset, edits)
                offset += shapes[src][-1]
        elif lay.op == "gap":
            _plan_removal(graph, shapes, consumers, lay.name, drop, edits)
        elif lay.op == "flatten":
            h, w, c = shapes[tensor]
            flat = (np.arange(h * w)[:, None] * c + drop[None, :]).ravel()
            _plan_removal(graph, shapes, consumers, lay.name, np.sort(flat), edits)
        elif lay.op == "dense":
            edits.append((lay, "dense_in", drop))
        else:  # add, softmax over channels, ...: the channel count is tied to another tensor
            raise _NotPrunable(lay.name)


def _apply(edits: list) -> None:
    done: set[tuple[int, str]] = set()
    for lay, kind, drop in edits:
        if (id(lay), kind) in done:
            raise _NotPrunable(lay.name)  # reached twice (e.g. concat of a tensor with itself)
        done.add((id(lay), kind))
        w = lay.weights
        if kind == "conv_in":
            w["w"] = np.delete(w["w"], drop, axis=2)
        elif kind == "dense_in":
            w["w"] = np.delete(w["w"], drop, axis=0)
        elif lay.op == "dwconv":
            w["w"] = np.delete(w["w"], drop, axis=2)
            if "b" in w:
                w["b"] = np.delete(w["b"], drop)
        elif lay.op == "batchnorm":
            for key in ("gamma", "beta", "mean", "var"):
                w[key] = np.delete(w[key], drop)


def prune_channels(graph: Graph, ratio: float = 0.15, by: str = "bn_gamma",
                   max_layer_ratio: float = 0.9) -> Graph:
    """Remove the least important output channels of convs and the matching inputs downstream (the ChangSafe study).

    ``by="bn_gamma"``: importance is |gamma| of the batchnorm right after the conv (network slimming); one
    global threshold prunes ``ratio`` of all those channels (at most ``max_layer_ratio`` of any layer).
    ``by="l1"``: importance is each filter's L1 norm, ``ratio`` of each conv's filters. Convs whose channels
    reach a graph output, an ``add`` or a channel softmax are left alone (their width is tied to another
    tensor). Without fine-tuning accuracy drops; the suites measure by how much.
    """
    if by not in ("bn_gamma", "l1"):
        raise ValueError(f"prune_channels: by must be 'bn_gamma' or 'l1', got {by!r}")
    if not 0 <= ratio < 1:
        raise ValueError(f"prune_channels: ratio must be in [0, 1), got {ratio}")
    out = _variant(graph, "prune", ratio=ratio, by=by)
    consumers = out.consumers()
    by_name = {lay.name: lay for lay in out.layers}
    scores: dict[str, np.ndarray] = {}
    for lay in out.layers:
        if lay.op != "conv":
            continue
        if by == "bn_gamma":
            nxt = consumers.get(lay.name, [])
            if len(nxt) == 1 and by_name[nxt[0]].op == "batchnorm" and lay.name not in out.outputs:
                scores[lay.name] = np.abs(np.asarray(by_name[nxt[0]].weights["gamma"], np.float64))
        else:
            scores[lay.name] = np.abs(np.asarray(lay.weights["w"], np.float64)).sum(axis=(0, 1, 2))
    if by == "bn_gamma" and scores:
        threshold = np.quantile(np.concatenate(list(scores.values())), ratio) if ratio > 0 else -np.inf
    pruned: dict[str, int] = {}
    for name, score in scores.items():
        c = score.size
        if by == "bn_gamma":
            drop = np.flatnonzero(score < threshold)
            cap = int(np.floor(max_layer_ratio * c))
            if drop.size > cap:
                drop = np.sort(drop[np.argsort(score[drop])[:cap]])
        else:
            n = min(round(ratio * c), c - 1)
            drop = np.sort(np.argsort(score, kind="stable")[:n])
        if drop.size == 0 or drop.size >= c:
            continue
        shapes = out.infer_shapes()
        edits: list = []
        try:
            _plan_removal(out, shapes, out.consumers(), name, drop, edits)
            backup = [(lay, {k: v for k, v in lay.weights.items()}) for lay, _, _ in edits]
            try:
                _apply(edits)
            except _NotPrunable:
                for lay, weights in backup:
                    lay.weights = weights
                raise
        except _NotPrunable:
            continue
        conv = by_name[name]
        conv.weights["w"] = np.delete(conv.weights["w"], drop, axis=3)
        if "b" in conv.weights:
            conv.weights["b"] = np.delete(conv.weights["b"], drop)
        pruned[name] = int(drop.size)
    out.meta["variant"][-1]["pruned_channels"] = pruned
    out.name = f"{graph.name}_pruned"
    out.validate()
    return out


# --- int8 post-training quantisation (ONNX Runtime) -------------------------------------------------------
def quantize_onnx_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike,
                       calibration: Iterable[np.ndarray], per_channel: bool = True) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights, uint8 activations) with ONNX Runtime's quantizer.

    ``calibration`` yields input arrays, NCHW ``(1, C, H, W)`` as the ONNX file takes, or NHWC (transposed
    here); 50-200 representative images are typical. The result is written atomically.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:
        raise ValueError(f"{onnx_path}: cannot read ONNX model ({exc})") from None
    inp = model.graph.input[0]
    dims = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)

    def as_nchw(arr: np.ndarray) -> np.ndarray:
        arr = np.asarray(arr, np.float32)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.shape == dims:
            return arr
        if arr.ndim == 4 and arr.transpose(0, 3, 1, 2).shape == dims:
            return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
        raise ValueError(f"{onnx_path}: calibration array of shape {arr.shape} does not fit input {dims}")

    batches = [as_nchw(a) for a in calibration]
    if not batches:
        raise ValueError(f"{onnx_path}: int8 quantisation needs at least one calibration input")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict | None:
            arr = next(self._it, None)
            return None if arr is None else {inp.name: arr}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path, suffix=".tmp.onnx") as tmp:
        quantize_static(str(onnx_path), str(tmp), _Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
    return out_path
