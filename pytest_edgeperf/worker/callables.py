"""Resolving a user's ``"module:function"`` reference (input makers, preprocessing, decoders, adapter classes).

Its own module because both the worker and the accuracy pass it runs resolve such references: each imports this,
rather than one importing the other.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_callable(ref: str, sys_path: list[str]) -> Callable[..., Any]:
    """Resolve 'package.module:func' or 'path/to/file.py:func' (a user's preprocessing or input function)."""
    for entry in sys_path:
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_part, _, func = ref.rpartition(":")
    if not module_part or not func:
        raise ValueError(f"not a 'module:function' reference: {ref!r}")
    if module_part.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(module_part).stem, module_part)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot import {module_part}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_part)
    return getattr(module, func)
