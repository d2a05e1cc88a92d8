"""Model building: the NHWC IR (``graph``), its ONNX and TFLite exporters, the studies' zoo, variants, the cache.

Why one package: every model the suites time exists as ONNX and TFLite built from the same numpy weights by
the project's own code (no TensorFlow, no model hub), so frameworks are compared on identical networks.
"""

from pytest_edgeperf.models.build import (
    BUILDER_VERSION,
    ModelBuildError,
    ModelFiles,
    build_model,
    default_cache_dir,
    ensure_zoo_model,
)
from pytest_edgeperf.models.graph import Graph, GraphBuilder, GraphError, Layer
from pytest_edgeperf.models.zoo import TABLE1_PARAMS, ZOO, build_zoo_graph

__all__ = [
    "BUILDER_VERSION",
    "TABLE1_PARAMS",
    "ZOO",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "Layer",
    "ModelBuildError",
    "ModelFiles",
    "build_model",
    "build_zoo_graph",
    "default_cache_dir",
    "ensure_zoo_model",
]
