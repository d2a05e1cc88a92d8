"""The counter session: ``perf stat`` attached to the worker for the timed window, reduced to a JSON report."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_edgeperf.counters.events import (
    DEFAULT_EVENTS,
    MIN_INTERVAL_MS,
    SENTINEL_EVENT,
    CountersConfigError,
    validate_events,
)
from pytest_edgeperf.counters.figures import pearson_power_counters, per_inference
from pytest_edgeperf.counters.parse import (
    STATUS_NOT_COUNTED,
    STATUS_NOT_SUPPORTED,
    parse_perf_stat_csv,
    parse_perf_stat_intervals,
)
from pytest_edgeperf.counters.process import PerfProcess, _make_runner


class CounterSession(PerfProcess):
    """``perf stat`` attached to the worker for the timed window; :meth:`stop` returns a JSON-able report.

    Usage: ``s = CounterSession(); ok, why = s.available(); s.start(worker_pid); ...; report = s.stop(n)``; or, as
    an instrument (instruments.py), given the pid and where the count comes from when built: ``CounterSession(pid=p,
    inferences=lambda: n)``, then ``start()`` and ``stop()``.
    The software event ``task-clock`` is always added: it is countable wherever perf runs, so the report shows
    the attach worked (and CPU ms per inference) even where every hardware event is ``<not supported>``.
    """

    _probe_cache: dict[tuple[str, tuple[str, ...]], tuple[bool, str, tuple[str, ...]]] = {}  # noqa: RUF012

    def __init__(
        self,
        perf: str = "perf",
        events: Sequence[str] = DEFAULT_EVENTS,
        interval_ms: int | None = 100,
        attach_timeout_s: float = 2.0,
        stop_timeout_s: float = 5.0,
        *,
        pid: int | None = None,
        inferences: Callable[[], int] | None = None,
        power: Callable[[], Sequence[tuple[float, float]]] | None = None,
    ) -> None:
        """``pid``, ``inferences``, ``power``: what ``start()`` and ``stop()`` use when not given it themselves."""
        super().__init__(perf, attach_timeout_s)
        self.attach_pid = pid
        self.count_inferences = inferences
        self.read_power = power
        self.events = validate_events(events)
        if SENTINEL_EVENT not in self.events:
            self.events = (*self.events, SENTINEL_EVENT)
        if interval_ms is not None and (isinstance(interval_ms, bool) or not isinstance(interval_ms, int)
                                        or interval_ms < MIN_INTERVAL_MS):
            raise CountersConfigError(
                f"counter interval: {interval_ms!r} ms is invalid (an integer >= {MIN_INTERVAL_MS}, or None)")
        self.interval_ms = interval_ms
        self.stop_timeout_s = stop_timeout_s
        self._out_path: Path | None = None
        self._pid: int | None = None
        self._started_s: float | None = None

    def available(self) -> tuple[bool, str]:
        """Whether perf runs here with these events (cached per perf path and event list), and why not."""
        key = (self.perf, self.events)
        if key not in self._probe_cache:
            self._probe_cache[key] = self._probe()
        ok, why, _unsupported = self._probe_cache[key]
        return ok, why

    def _probe(self) -> tuple[bool, str, tuple[str, ...]]:
        path = self._resolve()
        if path is None:
            return False, "perf not found", ()
        argv = [path, "stat", "-x,", "--log-fd", "1", "-e", ",".join(self.events), "true"]
        outcome = _make_runner(5.0).run_detailed(argv)  # says why a command gave nothing
        out, detail = outcome.stdout, outcome.detail
        if out is None:
            why = detail or "no kernel support, no permission or an unknown event"
            return False, f"perf stat failed here: {why}", ()
        readings = parse_perf_stat_csv(out)
        if not readings:
            return False, "perf stat printed no counts", ()
        unsupported = tuple(e for e, r in readings.items() if r.status == STATUS_NOT_SUPPORTED)
        if len(unsupported) == len(readings):
            return False, "perf runs but supports none of the events here", unsupported
        if unsupported:
            return True, f"perf works; not supported here: {', '.join(unsupported)}", unsupported
        return True, "perf works; all events supported", unsupported

    def start(self, pid: int | None = None) -> None:
        """Attach ``perf stat -x, -p PID`` and return once it is counting (bounded wait); raises only without a pid."""
        pid = self._pid = self._begin(pid, "counter session")
        self._started_s = time.perf_counter()
        path = self._perf_and_tmpdir("no counters", "edgeperf-counters-")
        if path is None:
            return
        self._out_path = self._tmpdir / "perf-stat.csv"
        argv = [path, "stat", "-x,", "-e", ",".join(self.events), "-p", str(pid), "-o", str(self._out_path)]
        if self.interval_ms is not None:
            argv += ["-I", str(self.interval_ms)]
        self._launch(argv, self._out_path)

    def stop(self, inferences: int | None = None, power: Sequence[tuple[float, float]] | None = None) -> dict[str, Any]:
        """Stop perf and reduce its counts to a JSON-able report. Never raises: failures become notes.

        ``{"events": {name: {"value", "status", "running_pct", "unit"}}, "unsupported": [...], "not_counted":
        [...], "per_inference": {metric_name: value}, "ipc": x | None, "intervals": [{"t_s", "dt_s", event:
        rate_per_s}], "pearson_power": {event: r}, "inferences": n, "notes": [...]}``. ``intervals[*].t_s``
        is on this process's ``time.perf_counter`` clock; pass ``power`` ``[(t_s, power_w)]`` on the same
        clock, sampled over the same window, to fill ``pearson_power``. Not given, they come from the callables
        given when it was built (no count: 0).
        """
        if inferences is None:
            inferences = self.count_inferences() if self.count_inferences is not None else 0
        if power is None and self.read_power is not None:
            power = self.read_power()
        report: dict[str, Any] = {"tool": "perf stat", "events": {}, "unsupported": [], "not_counted": [],
                                  "per_inference": {}, "ipc": None, "intervals": [], "pearson_power": {},
                                  "inferences": inferences, "notes": []}
        try:
            self._finish(self.stop_timeout_s)
            text = ""
            if self._out_path is not None:
                with contextlib.suppress(OSError):
                    text = self._out_path.read_text(errors="replace")
            self._fill(report, text, inferences)
            if power and report["intervals"]:
                report["pearson_power"] = pearson_power_counters(power, report["intervals"])
        except Exception as exc:  # the report must survive anything perf or the file system throws at us
            self.notes.append(f"counter report failed: {type(exc).__name__}: {exc}")
        finally:
            self._cleanup()
            self._out_path = None
        report["notes"] = list(self.notes)
        return report

    def _fill(self, report: dict[str, Any], text: str, inferences: int) -> None:
        if self._started_s is None:
            self.notes.append("counter session was never started")
            return
        readings = parse_perf_stat_csv(text)
        if not readings:
            if text.strip() or self._out_path is not None:
                self.notes.append("perf produced no counts")
            return
        report["events"] = {e: r.to_json() for e, r in readings.items()}
        report["unsupported"] = [e for e, r in readings.items() if r.status == STATUS_NOT_SUPPORTED]
        report["not_counted"] = [e for e, r in readings.items() if r.status == STATUS_NOT_COUNTED]
        if report["unsupported"]:
            self.notes.append(f"not supported on this machine: {', '.join(report['unsupported'])}")
        if report["not_counted"]:
            self.notes.append("not counted (the task never ran while watched): "
                              + ", ".join(report["not_counted"]))
        multiplexed = [e for e, r in readings.items() if r.running_pct is not None and r.running_pct < 99.5]
        if multiplexed:
            self.notes.append("multiplexed (scaled estimates): " + ", ".join(
                f"{e} {readings[e].running_pct:.0f}%" for e in multiplexed))
        if isinstance(inferences, int) and not isinstance(inferences, bool) and inferences > 0:
            figures = per_inference(readings, inferences)
            report["ipc"] = figures.pop("ipc", None)
            report["per_inference"] = figures
        else:
            self.notes.append(f"no per-inference figures: inference count {inferences!r}")
        if self.interval_ms is not None:
            t0 = self.attached_at_s if self.attached_at_s is not None else self._started_s
            report["intervals"] = parse_perf_stat_intervals(text, t0_s=t0)
