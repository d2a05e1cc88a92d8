"""Absolute limits a test puts on its own measurement (the marker's ``min_fps``, ``max_latency_ms``, ...).

As in pytest-memray's ``marks.py``, each limit is one function that returns a failure object or None, and the
failure carries its own report text: a line for the test's failure (``long_repr``) and a row of the table below
it (``row``). Every limit checked is kept on the result too (``Result.add_limit``), so each report says FAIL.
A quick run's timing limits are informational: a note, never a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tabulate import tabulate

from .config.marker import MarkerSpec
from .result import Result
from .session import Breach

#: absolute limits on timing: informational in a quick run (memory, accuracy and energy limits still gate)
TIMING_METRICS = ("fps", "latency_p90_ms")


@dataclass(frozen=True)
class LimitFailure:
    """One limit the measurement broke, or could not be checked against (the metric was not measured)."""

    metric: str
    op: str  # ">=" or "<="
    limit: float
    value: float | None

    @property
    def row(self) -> list[str]:
        """This failure's row in the report's table: metric, limit, measured, verdict."""
        if self.value is None:
            return [self.metric, f"{self.op} {self.limit:g}", "not measured", "NOT MEASURED"]
        return [self.metric, f"{self.op} {self.limit:g}", f"{self.value:.4g}", "LIMIT EXCEEDED"]

    @property
    def long_repr(self) -> str:
        """One line for the test's failure."""
        _, limit, measured, _ = self.row
        return f"{self.metric} was limited to {limit} but measured {measured}"


@dataclass
class Figures:
    """What a limit function checks: the result (which keeps every check), its metrics, and whether it was quick."""

    result: Result
    values: dict[str, float]
    quick: bool


def _check(figures: Figures, metric: str, op: str, limit: float | None) -> LimitFailure | None:
    """``metric`` against ``limit`` (None: the marker sets none), kept on the result; the failure or None."""
    if limit is None:
        return None
    value = figures.values.get(metric)
    if figures.quick and metric in TIMING_METRICS and value is not None:
        # a smoke run's timing is informational: a note, and no limit a report would call FAIL
        if not (value >= limit if op == ">=" else value <= limit):
            figures.result.notes.append(f"quick run: {metric} {value:.4g} outside the limit {op} {limit:g} "
                                         "(informational only)")
        return None
    if figures.result.add_limit(metric, op, limit, value):
        return None
    return LimitFailure(metric, op, limit, value)


def min_fps(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``min_fps``: throughput (inferences per second) at least this."""
    return _check(figures, "fps", ">=", spec.min_fps)


def max_latency(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``max_latency_ms``: the 90th percentile latency at most this."""
    return _check(figures, "latency_p90_ms", "<=", spec.max_latency_ms)


def max_memory(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``max_memory_mb``: the worker's peak memory at most this."""
    return _check(figures, "peak_memory_mb", "<=", spec.max_memory_mb)


def min_top1(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``min_top1_pct``: top-1 accuracy on the evaluation set at least this."""
    return _check(figures, "top1_pct", ">=", spec.min_top1_pct)


def min_top5(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``min_top5_pct``: top-5 accuracy at least this."""
    return _check(figures, "top5_pct", ">=", spec.min_top5_pct)


def min_map50(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``min_map50_pct``: detection mAP at IoU 0.5 at least this."""
    return _check(figures, "map50_pct", ">=", spec.min_map50_pct)


def max_energy(spec: MarkerSpec, figures: Figures) -> LimitFailure | None:
    """``max_energy_per_inference_mj``: energy per inference at most this; checked only where power was measured
    (without a power meter there is no energy to limit)."""
    energy_j = figures.values.get("energy_per_inference_j")
    if spec.max_energy_per_inference_mj is None or energy_j is None:
        return None
    figures.values["energy_per_inference_mj"] = energy_j * 1e3
    return _check(figures, "energy_per_inference_mj", "<=", spec.max_energy_per_inference_mj)


#: every limit, in the order the report's table lists them
LIMITS: tuple[Callable[[MarkerSpec, Figures], LimitFailure | None], ...] = (
    min_fps, max_latency, max_memory, min_top1, min_top5, min_map50, max_energy)


def limits_breach(result: Result, failures: list[LimitFailure]) -> Breach:
    """The test's failure: the first broken limit in its title, every one in the table below."""
    table = tabulate([f.row for f in failures], headers=["metric", "limit", "measured", "verdict"], tablefmt="simple")
    return Breach(f"{result.framework} on {result.model}: {failures[0].long_repr}", table)
