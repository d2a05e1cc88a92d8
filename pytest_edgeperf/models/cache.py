"""The session's model cache: zoo architectures, graphs built from shipped weights, and their int8 variants.

Files are generated once per content (a digest of the graph or of the source file names the cache entry), so a
changed graph never reuses a stale file and an unchanged one is never rebuilt. The ``model_cache`` fixture hands
one of these to tests; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .build import FORMATS, ModelFiles, available_formats, build_model, ensure_zoo_model
from .graph import Graph


def graph_digest(graph: Graph) -> str:
    """A digest of the structure and every weight: equal digests mean identical exported models."""
    h = hashlib.sha256()
    h.update(json.dumps([graph.name, list(graph.input_shape), graph.outputs], default=str).encode())
    for layer in graph.layers:
        h.update(json.dumps([layer.op, layer.name, layer.inputs, layer.attrs], sort_keys=True, default=str).encode())
        for key in sorted(layer.weights):
            arr = np.ascontiguousarray(layer.weights[key])
            h.update(key.encode())
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
    return h.hexdigest()


class ModelCache:
    """Build-once model files under ``root``; every method returns the model *stem* the marker accepts."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def zoo(self, name: str, *, formats: Iterable[str] | None = None, **kwargs: object) -> Path:
        return ensure_zoo_model(name, self.root / "models", formats=formats, **kwargs).stem

    def build(self, graph: Graph | Callable[..., Graph], name: str | None = None,
              formats: Iterable[str] | None = None, **kwargs: object) -> Path:
        """``graph`` exported to ``formats`` (default: every format this installation can export). ``graph`` may be
        a module-level builder function, called with ``kwargs``: --edgeperf-against then rebuilds the model from
        REF's version of that function (against.py); a Graph object cannot be rebuilt there."""
        if not callable(graph):
            return self._build_graph(graph, name, formats)
        from .origin import builder_origin, write_origin

        origin = builder_origin(graph, kwargs)
        stem = self._build_graph(graph(**kwargs), name, formats)
        write_origin(stem, origin)
        return stem

    def _build_graph(self, graph: Graph, name: str | None, formats: Iterable[str] | None) -> Path:
        digest = graph_digest(graph)[:12]
        out_dir = self.root / "built" / f"{name or graph.name}-{digest}"
        files = ModelFiles.for_stem(out_dir / (name or graph.name))
        wanted = set(available_formats() if formats is None else formats)
        try:
            built = {kind for kind in files.read_meta().get("files", {}) if files.path(kind).exists()}
        except (ValueError, KeyError, AttributeError):  # no meta yet, or not ours: build
            built = set()
        if wanted <= built:
            return files.stem
        kinds = [kind for kind in FORMATS if kind in wanted | built]
        return build_model(graph, out_dir, stem=name or graph.name, formats=kinds).stem

    def int8(self, stem: Path, calibration: Iterable[np.ndarray]) -> Path:
        """An ONNX int8 (QDQ, per-channel) variant of ``stem``.onnx, calibrated on ``calibration`` inputs."""
        from .transforms import quantize_onnx_int8

        source = Path(str(stem) + ".onnx")
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
        out = self.root / "int8" / f"{stem.name}-{digest}" / f"{stem.name}_int8.onnx"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            quantize_onnx_int8(source, out, calibration)
        return out.with_suffix("")
