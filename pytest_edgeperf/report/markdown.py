"""The cross-device results table (markdown for ``$GITHUB_STEP_SUMMARY``, rows reused by the HTML report).

One row per (test, framework) and four columns per device, so a reviewer sees at once whether a change
regressed on a Pi 3 but not on a Pi 5. The input is the results JSON the plugin writes with
``--edgeperf-json``; this module only reads dicts and never trusts a field to be present.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tabulate import tabulate

from . import outcome

PER_DEVICE_COLUMNS = ("fps", "p90 ms", "mem MB", "verdict")


def device_name(payload: dict[str, Any]) -> str:
    """The board a payload was measured on: the profile name, else the first result's device, else '?'."""
    device = payload.get("device") or {}
    name = device.get("profile") if isinstance(device, dict) else None
    if not name:
        results = payload.get("results") or []
        name = next((r.get("device") for r in results if isinstance(r, dict) and r.get("device")), None)
    return str(name or "?")


def fmt_value(value: Any, digits: int = 3) -> str:
    """3 significant digits, '–' for a missing reading (never 0, which would look like a measurement)."""
    if value is None or isinstance(value, bool):
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    if number == 0:
        return "0"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    if abs(number) < 1e-3:  # p-values: 2.3e-11, not 0.0000000000230
        return f"{number:.{digits - 1}e}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(number))))
    return f"{number:.{decimals}f}"


def verdict_label(result: dict[str, Any]) -> str:
    """The verdict a reader needs, agreed with the test's outcome (report/outcome.py): FAIL for a breached limit."""
    return outcome.label(result)


def row_key(result: dict[str, Any]) -> tuple[str, str]:
    return str(result.get("test_id", "?")), str(result.get("framework", "?"))


def column_labels(payloads: list[dict[str, Any]], sources: list[str] | None = None) -> list[str]:
    """One column group per file: the device's name, with the file's name when two files are the same device.

    ``edgeperf merge a.json b.json`` of one device used to show only the last file's rows; now each file has its
    own columns, so a test measured in both shows both side by side and one measured in either is not lost.
    """
    names = [device_name(p) for p in payloads]
    given = list(sources) if sources is not None else [f"#{i + 1}" for i in range(len(payloads))]
    labels = []
    for index, name in enumerate(names):
        if names.count(name) == 1:
            labels.append(name)
            continue
        same = [i for i, n in enumerate(names) if n == name]
        stems = [Path(given[i]).stem for i in same]
        source = Path(given[index]).stem if len(set(stems)) == len(stems) else given[index]
        if [given[i] for i in same].count(given[index]) > 1:  # the same file twice
            source += f" #{same.index(index) + 1}"
        labels.append(f"{name} ({source})")
    return labels


def cross_device_rows(payloads: list[dict[str, Any]], sources: list[str] | None = None
                      ) -> tuple[list[str], list[str], list[list[str]]]:
    """(column groups, headers, rows); rows in first-seen order, a blank '–' where a file lacks that test.

    A test measured twice in one file (update passes of an old file, two unlabelled measurements) keeps both rows:
    the second is shown as ``test (#2)``.
    """
    labels = column_labels(payloads, sources)
    by_column: list[dict[tuple[str, str, int], dict[str, Any]]] = []
    order: list[tuple[str, str, int]] = []
    for payload in payloads:
        cells: dict[tuple[str, str, int], dict[str, Any]] = {}
        seen: dict[tuple[str, str], int] = {}
        for result in payload.get("results") or []:
            if not isinstance(result, dict):
                continue
            test_id, framework = row_key(result)
            seen[(test_id, framework)] = seen.get((test_id, framework), 0) + 1
            key = (test_id, framework, seen[(test_id, framework)])
            if key not in order:
                order.append(key)
            cells[key] = result
        by_column.append(cells)
    headers = ["test", "framework"] + [f"{label} {c}" for label in labels for c in PER_DEVICE_COLUMNS]
    rows: list[list[str]] = []
    for key in order:
        row = [key[0] if key[2] == 1 else f"{key[0]} (#{key[2]})", key[1]]
        for cells in by_column:
            result = cells.get(key)
            if result is None:
                row += ["–"] * len(PER_DEVICE_COLUMNS)
                continue
            summary = result.get("summary") or {}
            row += [fmt_value(summary.get("fps")), fmt_value(summary.get("latency_p90_ms")),
                    fmt_value(summary.get("peak_memory_mb")), verdict_label(result)]
        rows.append(row)
    return labels, headers, rows


def _md_cell(text: str) -> str:
    """Pipes and newlines would break a GitHub table row; parametrize ids can contain both."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def results_markdown(payloads: list[dict[str, Any]], sources: list[str] | None = None) -> str:
    """One markdown section: the cross-device table plus a count line, ready for ``$GITHUB_STEP_SUMMARY``."""
    devices, headers, rows = cross_device_rows(payloads, sources)
    lines = ["## pytest-edgeperf results", ""]
    if not rows:
        lines.append(f"No results in {len(payloads)} file(s).")
        return "\n".join(lines) + "\n"
    counts: dict[str, int] = {}
    for row in rows:
        for index in range(5, len(row), len(PER_DEVICE_COLUMNS)):
            counts[row[index]] = counts.get(row[index], 0) + 1
    marked = []
    for row in rows:
        cells = [_md_cell(c) for c in row]
        for index in range(5, len(cells), len(PER_DEVICE_COLUMNS)):
            if row[index] in outcome.FAILING:
                cells[index] = f"**{cells[index]}**"
        marked.append(cells)
    lines.append(f"Devices: {', '.join(devices)}. " + ", ".join(
        f"{name}: {count}" for name, count in sorted(counts.items()) if name != "–") + ".")
    lines.append("")
    align = ["left", "left"] + ["right", "right", "right", "left"] * len(devices)
    lines.append(tabulate(marked, headers=[_md_cell(h) for h in headers], tablefmt="pipe",
                          disable_numparse=True, colalign=align))
    return "\n".join(lines) + "\n"
