"""Source of small models with the signatures users bring (inner pytester projects import it as ``sigbuilder``).

``dynamic.onnx``: a detector-like convolution with input ``images`` ``[N, 3, height, width]``.
``batch.onnx``: the same with only the batch dynamic ``[N, 3, 16, 16]``.
``three.onnx``: a voice-activity-like model, inputs ``input`` [1, 64] float, ``state`` [2, 1, 16] float and ``sr``
(int64 scalar); its first output is ``input + sum(state) + sr``, so the values fed can be read back.
``quant.tflite``: a uint8-quantised image input ``[-1, 8, 8, 3]`` (scale 1/127.5, zero point 128, as MobileNets
are) -> DEQUANTIZE -> MEAN over height and width: the output is the mean real value per channel.
"""

SIG_BUILDER = '''
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def build_dynamic(path, dims=("N", 3, "height", "width")):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["out"])]
    out_dims = [dims[0], 8, dims[2], dims[3]]
    _save(helper.make_graph(nodes, "dynamic", [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(dims))],
                            [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_dims)], [w]), path)


def build_three(path):
    nodes = [helper.make_node("ReduceSum", ["state"], ["s"], keepdims=0),
             helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["input", "s"], ["a"]),
             helper.make_node("Add", ["a", "srf"], ["out"]),
             helper.make_node("Identity", ["state"], ["state_out"])]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64]),
              helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, 16]),
              helper.make_tensor_value_info("sr", TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 64]),
               helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [2, 1, 16])]
    _save(helper.make_graph(nodes, "three", inputs, outputs), path)


def build_quant_tflite(path, scale=1 / 127.5, zero_point=128):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    from pytest_edgeperf.models.tflite_export import _Writer

    w = _Writer()
    x = w.tensor("image", [1, 8, 8, 3], dtype=tfl.TensorType.UINT8)
    q = tfl.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zero_point)]
    w.tensors[x].quantization = q
    w.tensors[x].shapeSignature = np.asarray([-1, 8, 8, 3], np.int32)
    real = w.tensor("real", [1, 8, 8, 3])
    w.op(tfl.BuiltinOperator.DEQUANTIZE, [x], [real])
    axes = w.const("axes", np.asarray([1, 2]), np.int32)
    out = w.tensor("mean", [1, 3])
    options = tfl.ReducerOptionsT()
    options.keepDims = False
    w.op(tfl.BuiltinOperator.MEAN, [real, axes], [out], tfl.BuiltinOptions.ReducerOptions, options)
    sub = tfl.SubGraphT()
    sub.tensors, sub.operators = w.tensors, w.ops
    sub.inputs, sub.outputs = np.asarray([x], np.int32), np.asarray([out], np.int32)
    model = tfl.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [sub], w.buffers
    codes = []
    for code in w.codes:
        oc = tfl.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, code, 1
        codes.append(oc)
    model.operatorCodes = codes
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(path, "wb") as fh:
        fh.write(bytes(builder.Output()))


def write_colours(root, size=12):
    """Three classes of flat colour images (a_red, b_green, c_blue), two images each, as BGR PNGs."""
    import os

    import cv2

    for name, bgr in (("a_red", (30, 40, 220)), ("b_green", (50, 200, 20)), ("c_blue", (210, 60, 40))):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(2):
            img = np.zeros((size, size, 3), np.uint8)
            img[:] = [max(0, c - 10 * i) for c in bgr]
            cv2.imwrite(os.path.join(root, name, f"{i}.png"), img)
'''
