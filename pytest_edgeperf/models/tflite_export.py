"""The TFLite exporter: an IR ``Graph`` -> NHWC float32 ``.tflite`` written with flatbuffers, no TensorFlow.

Why hand-written: the project must build the studies' models on a Pi with only the runtime wheels installed.
``ai_edge_litert`` ships the TFLite schema as ``schema_py_generated``; its object API (``ModelT`` ...) packs a
model from numpy arrays. Batchnorms are folded, relu/relu6 after conv/dwconv/dense/add are fused as TFLite's
converter would (XNNPACK sees the usual patterns), constant buffers are 16-byte aligned.
"""

from __future__ import annotations

import os
from pathlib import Path

import flatbuffers
import numpy as np

from pytest_edgeperf.fileio import atomic_write_bytes
from pytest_edgeperf.models.graph import Graph, GraphError, conv_geometry

try:
    from ai_edge_litert import schema_py_generated as tfl
except ImportError:  # pragma: no cover - the 'litert' extra is not installed
    tfl = None

_FUSABLE_PRODUCERS = ("conv", "dwconv", "dense", "add")
_FUSED_CODES = {"relu": 1, "relu6": 3}  # ActivationFunctionType.RELU, RELU6


def tflite_available() -> bool:
    """Whether this installation can write ``.tflite`` files (the schema comes with ai-edge-litert)."""
    return tfl is not None


def _require_schema() -> None:
    if tfl is None:
        raise GraphError("TFLite export needs ai-edge-litert (pip install 'pytest-edgeperf[litert]')")


class _Writer:
    """Collects tensors, buffers and operators of one subgraph."""

    def __init__(self) -> None:
        self.tensors: list = []
        self.index: dict[str, int] = {}
        self.buffers: list = [tfl.BufferT()]  # buffer 0: the empty sentinel every model has
        self.ops: list = []
        self.codes: list[int] = []

    def tensor(self, name: str, shape: list[int], data: np.ndarray | None = None,
               dtype: int | None = None) -> int:
        t = tfl.TensorT()
        t.name = name
        t.shape = np.asarray(shape, np.int32)
        t.type = tfl.TensorType.FLOAT32 if dtype is None else dtype
        if data is not None:
            buf = _AlignedBufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return self.index[name]

    def const(self, name: str, arr: np.ndarray, dtype: type = np.float32) -> int:
        arr = np.asarray(arr, dtype=dtype)
        code = tfl.TensorType.INT32 if dtype == np.int32 else tfl.TensorType.FLOAT32
        return self.tensor(name, list(arr.shape), arr, code)

    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type: int = 0,
           options: object = None) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = tfl.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs = np.asarray(inputs, np.int32)
        o.outputs = np.asarray(outputs, np.int32)
        o.builtinOptionsType = opt_type
        o.builtinOptions = options
        self.ops.append(o)


if tfl is not None:

    class _AlignedBufferT(tfl.BufferT):
        """A buffer whose bytes start on a 16-byte boundary (mmap-friendly, as TFLite's converter writes)."""

        def Pack(self, builder: flatbuffers.Builder) -> int:
            payload = self.data.tobytes()
            builder.StartVector(1, len(payload), 16)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head: builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
            tfl.BufferStart(builder)
            tfl.BufferAddData(builder, data)
            return tfl.BufferEnd(builder)


def _padding_code(padding: object) -> int:
    return tfl.Padding.SAME if padding == "same" else tfl.Padding.VALID


def to_tflite_bytes(graph: Graph) -> bytes:
    """Serialise ``graph`` as a TFLite flatbuffer (input ``[1, H, W, C]`` float32)."""
    _require_schema()
    from pytest_edgeperf.models.transforms import fold_batchnorm

    graph = fold_batchnorm(graph)
    shapes = graph.infer_shapes()
    consumers = graph.consumers()
    by_name = {lay.name: lay for lay in graph.layers}
    # relu/relu6 fused into the op before them: the activation layer's tensor is the fused op's output.
    fused: dict[str, tuple[int, str]] = {}
    skip: set[str] = set()
    for lay in graph.layers:
        if lay.op in _FUSED_CODES:
            prod = by_name.get(lay.inputs[0])
            if (prod is not None and prod.op in _FUSABLE_PRODUCERS and consumers[prod.name] == [lay.name]
                    and prod.name not in graph.outputs and prod.name not in fused):
                fused[prod.name] = (_FUSED_CODES[lay.op], lay.name)
                skip.add(lay.name)

    w = _Writer()
    B = tfl.BuiltinOperator
    O = tfl.BuiltinOptions  # noqa: E741

    def dims(name: str) -> list[int]:
        return [1, *shapes[name]]

    w.tensor(graph.input_name, dims(graph.input_name))
    for lay in graph.layers:
        if lay.name in skip:
            continue
        act, out_name = fused.get(lay.name, (0, lay.name))
        out = w.tensor(out_name, dims(lay.name))
        x = w.index[lay.inputs[0]]
        op = lay.op
        if op in ("conv", "dwconv", "maxpool", "avgpool"):
            (kh, kw), (sh, sw), (dh, dw), padding = conv_geometry(lay)
            if isinstance(padding, int) and padding > 0:
                if op == "avgpool":
                    raise GraphError(f"graph {graph.name!r}, layer {lay.name!r}: TFLite export cannot do an "
                                     "avgpool with integer padding (use 'same' or 'valid')")
                h, wd, c = shapes[lay.inputs[0]]
                padded = w.tensor(f"{lay.name}.pad", [1, h + 2 * padding, wd + 2 * padding, c])
                pads = w.const(f"{lay.name}.pads", [[0, 0], [padding, padding], [padding, padding], [0, 0]],
                               np.int32)
                if op == "maxpool":
                    fill = w.const(f"{lay.name}.fill", np.array(np.finfo(np.float32).min))
                    w.op(B.PADV2, [x, pads, fill], [padded], O.PadV2Options, tfl.PadV2OptionsT())
                else:
                    w.op(B.PAD, [x, pads], [padded], O.PadOptions, tfl.PadOptionsT())
                x, padding = padded, "valid"
            if op in ("conv", "dwconv"):
                wt = np.asarray(lay.weights["w"], np.float32)
                filt = wt.transpose(3, 0, 1, 2)  # HWIO -> OHWI; dwconv (kh, kw, c, 1) -> (1, kh, kw, c)
                cout = filt.shape[0] if op == "conv" else filt.shape[3]
                bias = lay.weights.get("b")
                fi = w.const(f"{lay.name}.w", filt)
                bi = w.const(f"{lay.name}.b", np.zeros(cout) if bias is None else bias)
                if op == "conv":
                    opt = tfl.Conv2DOptionsT()
                    code, opt_type = B.CONV_2D, O.Conv2DOptions
                else:
                    opt = tfl.DepthwiseConv2DOptionsT()
                    opt.depthMultiplier = 1
                    code, opt_type = B.DEPTHWISE_CONV_2D, O.DepthwiseConv2DOptions
                opt.padding, opt.strideH, opt.strideW = _padding_code(padding), sh, sw
                opt.dilationHFactor, opt.dilationWFactor = dh, dw
                opt.fusedActivationFunction = act
                w.op(code, [x, fi, bi], [out], opt_type, opt)
            else:
                opt = tfl.Pool2DOptionsT()
                opt.padding, opt.strideH, opt.strideW = _padding_code(padding), sh, sw
                opt.filterHeight, opt.filterWidth = kh, kw
                code = B.MAX_POOL_2D if op == "maxpool" else B.AVERAGE_POOL_2D
                w.op(code, [x], [out], O.Pool2DOptions, opt)
        elif op == "dense":
            wt = np.asarray(lay.weights["w"], np.float32)
            bias = lay.weights.get("b")
            fi = w.const(f"{lay.name}.w", wt.T)
            bi = w.const(f"{lay.name}.b", np.zeros(wt.shape[1]) if bias is None else bias)
            opt = tfl.FullyConnectedOptionsT()
            opt.fusedActivationFunction = act
            w.op(B.FULLY_CONNECTED, [x, fi, bi], [out], O.FullyConnectedOptions, opt)
        elif op == "relu":
            w.op(B.RELU, [x], [out])
        elif op == "relu6":
            w.op(B.RELU6, [x], [out])
        elif op == "leaky_relu":
            opt = tfl.LeakyReluOptionsT()
            opt.alpha = float(lay.attrs.get("alpha", 0.1))
            w.op(B.LEAKY_RELU, [x], [out], O.LeakyReluOptions, opt)
        elif op == "sigmoid":
            w.op(B.LOGISTIC, [x], [out])
        elif op == "gap":
            axes = w.const(f"{lay.name}.axes", [1, 2], np.int32)
            opt = tfl.ReducerOptionsT()
            opt.keepDims = False
            w.op(B.MEAN, [x, axes], [out], O.ReducerOptions, opt)
        elif op == "flatten":
            new_shape = w.const(f"{lay.name}.shape", dims(lay.name), np.int32)
            opt = tfl.ReshapeOptionsT()
            opt.newShape = dims(lay.name)
            w.op(B.RESHAPE, [x, new_shape], [out], O.ReshapeOptions, opt)
        elif op == "concat":
            opt = tfl.ConcatenationOptionsT()
            opt.axis = len(shapes[lay.name])  # the last axis with the batch counted
            w.op(B.CONCATENATION, [w.index[s] for s in lay.inputs], [out], O.ConcatenationOptions, opt)
        elif op == "add":
            prev = x
            for i, other in enumerate(lay.inputs[1:]):
                last = i == len(lay.inputs) - 2
                dst = out if last else w.tensor(f"{lay.name}.{i}", dims(lay.name))
                opt = tfl.AddOptionsT()
                opt.fusedActivationFunction = act if last else 0
                w.op(B.ADD, [prev, w.index[other]], [dst], O.AddOptions, opt)
                prev = dst
        elif op == "softmax":
            opt = tfl.SoftmaxOptionsT()
            opt.beta = 1.0
            w.op(B.SOFTMAX, [x], [out], O.SoftmaxOptions, opt)
        elif op == "upsample2x":
            size = w.const(f"{lay.name}.size", list(shapes[lay.name][:2]), np.int32)
            opt = tfl.ResizeNearestNeighborOptionsT()
            w.op(B.RESIZE_NEAREST_NEIGHBOR, [x, size], [out], O.ResizeNearestNeighborOptions, opt)
        elif op == "batchnorm":
            from pytest_edgeperf.models.graph import bn_scale_shift

            scale, shift = bn_scale_shift(lay)
            mid = w.tensor(f"{lay.name}.scaled", dims(lay.name))
            w.op(B.MUL, [x, w.const(f"{lay.name}.scale", scale)], [mid], O.MulOptions, tfl.MulOptionsT())
            w.op(B.ADD, [mid, w.const(f"{lay.name}.shift", shift)], [out], O.AddOptions, tfl.AddOptionsT())
        else:  # pragma: no cover - infer_shapes rejects unknown ops first
            raise GraphError(f"graph {graph.name!r}, layer {lay.name!r}: no TFLite rule for {op!r}")

    sub = tfl.SubGraphT()
    sub.name = graph.name
    sub.tensors = w.tensors
    sub.operators = w.ops
    sub.inputs = np.asarray([w.index[graph.input_name]], np.int32)
    sub.outputs = np.asarray([w.index[o] for o in graph.outputs], np.int32)
    model = tfl.ModelT()
    model.version = 3
    model.description = f"{graph.name}: built by pytest_edgeperf.models"
    model.subgraphs = [sub]
    model.buffers = w.buffers
    codes = []
    for code in w.codes:
        oc = tfl.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, tfl.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
        oc.version = 1
        codes.append(oc)
    model.operatorCodes = codes
    size_hint = sum(int(b.data.size) for b in w.buffers if getattr(b, "data", None) is not None)
    builder = flatbuffers.Builder(size_hint + 1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def to_tflite(graph: Graph, path: str | os.PathLike) -> Path:
    """Export ``graph`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    data = to_tflite_bytes(graph)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path
