"""Graph-to-graph variants: batchnorm folding, low-rank conv decomposition (seed 002), channel pruning
(seed 003), and int8 post-training quantisation of an exported ONNX file.

Why here and not in the exporters: a variant is a new model with its own file, size and accuracy that the
suites compare with its fp32 parent, so each transform returns a new ``Graph`` (the parent is never changed)
and records what it did in ``meta["variant"]``.
"""

from __future__ import annotations

import numpy as np

from pytest_edgeperf.models.graph import Graph, Layer, bn_scale_shift


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
