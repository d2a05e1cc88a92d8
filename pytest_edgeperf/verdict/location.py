"""Between-run location statistics: how far the typical inference time moved from the baseline to this run.

Why not the samples alone: separate runs of one model differ by more than one run's samples show (the machine
drifts, each process lands differently: 1.6-5% sd here, 30-140x one run's standard error), so a rank test on samples
alone is almost always "significant" and the minimum effect alone used to decide (~24% false alarms in
benchmarks/bench_verdict.py). Two things fix it: a measurement is several worker processes, and each process times a
fixed reference model between its samples. The decisive change is that of the trimmed mean of the processes'
fast-half means, each divided by its reference's (the machine's speed cancels), and it must also be significant in a
one-sided Yuen-Welch t-test across the processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgeperf import stats
from pytest_edgeperf.verdict import noise

if TYPE_CHECKING:
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.result import Measured, Result

# Worker processes each side before their spread is tested (a t-test on 2 values says nothing useful).
MIN_PROCESSES = 3
# Share of the processes cut off each end before averaging and testing them (Yuen's trimmed t-test): with the
# default 5 processes, the fastest and the slowest one. In bench_verdict.py one process in 75 ran 20% slower than
# its siblings; untrimmed, that one process hid a 10% regression behind its spread.
PROCESS_TRIM = noise.PROCESS_TRIM


@dataclass
class LocationChange:
    """How far the typical inference time moved, as the verdict decides it (see ``location_change``)."""

    change_pct: float  # change of the fast-half mean (machine-normalised when ``normalized``), percent
    p_value: float | None  # one-sided Yuen-Welch t-test between both sides' processes, None with < 3 a side
    normalized: bool  # divided by the reference model's time on each side
    processes: tuple[int, int]  # (baseline, now)
    scale_now: float = 1.0  # each side's reference time (ms), to scale raw samples for the rank test
    scale_base: float = 1.0
    machine_pct: float | None = None  # how much the reference itself moved (the machine's speed)
    note_flag: str = ""
    raw_change_pct: float | None = None  # the same statistic without the reference (equals change_pct if raw)

    def describe(self) -> str:
        parts = [f"fast-half mean {self.change_pct:+.1f}%"]
        if self.normalized:
            parts[0] += " relative to the machine reference"
            if self.machine_pct is not None:
                parts.append(f"reference {self.machine_pct:+.1f}%")
        if self.processes != (1, 1):
            parts.append(f"processes {self.processes[0]} -> {self.processes[1]}")
        return ", ".join(parts)


def _same_runtime(now: Measured, base: Measured) -> bool:
    """Both sides ran the same runtime version (the machine reference runs in it, so only then does it cancel)."""
    v_now, v_base = now.environment.get("runtime_version"), base.environment.get("runtime_version")
    return v_now is not None and v_base is not None and str(v_now) == str(v_base)


def location_change(current: Result, baseline: BaselineEntry) -> LocationChange:
    """The change the timing verdict decides on, from what both sides have.

    *Machine-normalised* when both sides timed the reference model in the same runtime version: each fast-half
    mean is divided by its own reference's, so a machine that is a few percent slower today (drift, a noisy
    neighbour, a different clock) does not read as a regression, while a slower model does. With a changed runtime
    version the raw times are compared (the reference would hide the runtime's own regression).
    *Per process* when both sides ran >= MIN_PROCESSES worker processes: the change is that of the 20%-trimmed
    mean of the logarithms of the processes' values, and it must also be significant in a one-sided Yuen-Welch
    t-test on them, so the spread between separate runs of the same model (which one run's samples cannot show)
    sets the bar, and one odd process cannot decide alone.
    """
    now, base = current.process_statistics(), baseline.process_statistics()
    same_runtime = _same_runtime(current, baseline)
    have_reference = bool(now) and bool(base) and all(r for _, r in now) and all(r for _, r in base)
    normalized = same_runtime and have_reference
    flag = ""
    if have_reference and not same_runtime:
        flag = ("runtime version changed: timing is compared without the machine reference (it runs in the "
                "same runtime and would hide the runtime's own change)")
    ref_now, ref_base = current.reference_ms, baseline.metrics.get("reference_ms")
    machine_pct = stats.percent_change(ref_base, ref_now) if ref_now and ref_base else None

    def logs(side: list[tuple[float, float | None]], by_reference: bool) -> np.ndarray:
        return np.array([math.log(a / b) if by_reference and b else math.log(a) for a, b in side if a > 0])

    def trimmed_diff(by_reference: bool) -> float:  # the run locations the run-to-run noise is learnt on
        t_now, t_base = noise.run_location(now, by_reference), noise.run_location(base, by_reference)
        return float((t_now or 0.0) - (t_base or 0.0))

    l_now, l_base = logs(now, normalized), logs(base, normalized)
    p_value = None
    if l_now.size >= MIN_PROCESSES and l_base.size >= MIN_PROCESSES:
        diff = trimmed_diff(normalized)
        raw_diff = trimmed_diff(False) if normalized else diff
        first, second = (l_now, l_base) if diff > 0 else (l_base, l_now)
        p_value = stats.welch_greater(first, second, trim=PROCESS_TRIM)
    else:
        lat_now = current.metric_samples("latency_p50_ms")
        lat_base = baseline.metric_samples("latency_p50_ms")
        fh_now, fh_base = stats.fast_half_mean(lat_now), stats.fast_half_mean(lat_base)
        raw_diff = math.log(fh_now / fh_base) if fh_now and fh_base else 0.0
        if normalized and ref_now and ref_base:
            fh_now, fh_base = (fh_now or 0.0) / ref_now, (fh_base or 0.0) / ref_base
        diff = math.log(fh_now / fh_base) if fh_now and fh_base else 0.0
    scale_now = float(ref_now) if normalized and ref_now else 1.0
    scale_base = float(ref_base) if normalized and ref_base else 1.0
    return LocationChange(change_pct=math.expm1(diff) * 100.0, p_value=p_value, normalized=normalized,
                          processes=(max(1, len(base)), max(1, len(now))), scale_now=scale_now,
                          scale_base=scale_base, machine_pct=machine_pct if normalized else None, note_flag=flag,
                          raw_change_pct=math.expm1(raw_diff) * 100.0)
