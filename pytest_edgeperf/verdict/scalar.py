"""The scalar decision: memory, accuracy, energy, counters and a test's own figures, one number each side.

Why no statistical test here: a scalar has no samples to rank (one peak RSS, one accuracy over a fixed set, one
energy reading), so the decision is a band around the baseline. Memory's band is a percentage plus an absolute
slack (allocator and page-cache jitter is a few MB whatever the model size), accuracy's a drop in percentage points
(0.5% of 90% top-1 and 0.5 points are different things), the rest a percentage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_edgeperf.verdict.outcome import IMPROVED, PASS, REGRESSION

if TYPE_CHECKING:
    from pytest_edgeperf.verdict.rules import MetricRule


def judge_scalar(rule: MetricRule, base: float, cur: float, tol: float) -> tuple[str, str]:
    """(verdict, note) of one scalar metric: beyond the band in the rule's worse direction is a regression."""
    if rule.kind == "accuracy":
        delta = cur - base if rule.higher_is_better else base - cur  # > 0 means better, in points
        if delta < -tol:
            return REGRESSION, f"dropped {-delta:.2f} points"
        if delta > tol:
            return IMPROVED, ""
        return PASS, ""
    band = abs(base) * tol / 100.0 + rule.slack_abs
    delta = cur - base if rule.higher_is_better else base - cur
    if delta < -band:
        return REGRESSION, ""
    if delta > band:
        return IMPROVED, ""
    return PASS, ""
