"""A float TFLite model given a uint8-quantised input: a DEQUANTIZE in front, as TFLite's converter writes with
``inference_input_type=tf.uint8``.

Why: no package on the registries this project reaches ships a uint8-quantised TFLite model in its wheel (the
MediaPipe and BlazeFace models are float32; the quantised MobileNets live on model hubs), so the project makes one
from a model it trained itself. The input is ``uint8`` with ``scale`` / ``zero_point`` chosen from the model's own
preprocessing (``real = scale * (pixel - zero_point)``), so a raw image byte is what it takes, and the plugin's
``preprocess=`` quantises real images with them. The weights stay float: the runtime's uint8 input path (the
feed, the quantised preprocessing, the accuracy pass) is what it exercises, not integer kernels.
"""

from __future__ import annotations

import os
from pathlib import Path

import flatbuffers
import numpy as np

from pytest_edgeperf.fileio import atomic_write_bytes
from pytest_edgeperf.models.graph import GraphError


def with_uint8_input(tflite: bytes, scale: float, zero_point: int) -> bytes:
    """``tflite`` (one float32 input) with a uint8 input of ``scale``/``zero_point`` dequantised into it."""
    from pytest_edgeperf.models import tflite_export as tx

    tx._require_schema()
    tfl = tx.tfl
    if not 0 <= int(zero_point) <= 255 or not scale > 0:
        raise GraphError(f"uint8 input: zero_point must be 0..255 and scale > 0, got {zero_point}, {scale}")
    model = tfl.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    sub = model.subgraphs[0]
    if len(sub.inputs) != 1 or sub.tensors[int(sub.inputs[0])].type != tfl.TensorType.FLOAT32:
        raise GraphError("uint8 input: the model must have one float32 input")
    real = sub.tensors[int(sub.inputs[0])]
    q = tfl.TensorT()
    q.name = (real.name.decode() if isinstance(real.name, bytes) else str(real.name)) + "_uint8"
    q.shape = np.asarray(real.shape, np.int32)
    if real.shapeSignature is not None:
        q.shapeSignature = np.asarray(real.shapeSignature, np.int32)
    q.type = tfl.TensorType.UINT8
    q.buffer = 0
    params = tfl.QuantizationParametersT()
    params.scale, params.zeroPoint = [float(scale)], [int(zero_point)]
    q.quantization = params
    sub.tensors.append(q)
    q_index = len(sub.tensors) - 1

    codes = [int(c.builtinCode) for c in model.operatorCodes]
    if tfl.BuiltinOperator.DEQUANTIZE not in codes:
        code = tfl.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = tfl.BuiltinOperator.DEQUANTIZE
        code.version = 1
        model.operatorCodes.append(code)
        codes.append(int(tfl.BuiltinOperator.DEQUANTIZE))
    op = tfl.OperatorT()
    op.opcodeIndex = codes.index(tfl.BuiltinOperator.DEQUANTIZE)
    op.inputs = np.asarray([q_index], np.int32)
    op.outputs = np.asarray([int(sub.inputs[0])], np.int32)
    sub.operators.insert(0, op)
    sub.inputs = np.asarray([q_index], np.int32)

    buffers = []
    for buf in model.buffers:  # keep the constants 16-byte aligned, as the exporter writes them
        if getattr(buf, "data", None) is not None and len(buf.data):
            aligned = tx._AlignedBufferT()
            aligned.data = np.asarray(buf.data, np.uint8)
            buf = aligned
        buffers.append(buf)
    model.buffers = buffers
    builder = flatbuffers.Builder(len(tflite) + 1024 * 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def write_uint8_input(src: str | os.PathLike, dst: str | os.PathLike, scale: float, zero_point: int) -> Path:
    """:func:`with_uint8_input` from file to file, written atomically (a reader never sees half a file)."""
    dst = Path(dst)
    data = with_uint8_input(Path(src).read_bytes(), scale, zero_point)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, data)
    return dst
