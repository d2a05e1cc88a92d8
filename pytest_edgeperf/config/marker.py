"""The ``edgeperf`` marker's arguments: ``MarkerSpec`` (what a test may write in ``@pytest.mark.edgeperf``),
``parse_marker`` (every argument checked and normalised; a problem is one line naming the test and the argument)
and the checks the marker shares with ``measure()``'s keywords (``INPUT_ARGUMENTS``). Separate from the options
because a marker is read per test at collection, not once per session, and its errors name the test.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .ranges import RANGES

MARKER_HELP = (
    "edgeperf(model=None, *, frameworks=None, threads=None, min_samples=None, min_time_s=None, max_time_s=None, "
    "warmup_s=None, min_fps=None, max_latency_ms=None, max_memory_mb=None, min_top1_pct=None, min_top5_pct=None, "
    "min_map50_pct=None, max_energy_per_inference_mj=None, tolerance=None, inputs=None, preprocess=None, "
    "accuracy=None, min_freq_ghz=None, counters=None, hotspots=None, sustained_s=None, min_speedup=None, "
    "max_accuracy_drop_pct=None, processes=None, input_shapes=None, input_dtypes=None, input_values=None, "
    "providers=None, delegates=None, backend=None, target=None): "
    "measure a model on this "
    "device with each installed runtime; see the README"
)

@dataclass(frozen=True)
class MarkerSpec:
    """The validated arguments of one test's ``@pytest.mark.edgeperf``."""

    model: str | None = None
    frameworks: tuple[str, ...] | None = None
    threads: int | None = None
    min_samples: int | None = None
    min_time_s: float | None = None
    max_time_s: float | None = None
    warmup_s: float | None = None
    min_fps: float | None = None
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_top1_pct: float | None = None
    min_top5_pct: float | None = None
    min_map50_pct: float | None = None
    max_energy_per_inference_mj: float | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    inputs: str | None = None
    preprocess: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
    min_freq_ghz: float | None = None
    counters: bool | None = None
    hotspots: bool | None = None
    sustained_s: float | None = None
    min_speedup: float | None = None
    max_accuracy_drop_pct: float | None = None
    processes: int | None = None
    #: a shape for a single-input model or {input name: shape}; resolves dynamic dimensions (frameworks/signature.py)
    input_shapes: list[int] | dict[str, list[int]] | None = None
    input_dtypes: dict[str, str] | None = None
    input_values: dict[str, Any] | None = None
    #: accelerator paths (frameworks/accelerators.py), each for its own runtime: ONNX Runtime execution providers
    #: as [[name, options], ...], LiteRT delegates likewise ([] = XNNPACK off), OpenCV DNN backend and target names
    providers: list[list[Any]] | None = None
    delegates: list[list[Any]] | None = None
    backend: str | None = None
    target: str | None = None

    def accelerator_for(self, framework: str) -> dict[str, Any]:
        """The accelerator arguments that apply to ``framework`` (empty: the runtime's default path)."""
        from ..frameworks.accelerators import ACCELERATOR_ARGUMENTS, options_for

        return options_for(framework, {arg: getattr(self, arg) for arg in ACCELERATOR_ARGUMENTS})


#: marker arguments that are the same quantity as an option take that option's range
MARKER_RANGES: dict[str, str] = {"threads": "threads", "min_samples": "min-samples", "processes": "processes",
                                 "min_time_s": "min-time", "max_time_s": "max-time", "min_freq_ghz": "min-freq",
                                 "sustained_s": "sustained"}


_POSITIVE_INTS = ("threads", "min_samples", "processes")
_POSITIVE_FLOATS = ("max_time_s", "min_fps", "max_latency_ms", "max_memory_mb", "min_freq_ghz", "sustained_s",
                    "max_energy_per_inference_mj", "min_speedup")
_NON_NEGATIVE_FLOATS = ("min_time_s", "warmup_s", "max_accuracy_drop_pct")
_PERCENTS = ("min_top1_pct", "min_top5_pct", "min_map50_pct")


def parse_marker(test_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkerSpec:
    """Validate a marker; every problem is one line naming the test and the argument."""

    def bad(arg: str, why: str) -> pytest.UsageError:
        return pytest.UsageError(f"{test_id}: @pytest.mark.edgeperf argument {arg!r}: {why}")

    kwargs = dict(kwargs)
    if len(args) > 1:
        raise bad("model", f"takes one positional argument (the model), got {len(args)}")
    if args:
        if "model" in kwargs:
            raise bad("model", "given both positionally and by name")
        kwargs["model"] = args[0]
    known = set(MarkerSpec.__dataclass_fields__)
    for name in kwargs:
        if name not in known:
            raise bad(name, f"unknown argument (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        try:
            out[name] = _marker_value(name, value, bad)
        except pytest.UsageError:
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            # a value of an unexpected type deep inside (a huge int, a str where a number goes): still one line
            raise bad(name, f"cannot use {_short_repr(value)}: {type(exc).__name__}: {exc}") from None
    min_t, max_t = out.get("min_time_s"), out.get("max_time_s")
    if min_t is not None and max_t is not None and max_t < min_t:
        raise bad("max_time_s", f"is below min_time_s ({max_t} < {min_t})")
    return MarkerSpec(**out)


#: builds the one-line UsageError naming the test and the marker argument: ``bad(argument, why)``
BadArgument = Callable[[str, str], pytest.UsageError]


def _marker_value(name: str, value: Any, bad: BadArgument) -> Any:
    """One marker argument, validated and normalised; ``bad(name, why)`` builds the one-line UsageError."""
    if name == "model":
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise bad(name, f"expected a path or zoo:NAME, got {_short_repr(value)}")
        return str(value)
    if name == "frameworks":
        names = (value,) if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise bad(name, f"expected a name or a list of names, got {_short_repr(value)}")
        from ..frameworks import UnknownFrameworkError, canonical_name

        try:
            return tuple(dict.fromkeys(canonical_name(n) for n in names))
        except UnknownFrameworkError as exc:
            raise bad(name, str(exc)) from None
    if name in _POSITIVE_INTS:
        # numbers.Integral also admits numpy integers (np.int64 from a parametrize over np.arange)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise bad(name, f"expected a positive integer, got {_short_repr(value)}")
        _check_marker_range(name, int(value), bad)
        return int(value)
    if name in _POSITIVE_FLOATS + _NON_NEGATIVE_FLOATS + _PERCENTS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad(name, f"expected a number, got {_short_repr(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise bad(name, f"expected a finite number, got {_short_repr(value)}")
        if name in _POSITIVE_FLOATS and number <= 0:
            raise bad(name, f"must be > 0, got {value!r}")
        if name in _NON_NEGATIVE_FLOATS and number < 0:
            raise bad(name, f"must be >= 0, got {value!r}")
        if name in _PERCENTS and not 0 <= number <= 100:
            raise bad(name, f"is a percentage (0-100), got {value!r}")
        _check_marker_range(name, number, bad)
        return number
    if name == "tolerance":
        if not isinstance(value, (str, dict)):
            raise bad(name, f"expected a dict or 'metric=5%,...', got {_short_repr(value)}")
        from ..verdict.rules import ToleranceError, parse_tolerances

        try:
            return parse_tolerances(value)
        except ToleranceError as exc:
            raise bad(name, str(exc)) from None
    if name == "inputs":
        if not isinstance(value, str) or not value.strip():
            raise bad(name, f"expected 'random', a dataset path or 'module:function', got {_short_repr(value)}")
        return value
    if name in ("preprocess", "accuracy"):
        if not isinstance(value, dict):
            raise bad(name, f"expected a dict, got {type(value).__name__}")
        if name == "preprocess":
            from ..accuracy.preprocess import PreprocessError, parse_preprocess

            try:
                parse_preprocess(value)
            except PreprocessError as exc:
                raise bad(name, str(exc)) from None
        else:
            task = value.get("task", "classification")
            if not isinstance(task, str) or task not in ("classification", "detection"):
                raise bad(name, f"task must be 'classification' or 'detection', got {_short_repr(task)}")
            if "dataset" not in value:
                raise bad(name, "needs a 'dataset' (a folder of class sub-folders, or a CSV)")
        return dict(value)
    if name in INPUT_ARGUMENTS:
        from ..frameworks.signature import SignatureError

        try:
            return input_argument(name, value)
        except SignatureError as exc:
            raise bad(name, str(exc)) from None
    if name in ("providers", "delegates", "backend", "target"):
        from ..frameworks.accelerators import AcceleratorError, normalize

        try:
            return normalize(name, value)
        except AcceleratorError as exc:
            raise bad(name, str(exc)) from None
    if name in ("counters", "hotspots"):
        if not isinstance(value, bool):
            raise bad(name, f"expected True or False, got {_short_repr(value)}")
        return value
    raise bad(name, "unknown argument")  # unreachable: names were checked against MarkerSpec's fields


def _check_marker_range(name: str, value: float, bad: BadArgument) -> None:
    """A marker argument that is an option's quantity (processes, threads, ...) takes that option's range."""
    option = MARKER_RANGES.get(name)
    why = RANGES[option].violation(value) if option else None
    if why is not None:
        raise bad(name, why)


#: the marker's and measure()'s arguments that resolve the model's inputs (frameworks/signature.py)
INPUT_ARGUMENTS = ("input_shapes", "input_dtypes", "input_values")


def input_argument(name: str, value: Any) -> Any:
    """One of INPUT_ARGUMENTS, checked and made JSON-ready; a SignatureError says what is wrong in one line."""
    from ..frameworks import signature

    return getattr(signature, f"normalize_{name}")(value)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
