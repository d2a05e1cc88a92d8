"""The one set of rules for every stored number: the reader applies them, and every write is checked with them.

A zero, negative or absurd time never reaches the verdict (it divides and takes logarithms of these), and an update
never writes what the next run refuses.
"""

from __future__ import annotations

import fnmatch
import json
import math
from typing import Any

from ..errors import EdgeperfError


class BaselineError(EdgeperfError, ValueError):
    """A baseline file or directory a user must fix; the message is one line naming the file."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


#: no stored figure is larger than this in magnitude (a counter per inference of a big model is ~1e11)
MAX_MAGNITUDE = 1e15
#: one inference's time in ms: from a nanosecond to ~11 days (the verdict divides and takes logarithms of these)
TIME_MS_RANGE = (1e-6, 1e9)
#: inferences per second, the inverse range
RATE_RANGE = (1e-6, 1e9)
PERCENT_RANGE = (0.0, 100.0)
NON_NEGATIVE_RANGE = (0.0, MAX_MAGNITUDE)
ANY_RANGE = (-MAX_MAGNITUDE, MAX_MAGNITUDE)
_TIMES_MS = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "reference_ms")
#: metric name or fnmatch pattern -> allowed closed range; a metric of a test's own (``add_metric``) not named here
#: only has to be finite and within MAX_MAGNITUDE (``model_memory_mb`` is a difference and may be negative)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "fps": RATE_RANGE,
    **dict.fromkeys(_TIMES_MS, TIME_MS_RANGE),
    **dict.fromkeys(("top1_pct", "top5_pct", "map50_pct", "cpu_wait_pct"), PERCENT_RANGE),
    **dict.fromkeys(("first_inference_ms", "preprocess_p50_ms", "inference_p50_ms", "load_time_s", "peak_memory_mb",
                     "cpu_percent", "power_mean_w", "energy_per_inference_j", "fom_*_per_j", "*_per_inference"),
                    NON_NEGATIVE_RANGE),
}
#: raw sample lists (and the same keys in ``history``): per-inference and per-process times, all positive
SAMPLE_RANGES: dict[str, tuple[float, float]] = dict.fromkeys(
    ("latency_ms", "process_latency_ms", "process_reference_ms"), TIME_MS_RANGE)


def metric_range(name: str) -> tuple[float, float]:
    """The closed range a stored metric must lie in (exact name first, then a pattern)."""
    if name in METRIC_RANGES:
        return METRIC_RANGES[name]
    for pattern, bounds in METRIC_RANGES.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return bounds
    return ANY_RANGE


def _out_of_range(value: Any, bounds: tuple[float, float]) -> bool:
    return not (_is_number(value) and bounds[0] <= value <= bounds[1])


def _range_text(bounds: tuple[float, float]) -> str:
    return f"a finite number from {bounds[0]:g} to {bounds[1]:g}"


def _check_list(where: str, values: Any, bounds: tuple[float, float]) -> None:
    if not isinstance(values, list):
        raise BaselineError(f"{where} must be a list of numbers, got {type(values).__name__}")
    for value in values:
        if _out_of_range(value, bounds):
            raise BaselineError(f"{where} holds {_shown(value)}; each value must be {_range_text(bounds)}")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _check_history_item(where: str, item: Any) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("recorded_at"), str):
        raise BaselineError(f"{where} must be an object with 'recorded_at' (a string) and 'process_latency_ms'")
    if not item.get("process_latency_ms"):
        raise BaselineError(f"{where} must have 'process_latency_ms', a non-empty list of times")
    for key in ("process_latency_ms", "process_reference_ms"):
        if key in item:
            _check_list(f"{where}: {key!r}", item[key], SAMPLE_RANGES[key])


def _is_number(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False
