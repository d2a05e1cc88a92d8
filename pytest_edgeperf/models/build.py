"""Building model files: a ``Graph`` -> ``<stem>.onnx`` and/or ``.tflite`` + ``.json`` meta, and the zoo cache.

Only the formats asked for are written (by default those this machine can export: ONNX always, TFLite when
ai-edge-litert is installed), so ``pip install pytest-edgeperf[onnx]`` builds zoo models for ONNX Runtime; a
cached model missing a format gains it on the next request that needs it. The exporters need ``onnx`` and
``flatbuffers``, which come with the ``zoo`` extra (and with ``onnx``, ``litert``, ``all``): they are imported only
when a file is written, so a cached model, and every model a user brings as a file, needs neither.

Why a cache with a lock: the studies' models are tens of MB (ResNet-50 ~100 MB) and are never committed, so they
are built on first use. Several pytest-xdist workers may ask for the same model at once; an exclusive lock
file per stem serialises the builders, and every file is written to a temp name and ``os.replace``d, with the
meta JSON written last, so a reader never sees a half-written model and a crashed build is simply redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_edgeperf.errors import EdgeperfError
from pytest_edgeperf.fileio import LockError, atomic_write_text, exclusive_lock, file_sha256
from pytest_edgeperf.models.graph import Graph
from pytest_edgeperf.models.zoo import build_zoo_graph

# Bump when an exporter or builder changes what it writes: cached models with another version are rebuilt.
BUILDER_VERSION = 1
META_SCHEMA = "edgeperf-model/1"
#: every format the exporters write, in the order they are written
FORMATS = ("onnx", "tflite")
#: the modules the exporters import, all from the ``zoo`` extra
ZOO_EXTRA_MODULES = ("onnx", "flatbuffers")


class ModelBuildError(EdgeperfError, ValueError):
    """A model that cannot be built or a cache that cannot be used; the message names the model/file."""


def require_zoo_extra() -> None:
    """Raise a one-line ``ModelBuildError`` naming the extra when the exporters' modules cannot be imported."""
    missing = []
    for module in ZOO_EXTRA_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ModelBuildError(f"building zoo models needs {' and '.join(missing)}: "
                              f"pip install 'pytest-edgeperf[zoo]'")


def _exporter(kind: str) -> Callable[[Graph, Path], Path]:
    """The writer of one format, imported on first use (the ``zoo`` extra's modules load only to build)."""
    require_zoo_extra()
    if kind == "onnx":
        from pytest_edgeperf.models.onnx_export import to_onnx

        return to_onnx
    from pytest_edgeperf.models.tflite_export import to_tflite

    return to_tflite


def tflite_available() -> bool:
    """Whether this installation can write ``.tflite`` files (the schema comes with ai-edge-litert)."""
    try:
        from pytest_edgeperf.models.tflite_export import tflite_available as available
    except ImportError:  # flatbuffers missing: the zoo extra is not installed
        return False
    return available()


@dataclass(frozen=True)
class ModelFiles:
    """Where one built model lives; ``stem`` has no suffix."""

    stem: Path
    onnx: Path
    tflite: Path
    meta: Path

    @classmethod
    def for_stem(cls, stem: Path) -> ModelFiles:
        stem = Path(stem)
        return cls(stem=stem, onnx=stem.with_name(stem.name + ".onnx"),
                   tflite=stem.with_name(stem.name + ".tflite"), meta=stem.with_name(stem.name + ".json"))

    def path(self, kind: str) -> Path:
        """The file of format ``kind`` ("onnx" or "tflite")."""
        return {"onnx": self.onnx, "tflite": self.tflite}[kind]

    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta.read_text())
        except (OSError, ValueError) as exc:
            raise ModelBuildError(f"{self.meta}: cannot read model meta ({exc})") from None


def available_formats() -> tuple[str, ...]:
    """The formats this installation can export: ONNX always (a build without the zoo extra fails naming it),
    TFLite with ai-edge-litert."""
    return ("onnx", "tflite") if tflite_available() else ("onnx",)


def _formats(formats: Iterable[str] | None) -> tuple[str, ...]:
    if formats is None:
        return available_formats()
    wanted = tuple(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ModelBuildError(f"model formats {list(wanted)}: expected one or more of {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in wanted)


def default_cache_dir() -> Path:
    """``$EDGEPERF_CACHE/models`` if set, else ``~/.cache/pytest-edgeperf/models`` (the plugin's --edgeperf-cache-dir
    names the same parent directory)."""
    env = os.environ.get("EDGEPERF_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "pytest-edgeperf") / "models"


#: seconds a builder waits for another builder of the same model before giving up (a big model builds in a minute)
BUILD_LOCK_TIMEOUT_S = 600.0


@contextlib.contextmanager
def _locked(stem: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<stem>.lock`` (waits for other builders of the same stem, at most 10 minutes).

    The lock file is opened without following symlinks (fileio.exclusive_lock): a link planted in a shared cache
    is refused, never written through.
    """
    lock_path = stem.with_name(stem.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_lock(lock_path, f"the build lock of {stem.name}", timeout_s=BUILD_LOCK_TIMEOUT_S):
            yield
    except LockError as exc:
        raise ModelBuildError(str(exc)) from None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _output_shapes(graph: Graph) -> dict[str, dict[str, list[int]]]:
    shapes = graph.infer_shapes()
    out = {}
    for name in graph.outputs:
        s = list(shapes[name])
        out[name] = {"nhwc": [1, *s], "nchw": [1, s[2], s[0], s[1]] if len(s) == 3 else [1, *s]}
    return out


def _build_unlocked(graph: Graph, files: ModelFiles, build_args: dict[str, Any] | None,
                    formats: tuple[str, ...], keep: dict[str, Any] | None = None) -> ModelFiles:
    """Export ``formats`` and write the meta last; ``keep`` holds meta entries of files already current."""
    require_zoo_extra()
    from pytest_edgeperf.models.onnx_export import ONNX_OPSET

    keep = dict(keep or {})
    files.meta.unlink(missing_ok=True)  # no meta = incomplete, until the end of this function
    for kind in formats:
        if kind in keep:
            continue
        _exporter(kind)(graph, files.path(kind))
        keep[kind] = {"path": files.path(kind).name, "size_bytes": files.path(kind).stat().st_size,
                      "sha256": file_sha256(files.path(kind))}
    for kind in FORMATS:
        if kind not in keep:  # a file from an earlier build of another graph must not be loaded as this one
            files.path(kind).unlink(missing_ok=True)
    gmeta = graph.meta
    meta = {
        "schema": META_SCHEMA,
        "builder_version": BUILDER_VERSION,
        "name": graph.name,
        "input_name": graph.input_name,
        "input_shape_hwc": list(graph.input_shape),
        "onnx_layout": "NCHW",
        "onnx_input_shape": [1, graph.input_shape[2], graph.input_shape[0], graph.input_shape[1]],
        "onnx_opset": ONNX_OPSET,
        "tflite_layout": "NHWC",
        "tflite_input_shape": [1, *graph.input_shape],
        "outputs": _output_shapes(graph),
        "param_count": graph.param_count(),
        "files": {kind: keep[kind] for kind in FORMATS if kind in keep},
        "seed": gmeta.get("seed"),
        "num_classes": gmeta.get("num_classes"),
        "task": gmeta.get("task"),
        "preprocessing": gmeta.get("preprocessing", {}),
        "synthetic_weights": bool(gmeta.get("synthetic_weights", False)),
        "build_args": build_args or {},
        "graph_meta": gmeta,
    }
    _write_json_atomic(files.meta, json.loads(json.dumps(meta, default=_json_default)))
    return files


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def build_model(graph: Graph, out_dir: Path, stem: str | None = None,
                formats: Iterable[str] | None = None) -> ModelFiles:
    """Export ``graph`` to ``out_dir/<stem>.{onnx,tflite,json}`` (stem defaults to ``graph.name``).

    ``formats``: "onnx" and/or "tflite"; default: every format this installation can export.
    """
    wanted = _formats(formats)
    graph.validate()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelBuildError(f"{out_dir}: cannot create the model directory ({exc})") from None
    files = ModelFiles.for_stem(out_dir / (stem or graph.name))
    with _locked(files.stem):
        return _build_unlocked(graph, files, None, wanted)


def _cache_stem(name: str, kwargs: dict[str, Any]) -> str:
    if not kwargs:
        return name
    key = json.dumps(kwargs, sort_keys=True, default=_json_default)
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _current_files(files: ModelFiles, build_args: dict[str, Any]) -> dict[str, Any]:
    """The meta entries of the cached files that are complete and made by this builder version from the same
    args (empty when none are): only these are reused."""
    try:
        meta = json.loads(files.meta.read_text())
        if meta.get("builder_version") != BUILDER_VERSION or meta.get("build_args") != build_args:
            return {}
        return {kind: entry for kind, entry in meta["files"].items()
                if kind in FORMATS and files.path(kind).stat().st_size == entry["size_bytes"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _is_current(files: ModelFiles, build_args: dict[str, Any], formats: tuple[str, ...]) -> bool:
    return set(formats) <= set(_current_files(files, build_args))


def ensure_zoo_model(name: str, cache_dir: Path | None = None, *, formats: Iterable[str] | None = None,
                     **kwargs: Any) -> ModelFiles:
    """The zoo model ``name`` built with ``kwargs`` (seed, input_size, ...), from the cache when current.

    ``formats``: the files the caller will load ("onnx", "tflite"); default: every format this installation
    can export. Formats already cached and current are kept, missing ones are added.
    """
    wanted = _formats(formats)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    build_args = json.loads(json.dumps({"zoo": name, **kwargs}, sort_keys=True, default=_json_default))
    files = ModelFiles.for_stem(cache_dir / _cache_stem(name, kwargs))
    if _is_current(files, build_args, wanted):
        return files
    graph = build_zoo_graph(name, **kwargs)  # raises ValueError naming the model for bad names/arguments
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelBuildError(f"{cache_dir}: cannot create the model cache ({exc})") from None
    with _locked(files.stem):
        current = _current_files(files, build_args)  # another worker may have built it while we waited
        if set(wanted) <= set(current):
            return files
        return _build_unlocked(graph, files, build_args, tuple(f for f in FORMATS if f in {*wanted, *current}),
                               keep=current)
