"""The ONNX exporter: an IR ``Graph`` -> NCHW float32 ``.onnx`` (opset 13) that onnxruntime and OpenCV load.

Why opset 13 and IR 8: both onnxruntime 1.16+ and OpenCV 4.8/5 DNN import it; newer opsets add nothing these
networks need. Batchnorms that follow a conv are folded first (as a deployed model would be), so the file has
the same arithmetic as the TFLite export. Spatial tensors are ``[1, C, H, W]``, flat ones ``[1, N]``;
``flatten`` transposes back to HWC order first so dense weights mean the same thing in every export.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_edgeperf.fileio import atomic_write_bytes
from pytest_edgeperf.models.graph import Graph, GraphError, conv_geometry, pads_1d

ONNX_OPSET = 13
ONNX_IR_VERSION = 8


def to_onnx_model(graph: Graph) -> onnx.ModelProto:
    """Build the ONNX model in memory (checked with ``onnx.checker``)."""
    from pytest_edgeperf.models.transforms import fold_batchnorm

    graph = fold_batchnorm(graph)
    shapes = graph.infer_shapes()
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, arr: np.ndarray, dtype: type = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(arr, dtype=dtype)), name))
        return name

    for lay in graph.layers:
        src = lay.inputs
        out = lay.name
        in_shape = shapes[src[0]]
        op = lay.op
        if op in ("conv", "dwconv", "maxpool", "avgpool"):
            (kh, kw), (sh, sw), (dh, dw), padding = conv_geometry(lay)
            t, b, _ = pads_1d(in_shape[0], kh, sh, dh, padding)
            left, r, _ = pads_1d(in_shape[1], kw, sw, dw, padding)
            geo = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [t, left, b, r]}
            if op in ("conv", "dwconv"):
                w = np.asarray(lay.weights["w"], np.float32)
                if op == "conv":
                    w_oihw, group, cout = w.transpose(3, 2, 0, 1), 1, w.shape[3]
                else:
                    w_oihw, group, cout = w.transpose(2, 3, 0, 1), w.shape[2], w.shape[2]
                bias = lay.weights.get("b")
                ins = [src[0], const(f"{out}.w", w_oihw)]
                ins.append(const(f"{out}.b", np.zeros(cout) if bias is None else bias))
                nodes.append(helper.make_node("Conv", ins, [out], name=out, group=group,
                                              dilations=[dh, dw], **geo))
            elif op == "maxpool":
                nodes.append(helper.make_node("MaxPool", [src[0]], [out], name=out, **geo))
            else:
                nodes.append(helper.make_node("AveragePool", [src[0]], [out], name=out,
                                              count_include_pad=0, **geo))
        elif op == "dense":
            bias = lay.weights.get("b")
            w = np.asarray(lay.weights["w"], np.float32)
            b = np.zeros(w.shape[1]) if bias is None else bias
            nodes.append(helper.make_node("Gemm", [src[0], const(f"{out}.w", w), const(f"{out}.b", b)], [out],
                                          name=out))
        elif op == "relu":
            nodes.append(helper.make_node("Relu", src, [out], name=out))
        elif op == "relu6":
            lo, hi = const(f"{out}.min", np.array(0.0)), const(f"{out}.max", np.array(6.0))
            nodes.append(helper.make_node("Clip", [src[0], lo, hi], [out], name=out))
        elif op == "leaky_relu":
            nodes.append(helper.make_node("LeakyRelu", src, [out], name=out,
                                          alpha=float(lay.attrs.get("alpha", 0.1))))
        elif op == "sigmoid":
            nodes.append(helper.make_node("Sigmoid", src, [out], name=out))
        elif op == "gap":
            nodes.append(helper.make_node("GlobalAveragePool", src, [f"{out}.pool"], name=f"{out}.pool"))
            nodes.append(helper.make_node("Flatten", [f"{out}.pool"], [out], name=out, axis=1))
        elif op == "flatten":
            nodes.append(helper.make_node("Transpose", src, [f"{out}.nhwc"], name=f"{out}.nhwc",
                                          perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node("Flatten", [f"{out}.nhwc"], [out], name=out, axis=1))
        elif op == "concat":
            nodes.append(helper.make_node("Concat", src, [out], name=out, axis=1))
        elif op == "add":
            prev = src[0]
            for i, other in enumerate(src[1:]):
                name = out if i == len(src) - 2 else f"{out}.{i}"
                nodes.append(helper.make_node("Add", [prev, other], [name], name=name))
                prev = name
        elif op == "softmax":
            nodes.append(helper.make_node("Softmax", src, [out], name=out, axis=1))
        elif op == "upsample2x":
            scales = const(f"{out}.scales", np.array([1.0, 1.0, 2.0, 2.0]))
            nodes.append(helper.make_node("Resize", [src[0], "", scales], [out], name=out, mode="nearest",
                                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
        elif op == "batchnorm":
            w = lay.weights
            eps = float(np.asarray(w.get("eps", 1e-3)))
            ins = [src[0]] + [const(f"{out}.{k}", w[k]) for k in ("gamma", "beta", "mean", "var")]
            nodes.append(helper.make_node("BatchNormalization", ins, [out], name=out, epsilon=eps))
        else:  # pragma: no cover - infer_shapes rejects unknown ops first
            raise GraphError(f"graph {graph.name!r}, layer {lay.name!r}: ONNX export has no rule for {op!r}")

    def value_info(name: str) -> onnx.ValueInfoProto:
        s = shapes[name]
        dims = [1, s[2], s[0], s[1]] if len(s) == 3 else [1, s[0]]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    g = helper.make_graph(nodes, graph.name, [value_info(graph.input_name)],
                          [value_info(o) for o in graph.outputs], initializer=inits)
    model = helper.make_model(g, producer_name="pytest-edgeperf",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    model.doc_string = f"{graph.name}: built by pytest_edgeperf.models (synthetic or project-trained weights)"
    onnx.checker.check_model(model)
    return model


def to_onnx(graph: Graph, path: str | os.PathLike) -> Path:
    """Export ``graph`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    model = to_onnx_model(graph)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model.SerializeToString())
    return path
