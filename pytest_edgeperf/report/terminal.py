"""The terminal summary: one table of every edgeperf measurement, then what was unavailable, skipped or changed."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from ..result import Result


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _baseline_columns(result: Result) -> tuple[str, str, str]:
    fps = next((v for v in result.verdicts if v.get("metric") == "fps"), None)
    if fps is None:
        return "-", "-", result.overall_verdict or "-"
    change = fps.get("change_pct")
    return _f(fps.get("baseline")), "-" if change is None else f"{change:+.1f}%", result.overall_verdict or "-"


def summary_rows(results: list[Result]) -> list[list[Any]]:
    rows = []
    for r in results:
        base, change, verdict = _baseline_columns(r)
        status = r.status if r.status != "ok" else verdict
        rows.append([
            r.test_id.split("::", 1)[-1], r.device, r.framework, _short_model(r.model), _f(r.fps),
            _f(r.latency_percentile_ms(50), 2), _f(r.latency_percentile_ms(90), 2), _f(r.latency_percentile_ms(99), 2),
            _f(r.peak_rss_mb), _f(r.load_time_s, 2), f"{r.valid_count}/{len(r.samples)}", base, change, status,
        ])
    return rows


def _short_model(model: str) -> str:
    """A generated model's cache path is long and unique; its file stem says what it is."""
    return "cache:" + model.rsplit("/", 1)[-1] if model.startswith("cache:") else model


HEADERS = ["test", "device", "framework", "model", "fps", "p50 ms", "p90 ms", "p99 ms", "peak MB", "load s",
           "valid", "base fps", "change", "verdict"]


def write_summary(terminalreporter: Any, session: Any) -> None:
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
    notes: dict[str, list[str]] = {}
    for r in results:
        if r.status != "ok":
            tr.write_line(f"INCONCLUSIVE {r.test_id}: {r.status_reason}")
        for note in r.notes:
            if note not in session.unavailable and not note.startswith("not checked"):
                notes.setdefault(note, []).append(r.test_id.split("::", 1)[-1])
    for note, tests in notes.items():
        where = tests[0] if len(tests) == 1 else f"{len(tests)} tests"
        tr.write_line(f"note ({where}): {note}")
    for note in getattr(session, "device_notes", []):
        tr.write_line(f"note: {note}")
    if session.unavailable:
        tr.write_line("not measured on this device: " + "; ".join(session.unavailable))
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


def _extra_rows(results: list[Result]) -> list[list[Any]]:
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
