"""The table a failing test shows under its summary line: one row per metric, then the verdict's notes."""

from __future__ import annotations

from tabulate import tabulate

from pytest_edgeperf.verdict.outcome import MetricVerdict, TestVerdict, fmt_change, fmt_num


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<1e-6" if p < 1e-6 else f"{p:.2g}"


def _fmt_tol(m: MetricVerdict) -> str:
    if m.tolerance is None:
        return "-"
    if m.kind == "accuracy":
        return f"{m.tolerance:g} pp"
    noise_part = (f" (noise {m.noise_floor_pct:.1f}%)" if m.noise_floor_pct is not None
                  and m.noise_floor_pct > m.tolerance else "")
    return f"{m.tolerance:g}%" + (f" + {m.slack_abs:g} MB" if m.slack_abs and m.kind == "memory" else "") + noise_part


def format_verdict_table(v: TestVerdict) -> str:
    """The table a failing test shows: metric, baseline, now, change, p-value, tolerance, verdict, note."""
    rows = [
        [m.metric, fmt_num(m.baseline), fmt_num(m.current), fmt_change(m), _fmt_p(m.p_value),
         _fmt_tol(m), m.verdict, m.note]
        for m in v.metrics
    ]
    table = tabulate(rows, headers=["metric", "baseline", "now", "change", "p-value", "tolerance", "verdict",
                                    "note"], disable_numparse=True)
    lines = [v.summary_line(), table]
    lines += [f"note: {flag}" for flag in v.flags]
    return "\n".join(lines)
