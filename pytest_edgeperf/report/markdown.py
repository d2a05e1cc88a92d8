"""The cross-device results table (markdown for ``$GITHUB_STEP_SUMMARY``, rows reused by the HTML report).

One row per (test, framework) and four columns per device, so a reviewer sees at once whether a change
regressed on a Pi 3 but not on a Pi 5. The input is the results JSON the plugin writes with
``--edgeperf-json``; this module only reads dicts and never trusts a field to be present.
"""

from __future__ import annotations

import math
from typing import Any

from tabulate import tabulate

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
    """The verdict a reader needs: the overall verdict, or the status when the test did not measure."""
    status = str(result.get("status") or "")
    if status == "error":
        return "ERROR"
    verdict = str(result.get("overall_verdict") or "")
    if verdict:
        return verdict
    return "INCONCLUSIVE" if status == "inconclusive" else "–"


def row_key(result: dict[str, Any]) -> tuple[str, str]:
    return str(result.get("test_id", "?")), str(result.get("framework", "?"))


def cross_device_rows(payloads: list[dict[str, Any]]) -> tuple[list[str], list[str], list[list[str]]]:
    """(devices, headers, rows); rows in first-seen order, a blank '–' where a device lacks that test."""
    devices: list[str] = []
    by_device: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    order: list[tuple[str, str]] = []
    for payload in payloads:
        name = device_name(payload)
        if name not in by_device:
            devices.append(name)
            by_device[name] = {}
        for result in payload.get("results") or []:
            if not isinstance(result, dict):
                continue
            key = row_key(result)
            if key not in order:
                order.append(key)
            by_device[name][key] = result
    headers = ["test", "framework"] + [f"{d} {c}" for d in devices for c in PER_DEVICE_COLUMNS]
    rows: list[list[str]] = []
    for key in order:
        row = [key[0], key[1]]
        for name in devices:
            result = by_device[name].get(key)
            if result is None:
                row += ["–"] * len(PER_DEVICE_COLUMNS)
                continue
            summary = result.get("summary") or {}
            row += [fmt_value(summary.get("fps")), fmt_value(summary.get("latency_p90_ms")),
                    fmt_value(summary.get("peak_memory_mb")), verdict_label(result)]
        rows.append(row)
    return devices, headers, rows


def _md_cell(text: str) -> str:
    """Pipes and newlines would break a GitHub table row; parametrize ids can contain both."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def results_markdown(payloads: list[dict[str, Any]]) -> str:
    """One markdown section: the cross-device table plus a count line, ready for ``$GITHUB_STEP_SUMMARY``."""
    devices, headers, rows = cross_device_rows(payloads)
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
            if row[index] in ("REGRESSION", "ERROR"):
                cells[index] = f"**{cells[index]}**"
        marked.append(cells)
    lines.append(f"Devices: {', '.join(devices)}. " + ", ".join(
        f"{name}: {count}" for name, count in sorted(counts.items()) if name != "–") + ".")
    lines.append("")
    align = ["left", "left"] + ["right", "right", "right", "left"] * len(devices)
    lines.append(tabulate(marked, headers=[_md_cell(h) for h in headers], tablefmt="pipe",
                          disable_numparse=True, colalign=align))
    return "\n".join(lines) + "\n"
