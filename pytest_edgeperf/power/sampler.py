"""Background power sampling around the timed window, and the idle reading taken before a run.

The sampler takes one reading synchronously in ``start()`` and one in ``stop()``, so a window that lies
between the two calls is always bracketed by samples (the summary interpolates at its edges). A meter that
fails mid-run ends sampling and leaves its message in ``trace.error``; nothing is raised into the caller.
Meters with ``reads_after_run`` (CSV logs) are not polled: ``stop()`` reads the log for the elapsed span.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from pytest_edgeperf.power.base import MeterError, PowerMeter
from pytest_edgeperf.power.trace import PowerTrace

JOIN_TIMEOUT_S = 5.0  # a hung meter read (VISA timeout, stuck vcgencmd) must not hang the session


class PowerSampler:
    """Polls ``meter.read_power_w()`` at ``rate_hz`` on a daemon thread between ``start()`` and ``stop()``."""

    def __init__(self, meter: PowerMeter, rate_hz: float = 10.0) -> None:
        if not rate_hz > 0:
            raise ValueError(f"power sample rate must be > 0 Hz, not {rate_hz!r}")
        self.meter = meter
        self.rate_hz = float(rate_hz)
        self.start_s: float | None = None  # perf_counter at start()/stop()
        self.stop_s: float | None = None
        self.start_unix_s: float | None = None
        self.trace: PowerTrace | None = None
        self._samples: list[tuple[float, float, float]] = []
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample_once(self) -> bool:
        """One reading stamped at the middle of the read; False (and the error kept) when the meter failed."""
        t0 = time.perf_counter()
        try:
            power_w = self.meter.read_power_w()
        except MeterError as exc:
            self._error = str(exc)
            return False
        except Exception as exc:  # a backend bug must not kill the measurement either
            self._error = f"{self.meter.name}: {type(exc).__name__}: {exc}"
            return False
        t1 = time.perf_counter()
        unix_s = time.time()
        mid_s = (t0 + t1) / 2
        self._samples.append((mid_s, unix_s - (t1 - mid_s), float(power_w)))
        return True

    def _run(self) -> None:
        period_s = 1.0 / self.rate_hz
        next_s = time.perf_counter() + period_s
        while not self._stop.wait(max(0.0, next_s - time.perf_counter())):
            if not self._sample_once():
                return
            next_s += period_s
            now_s = time.perf_counter()
            if next_s < now_s:  # the meter is slower than the rate: skip ticks rather than burst
                next_s = now_s + period_s

    def readings_so_far(self) -> list[tuple[float, float]]:
        """``(t_s, power_w)`` read so far (a copy), for correlating with counters while sampling goes on."""
        return [(t, w) for t, _unix, w in list(self._samples)]

    def start(self) -> None:
        """Take the first reading now and start the thread; call before the timed window opens."""
        if self.start_s is not None:
            return
        self.start_s = time.perf_counter()
        self.start_unix_s = time.time()
        if self.meter.reads_after_run:
            return
        if self._sample_once():
            self._thread = threading.Thread(target=self._run, name="edgeperf-power", daemon=True)
            self._thread.start()

    def stop(self) -> PowerTrace:
        """Stop, take a last reading, and return the trace (the same one on repeated calls)."""
        if self.trace is not None:
            return self.trace
        if self.start_s is None:
            self.trace = PowerTrace(self.meter.describe(), [], "power sampler was never started",
                                    self.rate_hz)
            return self.trace
        self._stop.set()
        hung = False
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            hung = self._thread.is_alive()
        if hung and self._error is None:
            self._error = f"{self.meter.name}: a reading took longer than {JOIN_TIMEOUT_S:g} s"
        if self.meter.reads_after_run:
            self.stop_s = time.perf_counter()
            end_unix_s = time.time()
            self.trace = self.meter.read_trace(  # type: ignore[attr-defined]
                self.start_unix_s, end_unix_s, unix_minus_perf_s=end_unix_s - self.stop_s)
            self.trace.rate_hz = None
            return self.trace
        if self._error is None:
            self._sample_once()
        self.stop_s = time.perf_counter()
        self.trace = PowerTrace(self.meter.describe(), list(self._samples), self._error, self.rate_hz)
        return self.trace

    def __enter__(self) -> PowerSampler:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def measure_idle_w(meter: PowerMeter, duration_s: float, rate_hz: float = 10.0) -> float | None:
    """Mean power while nothing runs (seed 001: a Pi 3 idles near 1.3 W); None when it cannot be measured."""
    from pytest_edgeperf.power.summary import time_weighted_mean_w

    sampler = PowerSampler(meter, rate_hz)
    sampler.start()
    time.sleep(max(0.0, duration_s))
    trace = sampler.stop()
    if trace.error or sampler.start_s is None or sampler.stop_s is None:
        return None
    return time_weighted_mean_w(trace, sampler.start_s, sampler.stop_s)
