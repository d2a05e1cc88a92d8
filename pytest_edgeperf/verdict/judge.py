"""The verdict of one test against its baseline: environment gating, then the timing and the scalar decisions.

Each metric has a direction and a tolerance (``rules.py``). Whether the two runs may be compared at all, or on
timing, is decided once from their environments (``environment.py``); timing metrics are judged on raw samples and
on the runs' worker processes (``timing.py``, ``location.py``, ``noise.py``), the rest as one number each side
(``scalar.py``). Anything that makes a comparison untrustworthy gives INCONCLUSIVE, never REGRESSION
(``outcome.py`` lists the verdicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pytest_edgeperf import stats
from pytest_edgeperf.verdict.environment import environment_gate
from pytest_edgeperf.verdict.outcome import (
    INCONCLUSIVE,
    NEW,
    NO_BASELINE,
    NOT_JUDGED,
    MetricVerdict,
    TestVerdict,
    overall,
)
from pytest_edgeperf.verdict.rules import BUSY_CPU_WAIT_PCT, DEFAULT_RULES, MetricRule, rule_for, tolerance_for
from pytest_edgeperf.verdict.scalar import judge_scalar
from pytest_edgeperf.verdict.timing import DEFAULT_ALPHA, NoisePriorSource, judge_timing

if TYPE_CHECKING:
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.result import Result


def judge(
    current: Result,
    baseline: BaselineEntry | None,
    tolerances: Mapping[str, float],
    *,
    alpha: float = DEFAULT_ALPHA,
    strict: bool = False,
    rules: tuple[MetricRule, ...] = DEFAULT_RULES,
    max_cpu_wait_pct: float = BUSY_CPU_WAIT_PCT,
    noise_prior: NoisePriorSource | None = None,
) -> TestVerdict:
    """Judge every metric of ``current`` against ``baseline`` and combine them into the test's verdict.

    ``noise_prior(by_reference)`` gives the device's pooled run-to-run variance (``BaselineStore.noise_prior``),
    which a baseline with few recordings borrows from.
    """
    values = current.metric_values()
    if baseline is None:
        return _without_baseline(values, tolerances, rules, strict)
    gate = environment_gate(current, baseline, max_cpu_wait_pct)
    metrics: list[MetricVerdict] = []
    timing: list[MetricVerdict] = []
    for name in list(values) + [n for n in baseline.metrics if n not in values]:
        rule = rule_for(name, rules)
        mv = _row(name, rule, values.get(name), baseline.metrics.get(name), tolerances)
        metrics.append(mv)
        if rule is None or mv.current is None or mv.baseline is None:
            continue
        if gate.blocked:
            mv.verdict, mv.note = INCONCLUSIVE, gate.blocked
        elif rule.kind == "timing" and gate.timing_blocked:
            mv.verdict, mv.note = INCONCLUSIVE, gate.timing_note
        elif rule.kind == "timing":
            timing.append(mv)
        else:
            mv.verdict, mv.note = judge_scalar(rule, mv.baseline, mv.current, mv.tolerance or 0.0)
    flags = [*gate.flags, *judge_timing(timing, current, baseline, alpha=alpha, noise_prior=noise_prior)]
    return TestVerdict(
        overall([m.verdict for m in metrics]), metrics, flags,
        baseline_recorded_at=baseline.recorded_at,
        baseline_commit=str(
            baseline.recorded_by.get("git_commit", "") or baseline.environment.get("git_commit", "")
        ),
        baseline_latency_ms=_latencies_ms(baseline),
    )


def _without_baseline(values: Mapping[str, float], tolerances: Mapping[str, float], rules: tuple[MetricRule, ...],
                      strict: bool) -> TestVerdict:
    """Every metric NEW (or not judged without a rule): the test passes with a notice, or fails under strict."""
    metrics = []
    for name, value in values.items():
        rule = rule_for(name, rules)
        metrics.append(MetricVerdict(
            name, None, value, None, None, tolerance_for(name, rule, tolerances) if rule else None,
            NEW if rule else NOT_JUDGED, "no baseline", rule.kind if rule else "",
            slack_abs=rule.slack_abs if rule else 0.0,
        ))
    flags = ["no baseline: record one with --edgeperf-update-baselines"]
    return TestVerdict(NO_BASELINE if strict else NEW, metrics, flags)


def _row(name: str, rule: MetricRule | None, cur: float | None, base: float | None,
         tolerances: Mapping[str, float]) -> MetricVerdict:
    """One metric's row before any decision: both values, the change, the tolerance, and why it is not judged."""
    tol = tolerance_for(name, rule, tolerances) if rule else None
    mv = MetricVerdict(name, base, cur, None, None, tol, NOT_JUDGED, kind=rule.kind if rule else "",
                       slack_abs=rule.slack_abs if rule else 0.0)
    if cur is not None and base is not None:
        mv.change_abs = cur - base
        mv.change_pct = stats.percent_change(base, cur)
    if rule is None:
        mv.note = "no rule: reported only"
    elif cur is None:
        mv.note = "not measured in this run"
    elif base is None:
        mv.verdict, mv.note = NEW, "not in the baseline"
    return mv


def _latencies_ms(baseline: BaselineEntry) -> list[float]:
    """The baseline's stored latencies (ms), for the HTML report's distribution chart."""
    lat = baseline.metric_samples("latency_p50_ms")
    return [] if lat is None else [float(v) for v in lat]
