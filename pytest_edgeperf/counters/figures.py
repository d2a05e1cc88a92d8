"""Counts -> figures: per inference ((whole run - load only) / N), means of repeated runs, IPC, and the
Pearson correlation between counter rates and power, aligned in time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

from pytest_edgeperf.counters.events import CountersConfigError
from pytest_edgeperf.counters.parse import STATUS_COUNTED, CounterReading

_UNIT_SUFFIX = {"msec": "ms", "ns": "ns", "us": "us", "sec": "s"}


def metric_name(event: str, unit: str = "") -> str:
    """A baseline-safe name: ``L1-dcache-loads`` -> ``l1_dcache_loads``, ``task-clock`` -> ``task_clock_ms``.

    The unit perf prints joins the name (units in names); modifiers stay (``instructions:u`` counts user space
    only, a different figure from ``instructions``).
    """
    name = re.sub(r"[^0-9a-zA-Z]+", "_", event).strip("_").lower()
    suffix = _UNIT_SUFFIX.get(unit)
    if suffix and not name.endswith("_" + suffix):
        name = f"{name}_{suffix}"
    return name


def _base_event(event: str) -> str:
    """``instructions:u``, ``cpu_core/instructions/`` -> ``instructions``: pairs instructions with cycles."""
    parts = [p for p in event.split(":")[0].split("/") if p]
    return parts[-1] if parts else event


def per_inference(
    window: dict[str, CounterReading],
    inferences: int,
    load_only: dict[str, CounterReading] | None = None,
) -> dict[str, float]:
    """Counts per inference by metric name, as seed 004 computed them: (window - load_only) / N.

    Pass ``load_only`` when ``window`` is a whole run (load + N inferences) and ``load_only`` a run that only
    loaded the model; leave it None when ``window`` already is the timed window. Events not counted in either
    run, or whose difference is negative (estimates noisier than the work), are left out rather than guessed.
    Adds ``ipc`` (instructions / cycles) when both were counted.
    """
    if isinstance(inferences, bool) or not isinstance(inferences, int) or inferences <= 0:
        raise CountersConfigError(f"counters: inference count must be a positive integer, got {inferences!r}")
    out: dict[str, float] = {}
    by_base: dict[str, float] = {}
    for event, reading in window.items():
        if reading.status != STATUS_COUNTED or reading.value is None:
            continue
        value = reading.value
        if load_only is not None:
            base = load_only.get(event)
            if base is None or base.status != STATUS_COUNTED or base.value is None:
                continue
            value -= base.value
        if value < 0:
            continue
        out[metric_name(event, reading.unit)] = value / inferences
        by_base.setdefault(_base_event(event), value)
    instructions, cycles = by_base.get("instructions"), by_base.get("cycles")
    if instructions is not None and cycles:
        out["ipc"] = instructions / cycles
    return out


def mean_readings(runs: Sequence[dict[str, CounterReading]]) -> dict[str, CounterReading]:
    """Average repeated runs event by event (seed 004 averaged 5, since perf gives estimates).

    An event is counted in the mean only if every run counted it; otherwise it keeps the first failing status.
    """
    if not runs:
        return {}
    out: dict[str, CounterReading] = {}
    for event in runs[0]:
        readings = [run.get(event) for run in runs]
        bad = next((r for r in readings if r is None or r.status != STATUS_COUNTED or r.value is None), None)
        first = readings[0]
        assert first is not None
        if bad is not None or any(r is None for r in readings):
            out[event] = bad if bad is not None else first
            continue
        values = [r.value for r in readings if r is not None and r.value is not None]
        pcts = [r.running_pct for r in readings if r is not None and r.running_pct is not None]
        out[event] = CounterReading(event, float(np.mean(values)), STATUS_COUNTED,
                                    min(pcts) if pcts else None, first.unit)
    return out


def pearson_power_counters(
    power: Sequence[tuple[float, float]],
    intervals: Sequence[dict[str, float]],
) -> dict[str, float]:
    """Pearson r between power and each counter rate (seed 004, Table II), aligned in time.

    ``power`` is ``[(t_s, power_w)]`` and ``intervals`` come from :func:`parse_perf_stat_intervals`, both on
    the same clock. Each counter interval is paired with the mean power sampled inside it or, when no sample
    fell inside, power interpolated at its midpoint. Events with fewer than 3 aligned points or a constant
    series on either side are omitted (r is undefined there).
    """
    pts = sorted((float(t), float(p)) for t, p in power if p is not None and math.isfinite(p))
    if len(pts) < 2 or not intervals:
        return {}
    t_arr = np.array([t for t, _ in pts])
    p_arr = np.array([p for _, p in pts])
    aligned_power: list[float | None] = []
    for point in intervals:
        t_end = float(point["t_s"])
        dt = float(point.get("dt_s", 0.0))
        t_start = t_end - dt
        inside = (t_arr > t_start) & (t_arr <= t_end)
        if inside.any():
            aligned_power.append(float(p_arr[inside].mean()))
            continue
        mid = t_end - dt / 2
        aligned_power.append(float(np.interp(mid, t_arr, p_arr)) if t_arr[0] <= mid <= t_arr[-1] else None)
    events = sorted({k for point in intervals for k in point if k not in ("t_s", "dt_s")})
    out: dict[str, float] = {}
    for event in events:
        xs: list[float] = []
        ys: list[float] = []
        for point, pw in zip(intervals, aligned_power, strict=True):
            rate = point.get(event)
            if pw is None or rate is None or not math.isfinite(rate):
                continue
            xs.append(pw)
            ys.append(float(rate))
        if len(xs) < 3 or _constant(xs) or _constant(ys):
            continue
        r = float(scipy_stats.pearsonr(xs, ys).statistic)
        if math.isfinite(r):
            out[event] = r
    return out


def _constant(values: list[float]) -> bool:
    """Constant up to rounding (perf prints rounded stamps, so a steady rate is never bit-identical)."""
    arr = np.asarray(values, dtype=float)
    return float(np.ptp(arr)) <= 1e-9 * float(np.max(np.abs(arr)))
