"""The source of a tiny ONNX model builder (onnx.helper) that inner pytester projects import as modelbuilder."""

MODEL_BUILDER = '''
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(path, convs=1):
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(convs):
        inits.append(numpy_helper.from_array(rng.standard_normal((8, 3 if i == 0 else 8, 3, 3)).astype(np.float32),
                                             f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
'''
