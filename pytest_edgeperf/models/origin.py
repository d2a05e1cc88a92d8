"""Where a model built by code came from: the builder function and its arguments, kept beside the model.

``model_cache.build(function, ...)`` writes it so that ``--edgeperf-against=REF`` (``ab/against.py``) can call REF's
version of the same function and compare the two models; a Graph object has no origin and is not comparable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..fileio import atomic_write_text

#: written beside a model built by ``model_cache.build(function, ...)``: what to call to rebuild it
ORIGIN_FILE = "origin.json"


def builder_origin(builder: Callable[..., object], kwargs: dict[str, object]) -> dict[str, object] | None:
    """What ``model_cache.build(builder, **kwargs)`` records to rebuild the model at REF, or None when it cannot
    be called again by name (a lambda, a nested function, a builder outside any file, arguments not JSON)."""
    module = sys.modules.get(getattr(builder, "__module__", "") or "")
    qualname = getattr(builder, "__qualname__", "")
    file = getattr(module, "__file__", None)
    if module is None or not file or "<" in qualname:
        return None
    try:
        args = json.loads(json.dumps(kwargs))
    except (TypeError, ValueError):
        return None
    path = Path(file).resolve()
    depth = module.__name__.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parents[depth]
    return {"builder": f"{module.__name__}:{qualname}", "kwargs": args, "import_root": str(root)}


def write_origin(stem: Path, origin: dict[str, object] | None) -> None:
    """Records ``origin`` beside the model ``stem`` (atomically); no origin: nothing is written."""
    if origin is None:
        return
    dest = Path(stem).parent / ORIGIN_FILE
    atomic_write_text(dest, json.dumps({**origin, "name": Path(stem).name}, sort_keys=True))
