"""The terminal summary: one table of every edgeperf measurement, then what was unavailable, skipped or changed.

It stays short on a suite run: notes that differ only in their figures ("waited for a CPU 38%" / "... 61%") are one
line with the range and a count of tests, and what the device could not measure is one line of names (``-v``
for the reasons, which the JSON and the HTML always keep).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..result import Result
from .outcome import decisive_metric, verdict_of

if TYPE_CHECKING:
    import pytest

    from ..session import EdgeperfSession

#: short names for the change column, so it says which metric moved without widening the table
SHORT_METRIC = {"latency_p50_ms": "p50", "latency_p90_ms": "p90", "latency_p99_ms": "p99",
                "peak_memory_mb": "mem", "model_memory_mb": "model mem", "energy_per_inference_j": "energy",
                "power_mean_w": "power"}


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def change_text(result: Result) -> str:
    """The change of the metric that decided the verdict: a memory REGRESSION shows memory, not fps."""
    metric = decisive_metric(result.verdicts, result.overall_verdict)
    if metric is None:
        return "-"
    name = SHORT_METRIC.get(str(metric.get("metric")), str(metric.get("metric")))
    if metric.get("kind") == "accuracy" and metric.get("change_abs") is not None:
        return f"{name} {metric['change_abs']:+.2f} pp"
    change = metric.get("change_pct")
    return "-" if change is None else f"{name} {change:+.1f}%"


def _base_fps(result: Result) -> str:
    fps = next((v for v in result.verdicts if v.get("metric") == "fps"), None)
    return "-" if fps is None else _f(fps.get("baseline"))


def shape_text(result: Result) -> str:
    shape = result.input_shape
    return "-" if not shape else "x".join(map(str, shape))


def summary_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        verdict = verdict_of(r) or "-"
        status = r.status if r.status != "ok" else verdict
        rows.append([
            r.test_id.split("::", 1)[-1], r.device, r.framework, _short_model(r.model), shape_text(r), _f(r.fps),
            _f(r.latency_percentile_ms(50), 2), _f(r.latency_percentile_ms(90), 2), _f(r.latency_percentile_ms(99), 2),
            _f(r.peak_rss_mb), _f(r.load_time_s, 2), f"{r.valid_count}/{len(r.samples)}", _base_fps(r),
            change_text(r), status,
        ])
    return rows


def _short_model(model: str) -> str:
    """A generated model's cache path is long and unique; its file stem says what it is."""
    return "cache:" + model.rsplit("/", 1)[-1] if model.startswith("cache:") else model


HEADERS = ["test", "device", "framework", "model", "input", "fps", "p50 ms", "p90 ms", "p99 ms", "peak MB", "load s",
           "valid", "base fps", "change", "verdict"]

# A figure inside a note: a number not glued to a word (pi3, top1_pct and x86_64 stay words), or a hash.
_FIGURE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.]*[A-Za-z_])|\b[0-9a-f]{8,}\b")


def collapse_notes(notes: list[tuple[str, str]]) -> list[str]:
    """(note, test) pairs -> one line per kind of note, in first-seen order.

    Notes that differ only in their figures are one kind: the line shows each figure's range over the tests
    ("waited for a CPU 38-73%") and how many tests said it; a differing hash becomes "…".
    """
    kinds: dict[str, list[tuple[str, str]]] = {}
    for note, test in notes:
        kinds.setdefault(_FIGURE.sub("\0", note), []).append((note, test))
    lines = []
    for template, members in kinds.items():
        tests = list(dict.fromkeys(test for _, test in members))
        where = tests[0] if len(tests) == 1 else f"{len(tests)} tests"
        texts = list(dict.fromkeys(note for note, _ in members))
        if len(texts) == 1:
            lines.append(f"note ({where}): {texts[0]}")
            continue
        columns = list(zip(*(_FIGURE.findall(text) for text in texts), strict=True))
        parts = template.split("\0")
        out = [parts[0]]
        for values, tail in zip(columns, parts[1:], strict=True):
            out += [_range(values), tail]
        lines.append(f"note ({where}): {''.join(out)}")
    return lines


def _range(values: tuple[str, ...]) -> str:
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    try:
        numbers = sorted(distinct, key=float)
    except ValueError:  # a hash
        return "…"
    return f"{numbers[0]}-{numbers[-1]}"


def unavailable_lines(unavailable: list[str], verbose: bool) -> list[str]:
    """What the device could not measure: names on one line; each reason on its own line with ``-v``."""
    if not unavailable:
        return []
    names = list(dict.fromkeys(item.split(":", 1)[0].strip() for item in unavailable))
    if verbose:
        return ["not measured on this device:"] + [f"  {item}" for item in unavailable]
    return [f"not measured on this device: {', '.join(names)} (-v for why; all reasons are in the JSON and HTML)"]


def write_summary(terminalreporter: pytest.TerminalReporter, session: EdgeperfSession) -> None:
    results: list[Result] = session.results
    tr = terminalreporter
    if not results and not session.baseline_changes and not session.worker_change_lines:
        return
    tr.write_sep("=", f"edgeperf: {session.profile.name}")
    if results:
        tr.write_line(tabulate(summary_rows(results), headers=HEADERS, tablefmt="simple", disable_numparse=True))
        extra = _extra_rows(results)
        if extra:
            tr.write_line("")
            tr.write_line(tabulate(extra, headers=["test", "framework", "metric", "value"], tablefmt="simple"))
    notes: list[tuple[str, str]] = []
    for r in results:
        if r.status != "ok":
            tr.write_line(f"INCONCLUSIVE {r.test_id}: {r.status_reason}")
        elif r.verdict_reason:
            tr.write_line(f"{verdict_of(r)} {r.test_id}: {r.verdict_reason}")
        for note in r.notes:
            if note not in session.unavailable and not note.startswith("not checked"):
                notes.append((note, r.test_id.split("::", 1)[-1]))
    for line in collapse_notes(notes):
        tr.write_line(line)
    for note in getattr(session, "device_notes", []):
        tr.write_line(f"note: {note}")
    for line in unavailable_lines(session.unavailable, getattr(tr, "verbosity", 0) > 0):
        tr.write_line(line)
    if session.settings.update_baselines:
        from ..baseline import describe_changes

        tr.write_sep("-", f"edgeperf: baselines updated in {session.store.root}")
        lines = ([describe_changes(session.baseline_changes)] if session.baseline_changes else [])
        lines += session.worker_change_lines
        tr.write_line("\n".join(lines) if lines else "no changes")
        for line in session.baseline_skipped:
            tr.write_line(f"not recorded: {line}")
        for test, warning in getattr(session, "baseline_warnings", {}).items():
            tr.write_line(f"WARNING {test}: {warning}", yellow=True, bold=True)
        for line in session.baseline_errors:
            tr.write_line(f"error: {line}")


_EXTRA = ("top1_pct", "top5_pct", "map50_pct", "power_mean_w", "energy_per_inference_j", "fom_top1_per_j",
          "fom_top5_per_j", "fom_map50_per_j", "preprocess_p50_ms", "inference_p50_ms", "cpu_percent", "cpu_wait_pct",
          "speedup_x", "size_ratio", "memory_ratio")


def _extra_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        values = r.metric_values()
        keys = [k for k in _EXTRA if k in values] + sorted(
            k for k in values if k.endswith("_per_inference") and k not in _EXTRA)
        for key in keys:
            rows.append([r.test_id.split("::", 1)[-1], r.framework, key, f"{values[key]:.4g}"])
        if r.counters.get("ipc") is not None:
            rows.append([r.test_id.split("::", 1)[-1], r.framework, "ipc", f"{r.counters['ipc']:.3g}"])
    return rows
