"""The small interface every inference runtime adapter implements, and how a model path picks its file.

An adapter is created and used inside the worker process only (a crashing runtime must not take pytest down),
so importing the runtime happens in ``load``; ``is_installed`` only asks importlib whether it could be imported.
"""

from __future__ import annotations

import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgeperfError
from .signature import TensorSpec

#: what ``make_runner`` and ``run`` take: ``{input name: array}``, or one array for the first input
Feed = Mapping[str, np.ndarray] | np.ndarray


class ModelLoadError(EdgeperfError):
    """The runtime refused the model (wrong format, unsupported operator, corrupt file)."""


class ConverterMissing(EdgeperfError):
    """The runtime needs its model converted and the converter is not installed (a skip, with how to install)."""


class FrameworkAdapter(ABC):
    """Load one model with an explicit thread count, say its signature, and run inferences on it, inputs by name."""

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

    @classmethod
    def convert(cls, model: Path, cache_dir: Path, input_shapes: Any = None) -> Path | None:
        """A file this runtime loads, made from another format of ``model`` into ``cache_dir`` (ncnn converts ONNX
        with pnnx, at the shape ``input_shapes`` resolves); None when the runtime has no converter or nothing to
        convert. Runs in the pytest process, before any timing; raises ModelLoadError when the conversion is
        impossible or fails."""
        return None

    def configure(self, accelerator: Mapping[str, Any]) -> None:
        """Choose the accelerator path (accelerators.py: providers, delegates, backend/target) before ``load``."""
        self._accelerator = dict(accelerator)

    @property
    def accelerator(self) -> dict[str, Any]:
        return getattr(self, "_accelerator", {})

    def provider(self) -> str:
        """The accelerator path that runs the model, read back from the runtime after ``load`` (recorded as the
        environment's ``provider``)."""
        return "cpu"

    def threads_in_use(self) -> int | None:
        """The thread count the runtime reports after ``load`` (None where it cannot say)."""
        return None

    @abstractmethod
    def load(self, path: Path, threads: int) -> None:
        """Load the model; raise ModelLoadError with the runtime's own message when it refuses, and
        AcceleratorUnavailable when the path ``configure`` asked for is not available here."""

    @abstractmethod
    def version(self) -> str:
        """The runtime's version string, recorded in every result and baseline."""

    @property
    @abstractmethod
    def inputs(self) -> list[TensorSpec]:
        """Every model input as the runtime declares it: dynamic dims as their name or None (after ``load``)."""

    @property
    @abstractmethod
    def outputs(self) -> list[TensorSpec]:
        """Every model output as the runtime declares it (after ``load``)."""

    def set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Prepare the runtime for these concrete input shapes (LiteRT resizes its tensors); before ``make_runner``."""
        self._shapes = {name: tuple(shape) for name, shape in shapes.items()}

    @abstractmethod
    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        """A closure that runs one inference on ``feed`` (``{input name: array}``, or one array for the first
        input) and returns the first output: the timing loop calls only this, nothing else."""

    def run(self, feed: Feed) -> np.ndarray:
        """One inference on ``feed``, returning the first output (used for accuracy, not for timing)."""
        return np.asarray(self.make_runner(feed)())

    def as_feed(self, feed: Feed) -> dict[str, np.ndarray]:
        """``{input name: array}``; a bare array goes to the first input."""
        if isinstance(feed, np.ndarray):
            return {self.inputs[0].name: feed}
        return dict(feed)

    def feed_by_spec(self, feed: Feed) -> list[tuple[TensorSpec, np.ndarray]]:
        """``feed`` as (declared input, array) pairs, for runtimes that set inputs by the spec's ``index``."""
        specs = {spec.name: spec for spec in self.inputs}
        return [(specs[name], x) for name, x in self.as_feed(feed).items()]

    # ---- the first input, for code written when models had one ------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first input's shape as set by ``set_input_shapes``, else as declared (a dynamic dim is an error)."""
        first = self.inputs[0]
        shapes = getattr(self, "_shapes", {})
        return tuple(shapes[first.name]) if first.name in shapes else first.concrete_shape()

    @property
    def input_layout(self) -> str:
        """'NCHW' or 'NHWC': where the channel axis of a 4-D image input is (dynamic dims count as not 1/3/4)."""
        shape = self.inputs[0].shape
        if len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
            return "NCHW"
        return "NHWC"

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.inputs[0].dtype or "float32")


class DeclaredSignatureAdapter(FrameworkAdapter):
    """An adapter whose ``load`` stores the signature its runtime declares in ``_inputs`` and ``_outputs``."""

    def __init__(self) -> None:
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs


def first_line(exc: BaseException) -> str:
    """The first line of a runtime's error (the one-line reason a user sees), else the exception's type."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
