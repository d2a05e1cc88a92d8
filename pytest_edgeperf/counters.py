"""Owns hardware counters per inference: `perf stat` parsing, the attached session, power/counter correlation.

Seed 004 explains why frameworks differ on one model through PMU events counted with ``perf stat`` and reduced
to per-image figures as (whole run - model load only) / N; it also finds that power tracks instructions/s and
L1-d loads/s (Pearson 0.66-0.95). Here the parent attaches ``perf stat -p`` to the worker for the timed window
only, so the load phase is already outside the count; :func:`per_inference` also does the seed's subtraction
for users who bring whole-run and load-only counts. Nothing in this module raises at run time because a
machine cannot count: unsupported events (this x86 VM: all hardware events) are listed and the caller goes on.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from pytest_edgeperf.device.runner import CommandRunner

#: Seed 004's events (L2 loads have no generic perf name: ``cache-references`` is the nearest portable one).
DEFAULT_EVENTS: tuple[str, ...] = (
    "instructions",
    "cycles",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "cache-references",
    "cache-misses",
    "branch-misses",
    "branches",
)

#: A software event counted everywhere perf runs: proves the attach worked and gives CPU ms per inference.
SENTINEL_EVENT = "task-clock"

#: Counter metrics live in ``Result.counters["per_inference"]``; fewer is better for every one of them.
COUNTER_METRIC_DIRECTION = "lower"

#: perf refuses (or misbehaves with) shorter print intervals.
MIN_INTERVAL_MS = 10

Status = Literal["counted", "not supported", "not counted"]
STATUS_COUNTED: Status = "counted"
STATUS_NOT_SUPPORTED: Status = "not supported"
STATUS_NOT_COUNTED: Status = "not counted"

_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:/=@-]+$")
_UNIT_SUFFIX = {"msec": "ms", "ns": "ns", "us": "us", "sec": "s"}


class CountersConfigError(ValueError):
    """A user-given counter setting (event list, interval) is invalid; the message names it."""


@dataclass(frozen=True)
class CounterReading:
    """One event's count over a window; ``value`` is perf's multiplex-scaled estimate, None unless counted."""

    event: str
    value: float | None
    status: Status
    running_pct: float | None
    unit: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "status": self.status, "running_pct": self.running_pct,
                "unit": self.unit}


# --- parsing---
@dataclass(frozen=True)
class _Row:
    t_s: float | None
    reading: CounterReading


def _to_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_rows(text: str) -> list[_Row]:
    """Every event line of ``perf stat -x,`` output; comments, blanks and perf's chatter are skipped.

    CSV fields are ``[time,]value,unit,event,run_time,running_pct,metric,metric_unit``; the interval form adds
    the leading time stamp (seconds since counting started).
    """
    rows: list[_Row] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        t_s: float | None = None
        # interval form iff a time stamp precedes the value (a plain line's 2nd field is a unit, not a number)
        if len(fields) >= 4 and _to_float(fields[0]) is not None and _is_number_or_marker(fields[1]):
            t_s = _to_float(fields[0])
            fields = fields[1:]
        if len(fields) < 3:
            continue
        value_text, unit, event = fields[0], fields[1], fields[2]
        if not event or _is_number_or_marker(event):
            continue
        running_pct = _to_float(fields[4]) if len(fields) > 4 and fields[4] else None
        if value_text == "<not supported>":
            reading = CounterReading(event, None, STATUS_NOT_SUPPORTED, None, unit)
        elif value_text == "<not counted>":
            reading = CounterReading(event, None, STATUS_NOT_COUNTED, None, unit)
        else:
            value = _to_float(value_text)
            if value is None:
                continue
            reading = CounterReading(event, value, STATUS_COUNTED, running_pct, unit)
        rows.append(_Row(t_s, reading))
    return rows


def _is_number_or_marker(text: str) -> bool:
    return text.startswith("<") or _to_float(text) is not None


def parse_perf_stat_csv(text: str) -> dict[str, CounterReading]:
    """Totals per event from ``perf stat -x,`` output, plain or interval (``-I ms``) form.

    In interval form each line is that interval's delta, so counted intervals are summed; an event is
    "counted" when any interval counted it (``<not counted>`` there means the task did not run), and its
    ``running_pct`` is the lowest seen (the most multiplexed interval bounds the estimate's quality).
    """
    totals: dict[str, CounterReading] = {}
    for row in _parse_rows(text):
        r = row.reading
        prev = totals.get(r.event)
        if prev is None:
            totals[r.event] = r
            continue
        if r.status == STATUS_COUNTED and prev.status == STATUS_COUNTED:
            pcts = [p for p in (prev.running_pct, r.running_pct) if p is not None]
            totals[r.event] = CounterReading(
                r.event, (prev.value or 0.0) + (r.value or 0.0), STATUS_COUNTED, min(pcts) if pcts else None,
                prev.unit or r.unit)
        elif r.status == STATUS_COUNTED or (prev.status == STATUS_NOT_COUNTED
                                           and r.status == STATUS_NOT_SUPPORTED):
            totals[r.event] = r
    return totals


def parse_perf_stat_intervals(text: str, t0_s: float = 0.0) -> list[dict[str, float]]:
    """Per-interval rates from ``perf stat -x, -I ms`` output: ``[{"t_s", "dt_s", event: count_per_s}]``.

    ``t_s`` is the interval's end on the caller's clock (``t0_s`` + perf's relative stamp) so the rates can
    be aligned with power samples; events not counted in an interval are left out of that interval.
    """
    by_t: dict[float, dict[str, float]] = {}
    for row in _parse_rows(text):
        if row.t_s is None:
            continue
        point = by_t.setdefault(row.t_s, {})
        if row.reading.status == STATUS_COUNTED and row.reading.value is not None:
            point[row.reading.event] = row.reading.value
    out: list[dict[str, float]] = []
    prev_t = 0.0
    for t_rel in sorted(by_t):
        dt = t_rel - prev_t
        prev_t = t_rel
        if dt <= 0:
            continue
        point = {"t_s": t0_s + t_rel, "dt_s": dt}
        for event, count in by_t[t_rel].items():
            point[event] = count / dt
        out.append(point)
    return out


# --- arithmetic -----------------------------------------------------------------------------------
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


# --- correlation ----------------------------------------------------------------------------------
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


# --- running perf ---------------------------------------------------------------------------------
def _make_runner(timeout_s: float) -> CommandRunner:
    return CommandRunner(timeout_s=timeout_s)


def validate_events(events: Sequence[str], source: str = "counter events") -> tuple[str, ...]:
    """Check a user's event list before perf sees it; the message names the offending entry."""
    if isinstance(events, str):
        events = [e for e in events.split(",")]
    cleaned = tuple(e.strip() for e in events)
    if not cleaned:
        raise CountersConfigError(f"{source}: the event list is empty")
    for event in cleaned:
        if not event or not _EVENT_NAME.match(event):
            raise CountersConfigError(f"{source}: {event!r} is not a perf event name (see `perf list`)")
    return cleaned


def _perf_event_fds(pid: int) -> int:
    """How many perf_event file descriptors a process holds: >0 once perf has opened its counters."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]":
                    count += 1
    return count


def _has_data_line(path: Path) -> bool:
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return True
    return False


def _tail(path: Path | None, lines: int = 3) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return " | ".join(text[-lines:])
    return ""


def _interrupt(proc: subprocess.Popen[bytes], wait_s: float) -> str | None:
    """SIGINT (perf prints its counts / finishes perf.data), then escalate; returns a note if it had to."""
    if proc.poll() is not None:
        return None
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=wait_s)
        return None
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=1.0)
        return f"perf ignored SIGINT for {wait_s:.0f} s and was terminated"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"perf ignored SIGINT and SIGTERM and was killed after {wait_s + 1:.0f} s"


class PerfProcess:
    """Shared plumbing: start perf without a shell, wait (bounded) until it is attached, stop it politely."""

    def __init__(self, perf: str, attach_timeout_s: float) -> None:
        self.perf = perf
        self.attach_timeout_s = attach_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_path: Path | None = None
        self._tmpdir: Path | None = None
        self.notes: list[str] = []
        self.attached_at_s: float | None = None

    def _resolve(self) -> str | None:
        return shutil.which(self.perf)

    def _launch(self, argv: list[str], watch_file: Path | None) -> bool:
        assert self._tmpdir is not None
        self._stderr_path = self._tmpdir / "perf.stderr"
        try:
            with open(self._stderr_path, "wb") as err:
                launched_s = time.perf_counter()
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=err)
        except OSError as exc:
            self.notes.append(f"could not start perf: {exc}")
            self._proc = None
            return False
        deadline = launched_s + self.attach_timeout_s
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                why = _tail(self._stderr_path) or "no message"
                self.notes.append(f"perf exited at once (code {self._proc.returncode}): {why}")
                return False
            if _perf_event_fds(self._proc.pid) > 0:
                self.attached_at_s = time.perf_counter()
                return True
            if watch_file is not None and _has_data_line(watch_file):
                self.attached_at_s = launched_s
                return True
            time.sleep(0.005)
        self.attached_at_s = launched_s
        self.notes.append(f"could not confirm perf attached within {self.attach_timeout_s:.1f} s; went on")
        return True

    def _finish(self, wait_s: float) -> int | None:
        if self._proc is None:
            return None
        early = self._proc.poll() is not None
        note = _interrupt(self._proc, wait_s)
        if note:
            self.notes.append(note)
        code = self._proc.returncode
        if early and code not in (0, None):
            self.notes.append(f"perf stopped before the window ended (code {code}): "
                              f"{_tail(self._stderr_path) or 'no message'}")
        self._proc = None
        return code

    def _cleanup(self) -> None:
        if self._proc is not None:
            _interrupt(self._proc, 1.0)
            self._proc = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


class CounterSession(PerfProcess):
    """``perf stat`` attached to the worker for the timed window; :meth:`stop` returns a JSON-able report.

    Usage: ``s = CounterSession(); ok, why = s.available(); s.start(worker_pid); ...; report = s.stop(n)``.
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
    ) -> None:
        super().__init__(perf, attach_timeout_s)
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

    def start(self, pid: int) -> None:
        """Attach ``perf stat -x, -p PID`` and return once it is counting (bounded wait). Never raises."""
        self._cleanup()
        self.notes = []
        self._pid = pid
        self._started_s = time.perf_counter()
        path = self._resolve()
        if path is None:
            self.notes.append("perf not found: no counters")
            return
        self._tmpdir = Path(tempfile.mkdtemp(prefix="edgeperf-counters-"))
        self._out_path = self._tmpdir / "perf-stat.csv"
        argv = [path, "stat", "-x,", "-e", ",".join(self.events), "-p", str(pid), "-o", str(self._out_path)]
        if self.interval_ms is not None:
            argv += ["-I", str(self.interval_ms)]
        self._launch(argv, self._out_path)

    def stop(self, inferences: int, power: Sequence[tuple[float, float]] | None = None) -> dict[str, Any]:
        """Stop perf and reduce its counts to a JSON-able report. Never raises: failures become notes.

        ``{"events": {name: {"value", "status", "running_pct", "unit"}}, "unsupported": [...], "not_counted":
        [...], "per_inference": {metric_name: value}, "ipc": x | None, "intervals": [{"t_s", "dt_s", event:
        rate_per_s}], "pearson_power": {event: r}, "inferences": n, "notes": [...]}``. ``intervals[*].t_s``
        is on this process's ``time.perf_counter`` clock; pass ``power`` ``[(t_s, power_w)]`` on the same
        clock, sampled over the same window, to fill ``pearson_power``.
        """
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


def __getattr__(name: str) -> Any:
    """Re-export the hot spot recorder (it lives in hotspots.py) for ``from .counters import ...``."""
    if name in ("HotspotRecorder", "parse_perf_report"):
        from pytest_edgeperf import hotspots

        return getattr(hotspots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
