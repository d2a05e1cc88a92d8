"""External power logs (a USB meter's or logger's CSV), read after the run and aligned by wall-clock time.

The file needs a unix-time column (seconds; values above 1e11 are taken as milliseconds; ISO 8601 text is
accepted too, naive times as local time) and either a watts column or volts and amps columns. Lines starting
with ``#`` and rows that do not parse (a half-written last line) are skipped. The logger's clock must agree
with this host's (NTP), since the window is matched by wall-clock time.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import time
from datetime import datetime
from pathlib import Path

from pytest_edgeperf.power.base import MeterError, PowerMeter, check_power_w
from pytest_edgeperf.power.trace import PowerTrace

TIME_NAMES = ("t_unix", "unix_time", "timestamp", "time_unix", "unix", "time", "ts", "t")
POWER_NAMES = ("power_w", "power", "watts", "watt", "w", "p")
VOLTS_NAMES = ("voltage_v", "volts", "voltage", "volt", "v", "u")
AMPS_NAMES = ("current_a", "amps", "current", "amp", "a", "i")


def _parse_time(text: str) -> float | None:
    """Unix seconds from seconds, milliseconds or ISO 8601 text; None when it is none of those."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if not math.isfinite(value):
        return None
    return value / 1000.0 if value > 1e11 else value


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CsvLogMeter(PowerMeter):
    """A CSV power log; the sampler reads it once after the run instead of polling."""

    reads_after_run = True

    def __init__(self, path: Path, *, time_col: str | None = None, power_col: str | None = None,
                 volts_col: str | None = None, amps_col: str | None = None) -> None:
        self.path = Path(path)
        self.time_col = time_col
        self.power_col = power_col
        self.volts_col = volts_col
        self.amps_col = amps_col
        self.name = f"csv:{self.path.name}"

    def describe(self) -> str:
        return f"external power log {self.path} (read after the run, aligned by wall-clock time)"

    # --- reading ---------------------------------------------------------------------------------------
    def _rows(self) -> list[list[str]]:
        try:
            text = self.path.read_text(errors="replace")
        except OSError as exc:
            raise MeterError(f"{self.name}: cannot read {self.path}: {exc.strerror or exc}") from None
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            return []
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff("\n".join(lines[:5]), ",;\t")
        except csv.Error:
            dialect = csv.excel
        return [[f.strip() for f in row] for row in csv.reader(io.StringIO("\n".join(lines)), dialect)]

    def _columns(self, rows: list[list[str]]) -> tuple[int, int | None, int | None, int | None, bool]:
        """(time, power, volts, amps) column indexes and whether the first row is a header."""
        first = rows[0]
        has_header = not any(_is_float(f) for f in first)
        header = [f.lower() for f in first] if has_header else []

        def pick(given: str | None, names: tuple[str, ...], what: str) -> int | None:
            if given is not None:
                if given.isdigit():
                    return int(given)
                if given.lower() in header:
                    return header.index(given.lower())
                raise MeterError(f"{self.name}: no {what} column {given!r} in header {first}")
            for name in names:
                if name in header:
                    return header.index(name)
            return None

        time_i = pick(self.time_col, TIME_NAMES, "time")
        power_i = pick(self.power_col, POWER_NAMES, "power") if self.volts_col is None else None
        volts_i = amps_i = None
        if power_i is None:
            volts_i = pick(self.volts_col, VOLTS_NAMES, "volts")
            amps_i = pick(self.amps_col, AMPS_NAMES, "amps")
        if not has_header:
            time_i = 0 if time_i is None else time_i
            if power_i is None and (volts_i is None or amps_i is None):
                power_i = 1
        if time_i is None:
            raise MeterError(f"{self.name}: no time column in header {first} (name it with time=COL)")
        if power_i is None and (volts_i is None or amps_i is None):
            raise MeterError(f"{self.name}: no power (or volts and amps) column in header {first} "
                             "(name it with power=COL)")
        return time_i, power_i, volts_i, amps_i, has_header

    def check_columns(self) -> None:
        """Fail early on a header without the named columns (an empty file passes: the logger may be slow)."""
        rows = self._rows()
        if rows:
            self._columns(rows)

    def read_rows(self) -> list[tuple[float, float]]:
        """All ``(t_unix, power_w)`` rows in time order."""
        rows = self._rows()
        if not rows:
            return []
        time_i, power_i, volts_i, amps_i, has_header = self._columns(rows)
        out: list[tuple[float, float]] = []
        for row in rows[1 if has_header else 0:]:
            try:
                t_unix = _parse_time(row[time_i])
                power_w = (float(row[power_i]) if power_i is not None
                           else float(row[volts_i]) * float(row[amps_i]))  # type: ignore[index]
            except (ValueError, IndexError):
                continue
            if t_unix is not None and math.isfinite(power_w):
                out.append((t_unix, power_w))
        out.sort()
        return out

    def read_trace(self, start_unix_s: float | None = None, end_unix_s: float | None = None,
                   unix_minus_perf_s: float | None = None) -> PowerTrace:
        """Rows in [start, end] plus one neighbour each side (for edge interpolation), as a PowerTrace.

        ``t_s`` is derived as ``t_unix - unix_minus_perf_s`` (default: the offset between the clocks now), so
        the trace can be summarized against a perf_counter window. Failures land in ``trace.error``.
        """
        if unix_minus_perf_s is None:
            unix_minus_perf_s = time.time() - time.perf_counter()
        trace = PowerTrace(meter=self.describe())
        try:
            rows = self.read_rows()
        except MeterError as exc:
            trace.error = str(exc)
            return trace
        times = [r[0] for r in rows]
        lo = 0 if start_unix_s is None else max(0, bisect.bisect_left(times, start_unix_s) - 1)
        hi = len(rows) if end_unix_s is None else min(len(rows), bisect.bisect_right(times, end_unix_s) + 1)
        trace.samples = [(t - unix_minus_perf_s, t, p) for t, p in rows[lo:hi]]
        return trace

    def read_power_w(self) -> float:
        """The log's latest row (only meaningful while a logger is appending to it)."""
        rows = self.read_rows()
        if not rows:
            raise MeterError(f"{self.name}: {self.path} has no power rows yet")
        return check_power_w(rows[-1][1], self.name)
