"""Owns the join of power readings onto the sensor timeline, so one chart can show temperature, clock and power.

Each timeline point takes the nearest power reading; a point farther than one sampling period from any reading
(after the meter vanished) stays empty rather than invented. With no sensor timeline the readings become it.
"""

from __future__ import annotations

import numpy as np

from pytest_edgeperf.power.trace import PowerTrace
from pytest_edgeperf.result import TimelinePoint


def join_power(timeline: list[TimelinePoint], trace: PowerTrace) -> list[TimelinePoint]:
    """``timeline`` with ``power_w`` filled in place from ``trace`` (or the readings as points, if it is empty)."""
    points = sorted(trace.samples)
    if points and timeline:
        times = np.array([p[0] for p in points])
        rate_hz = trace.rate_hz
        gaps = np.diff(times)
        period_s = float(np.median(gaps)) if gaps.size else (1.0 / rate_hz if rate_hz else 1.0)
        if rate_hz:
            period_s = max(period_s, 1.0 / rate_hz)
        for tp in timeline:
            i = int(np.clip(np.searchsorted(times, tp.t_s), 1, len(points) - 1)) if len(points) > 1 else 0
            if i > 0 and abs(times[i - 1] - tp.t_s) <= abs(times[i] - tp.t_s):
                i -= 1
            if abs(times[i] - tp.t_s) <= period_s:
                tp.power_w = float(points[i][2])
        return timeline
    if points:
        return [TimelinePoint(t_s=p[0], power_w=p[2]) for p in points]
    return timeline
