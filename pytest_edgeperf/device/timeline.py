"""Owns the timeline sampler (clock, temperature, throttle bits, CPU% while timing) and sample validity.

Timestamps are ``time.perf_counter()``, which on Linux is CLOCK_MONOTONIC and so shared with the worker
process that stamps its samples with perf_counter too: a timeline point and a timed sample can be compared
directly. ``invalidate_samples`` then marks every timed sample that overlaps a bad period (clock below the
floor, or a throttle bit active now) so statistics only see samples taken at full speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import psutil

from pytest_edgeperf.device.readers import THROTTLE_NOW_MASK, DeviceReaders
from pytest_edgeperf.result import Samples, TimelinePoint

#: Readings that start a process (vcgencmd: ~1-40 ms each) are spaced so that one is running at most this
#: fraction of the time: the sampler's cost on the measurement stays bounded whatever a call costs on this
#: board. File readings (cpufreq, the sysfs throttle word) are cheap and taken at every tick.
COMMAND_BUDGET = 0.03
#: CPU use is measured over at least this long. The kernel counts a process's CPU time in clock ticks (10 ms at
#: USER_HZ 100): over the 1-2 ms between the last tick and the closing point one tick read as 600% on a 2-core
#: machine (and no tick as 0%). Over 40 ms a tick is at most 25% of one core.
MIN_CPU_INTERVAL_S = 0.04

REASON_CLOCK = "clock below floor"
REASON_THROTTLED = "throttled"


class TimelineSampler:
    """A daemon thread that reads the device ``rate_hz`` times a second until ``stop()``.

    ``cpu_percent`` is the CPU use of process ``pid`` up to this point, since the latest earlier point at least
    ``MIN_CPU_INTERVAL_S`` before it (usually the previous one): 100 = one core, at most the usable cores x 100;
    None without a pid, once the process is gone, or in the first ``MIN_CPU_INTERVAL_S``. ``power_w`` comes from
    ``power_reader`` when given (power helper).
    A point is taken at ``start()`` and at ``stop()`` so the timeline brackets the timed window.

    Temperature is read at most every ``temp_period_s`` (other points have ``temp_c=None``): the SoC temperature
    changes over seconds. Readings that start ``vcgencmd`` share a budget (``COMMAND_BUDGET`` of the wall time),
    so on a board where a call is slow they are spaced out and the cheap file readings (cpufreq, the sysfs
    throttle word) fill the ticks between them; validity then rests on the readings actually taken.
    """

    def __init__(
        self,
        readers: DeviceReaders,
        rate_hz: float = 10.0,
        pid: int | None = None,
        power_reader: Callable[[], float | None] | None = None,
        temp_period_s: float = 1.0,
        command_budget: float = COMMAND_BUDGET,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"--edgeperf-sample-rate must be > 0 Hz, got {rate_hz}")
        self.readers = readers
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self.pid = pid
        self.power_reader = power_reader
        self.temp_period_s = float(temp_period_s)
        self._next_temp_t = -float("inf")
        self.command_budget = float(command_budget)
        self._next_command_t = -float("inf")
        self._arm_clock_works = False
        self.command_s = 0.0  # wall time spent in readings that start a process, and the longest one
        self.command_max_s = 0.0
        self.points: list[TimelinePoint] = []
        self.errors: list[str] = []  # first few unexpected reader errors, for the report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: psutil.Process | None = None
        self._cpu_refs: list[tuple[float, float]] = []  # (perf_counter, process CPU seconds) of recent points
        self._cores = 1

    # --- one reading -------------------------------------------------------------------------------------
    def _cpu_percent(self) -> float | None:
        if self._proc is None:
            return None
        try:
            times = self._proc.cpu_times()
        except (psutil.Error, OSError):
            self._proc = None  # the worker is gone: stop asking
            return None
        now, cpu_s = time.perf_counter(), float(times.user + times.system)
        ref = next((r for r in reversed(self._cpu_refs) if now - r[0] >= MIN_CPU_INTERVAL_S), None)
        kept = [r for r in self._cpu_refs if ref is None or r[0] >= ref[0]]
        if len(kept) > 16:  # bounded; the oldest stays, so a value comes once it is MIN_CPU_INTERVAL_S old
            kept = [kept[0], *kept[-15:]]
        self._cpu_refs = [*kept, (now, cpu_s)]
        if ref is None:
            return None
        return min(100.0 * (cpu_s - ref[1]) / (now - ref[0]), 100.0 * self._cores)

    def _guarded(self, fn: Callable[[], float | int | None]) -> float | int | None:
        try:
            return fn()
        except Exception as exc:  # a reader must never kill the timeline
            if len(self.errors) < 5:
                self.errors.append(f"{getattr(fn, '__name__', fn)}: {exc!r}")
            return None

    def _clock(self, full: bool) -> float | None:
        """The actual ARM clock when vcgencmd gives it, else cpufreq; never both in one timeline.

        cpufreq shows the kernel's request, which stays high while the firmware throttles, so a tick that the
        command budget keeps cheap is left empty (None) rather than filled with a cpufreq value that could hide
        a drop.
        """
        if full:
            arm = self._guarded(self.readers.arm_clock_ghz)
            if arm is not None:
                self._arm_clock_works = True
                return float(arm)
        if self._arm_clock_works:
            return None
        freqs = self._guarded(self.readers.cpu_freqs_ghz)  # type: ignore[arg-type]
        return max(freqs.values()) if freqs else None  # type: ignore[union-attr]

    def _throttled_raw(self, full: bool) -> int | None:
        state = self._guarded(self.readers.throttled_sysfs)  # type: ignore[arg-type]
        if state is None and full:
            state = self._guarded(self.readers.throttled_vcgencmd)  # type: ignore[arg-type]
        return None if state is None else state.raw  # type: ignore[union-attr]

    def sample_once(self, first: bool = False, force: bool = False) -> TimelinePoint:
        """Take one point now. A *full* tick also runs the readings that start a process (vcgencmd); it is
        taken when forced (first and closing points) or when the command budget allows, else a *cheap* tick
        reads files only and leaves the rest None."""
        t_s = time.perf_counter()
        full = force or first or t_s >= self._next_command_t
        temp_c = None
        if full and t_s >= self._next_temp_t:
            self._next_temp_t = t_s + self.temp_period_s
            temp_c = self._guarded(self.readers.temperature_c)
        freq = self._clock(full)
        throttled = self._throttled_raw(full)
        if full:
            cost_s = time.perf_counter() - t_s
            self.command_s += cost_s
            self.command_max_s = max(self.command_max_s, cost_s)
            self._next_command_t = t_s + cost_s / self.command_budget
        point = TimelinePoint(
            t_s=t_s,
            freq_ghz=freq,
            temp_c=temp_c,  # type: ignore[arg-type]
            throttled=throttled,
            cpu_percent=None if first else self._cpu_percent(),
            power_w=None if self.power_reader is None else self._guarded(self.power_reader),
        )
        self.points.append(point)
        return point

    # --- thread ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("TimelineSampler.start() called twice")
        if self.pid is not None:
            try:
                self._proc = psutil.Process(self.pid)
                self._cores = _usable_cores(self._proc)
                self._cpu_percent()  # the reference the first value is measured from
            except (psutil.Error, OSError):
                self._proc = None
        self.sample_once(first=True)
        self._thread = threading.Thread(target=self._run, name="edgeperf-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = time.perf_counter() + self.period_s
        while not self._stop.wait(max(0.0, next_t - time.perf_counter())):
            self.sample_once()
            now = time.perf_counter()
            next_t += self.period_s
            if next_t < now:  # a slow reading: skip missed ticks instead of bursting to catch up
                next_t = now + self.period_s

    def stop(self) -> list[TimelinePoint]:
        """Stop the thread, take a closing point and return the timeline (sorted by ``t_s``)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.sample_once(force=True)
        return self.points


def _usable_cores(proc: psutil.Process) -> int:
    """The cores the process may run on (its affinity), the most CPU it can use: cores x 100%."""
    try:
        return max(1, len(proc.cpu_affinity()))
    except (AttributeError, psutil.Error, OSError):  # no affinity on this platform
        return max(1, psutil.cpu_count() or 1)


def invalidate_samples(
    samples: Samples, timeline: list[TimelinePoint], floor_ghz: float | None, sample_period_s: float
) -> dict[str, int]:
    """Mark timed samples that overlap a bad period invalid; returns how many samples each reason hit.

    Rule: a bad reading at ``t`` says the device was bad at ``t``; it may have turned bad just after the
    previous reading and stayed bad until just before the next one. So the bad period is ``t`` +- one
    ``sample_period_s``, clipped to the neighbouring readings of the same quantity (which were taken and say
    what the state was there). That is wider than +- half a period: a throttled sample costs a wrong baseline,
    a dropped good one only costs one sample. A sample ``[start_s, start_s + latency_s]`` is invalid when it
    overlaps a bad period. Missing readings (None) never invalidate. A sample hit by both reasons is counted
    under both; ``samples.valid`` gets False, samples already invalid stay invalid.
    """
    n = len(samples.latency_s)
    counts = {REASON_CLOCK: 0, REASON_THROTTLED: 0}
    if n == 0:
        return counts
    start = np.asarray(samples.start_s, dtype=float)
    end = start + np.asarray(samples.latency_s, dtype=float)
    valid = np.asarray(samples.valid, dtype=bool) if len(samples.valid) == n else np.ones(n, dtype=bool)
    if timeline:
        t = np.array([p.t_s for p in timeline], dtype=float)
        freq = np.array([np.nan if p.freq_ghz is None else p.freq_ghz for p in timeline], dtype=float)
        thr = np.array([-1 if p.throttled is None else int(p.throttled) for p in timeline], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        t, freq, thr = t[order], freq[order], thr[order]
        reasons = [(REASON_THROTTLED, thr >= 0, (thr >= 0) & ((thr & THROTTLE_NOW_MASK) != 0))]
        if floor_ghz is not None:
            known = ~np.isnan(freq)
            reasons.insert(0, (REASON_CLOCK, known, known & (freq < floor_ghz)))
        for reason, known, bad in reasons:
            # readings of one quantity may be sparser than the ticks (the command budget spaces vcgencmd out):
            # a bad reading then covers up to the gap between that quantity's own readings
            qt = t[known]
            period = max(float(sample_period_s), float(np.diff(qt).max()) if qt.size > 1 else 0.0)
            hit = _overlaps(start, end, qt, bad[known], period)
            counts[reason] = int(hit.sum())
            valid &= ~hit
    samples.valid = valid.tolist()
    return counts


def effective_period_s(timeline: list[TimelinePoint], nominal_s: float) -> float:
    """The sampling period to judge validity by: the nominal one, or the longest gap actually seen if longer.

    A slow reader (a ``vcgencmd`` spawn on a busy device, a hung sensor) stretches the gaps between points
    beyond ``1 / rate_hz``; with the nominal period a bad state seen at one point would then cover too short
    an interval, and samples taken just before or after it (still throttled) would count as valid.
    """
    t = np.sort(np.array([p.t_s for p in timeline], dtype=float))
    longest = float(np.diff(t).max()) if t.size > 1 else 0.0
    return max(float(nominal_s), longest)


def achieved_rate_hz(timeline: list[TimelinePoint]) -> float | None:
    """Points per second actually taken (None with fewer than two points)."""
    if len(timeline) < 2:
        return None
    t = [p.t_s for p in timeline]
    span = max(t) - min(t)
    return (len(t) - 1) / span if span > 0 else None


def _overlaps(
    start: np.ndarray, end: np.ndarray, t: np.ndarray, bad: np.ndarray, period_s: float
) -> np.ndarray:
    """Boolean per sample: does ``[start, end]`` meet a bad period (see ``invalidate_samples``)?"""
    if not bad.any():
        return np.zeros(start.shape, dtype=bool)
    prev_t = np.concatenate(([-np.inf], t[:-1]))
    next_t = np.concatenate((t[1:], [np.inf]))
    lo = np.maximum(t - period_s, prev_t)[bad]
    hi = np.minimum(t + period_s, next_t)[bad]
    # Intervals sorted by lo; for each sample, the intervals starting before its end are a prefix, and the
    # sample meets one of them iff the largest ``hi`` of that prefix lies after the sample's start.
    order = np.argsort(lo, kind="stable")
    lo, hi_max = lo[order], np.maximum.accumulate(hi[order])
    k = np.searchsorted(lo, end, side="left") - 1  # last interval with lo < end
    has = k >= 0
    hit = np.zeros(start.shape, dtype=bool)
    hit[has] = hi_max[k[has]] > start[has]
    return hit
