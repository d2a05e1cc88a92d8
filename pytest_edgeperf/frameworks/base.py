"""The small interface every inference runtime adapter implements, and how a model path picks its file.

An adapter is created and used inside the worker process only (a crashing runtime must not take pytest down),
so importing the runtime happens in ``load``; ``is_installed`` only asks importlib whether it could be imported.
"""

from __future__ import annotations

import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class ModelLoadError(Exception):
    """The runtime refused the model (wrong format, unsupported operator, corrupt file)."""


class FrameworkAdapter(ABC):
    """Load one model with an explicit thread count and run batch-1 inferences on it."""

    name: str = ""
    #: file extensions this runtime loads, in order of preference
    extensions: tuple[str, ...] = ()
    #: importable modules, any one of which makes the runtime usable
    modules: tuple[str, ...] = ()
    #: the thread count is one setting for the whole process (OpenCV's cv2.setNumThreads), not per model: a second
    #: model in the same process (the machine-speed reference) must then use the measured model's count
    process_wide_threads: bool = False

    @classmethod
    def is_installed(cls) -> tuple[bool, str]:
        """(installed, reason) without importing the runtime (importing some of them costs seconds).

        An adapter that names no ``modules`` needs nothing beyond itself (a plugin's pure-numpy runtime).
        """
        if not cls.modules:
            return True, "no module to import"
        for module in cls.modules:
            if module in sys.modules and sys.modules[module] is None:
                continue  # import blocked on purpose (sys.modules[name] = None)
            try:
                if importlib.util.find_spec(module) is not None:
                    return True, module
            except (ImportError, ValueError):
                continue
        if not cls.__module__.startswith("pytest_edgeperf."):  # a plugin's runtime: our extras do not install it
            return False, f"{cls.name} is not installed (none of {', '.join(cls.modules)} can be imported)"
        return False, f"{cls.name} is not installed (pip install 'pytest-edgeperf[{cls.extra}]')"

    extra: str = "all"

    @classmethod
    def model_file(cls, model: Path) -> Path | None:
        """The file this runtime would load for ``model`` (a file, or a stem without extension), if any."""
        if model.suffix in cls.extensions:
            return model if model.exists() else None
        if model.suffix and model.exists():
            return None  # an explicit file of another format
        for ext in cls.extensions:
            candidate = model.with_name(model.name + ext)
            if candidate.exists():
                return candidate
        return None

    @abstractmethod
    def load(self, path: Path, threads: int) -> None:
        """Load the model; raise ModelLoadError with the runtime's own message when it refuses."""

    @abstractmethod
    def version(self) -> str:
        """The runtime's version string, recorded in every result and baseline."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the (single) model input with batch 1."""

    @property
    def input_layout(self) -> str:
        """'NCHW' or 'NHWC': where the channel axis of a 4-D image input is."""
        shape = self.input_shape
        if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
            return "NCHW"
        return "NHWC"

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @abstractmethod
    def make_runner(self, x: np.ndarray) -> Callable[[], Any]:
        """A closure that runs one inference on ``x``: the timing loop calls only this, nothing else."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference on ``x``, returning the first output (used for accuracy, not for timing)."""
        return np.asarray(self.make_runner(x)())

    def to_model_layout(self, x_nhwc: np.ndarray) -> np.ndarray:
        """Convert an NHWC batch to this model's layout (ONNX models here are NCHW)."""
        if self.input_layout == "NCHW" and x_nhwc.ndim == 4:
            return np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
        return x_nhwc
