"""The verdict every report shows for one measurement, agreed with the test's own outcome.

A measurement has three sources of judgement: the baseline comparison (``overall_verdict``: NEW, PASS,
REGRESSION, ...), the absolute limits and variant gates (``limits``: ``max_latency_ms``, ``min_speedup``, ...)
and the pytest outcome of the test that took it. Reports used to show the first alone, so a test that failed
``max_latency_ms`` read NEW in the JSON, the HTML and ``edgeperf merge``. ``settle`` combines them once, on the
Result, and the readers of the results JSON (``label``) use what it stored, so the terminal, the JSON, the
pytest-benchmark JSON, JUnit, ``explain``, ``merge`` and the HTML cannot disagree.

Verdicts, worst first: ERROR (the measurement broke), FAIL (a limit or gate breached, or the test failed for a
reason of its own), REGRESSION, NO_BASELINE, then INCONCLUSIVE, NEW, IMPROVED, PASS. A REGRESSION that did not
fail its test (quick mode, a baseline update) is shown as INCONCLUSIVE with the reason, never as a failure.
"""

from __future__ import annotations

from typing import Any

from ..result import LIMIT_FAIL, STATUS_ERROR, Result

FAIL = LIMIT_FAIL
ERROR = "ERROR"
REGRESSION = "REGRESSION"
NO_BASELINE = "NO_BASELINE"
INCONCLUSIVE = "INCONCLUSIVE"
#: verdicts that mean the test failed: ``explain`` and ``merge --fail-on-regression`` exit 1 on them
FAILING = frozenset({ERROR, FAIL, REGRESSION, NO_BASELINE})


def describe_limit(check: dict[str, Any]) -> str:
    """``latency_p90_ms 0.0224 > limit 0.0001`` (or ``... not measured``) for one failed limit check."""
    metric, op, limit = check.get("metric", "?"), str(check.get("op", "")), check.get("limit")
    measured = check.get("measured")
    limit_text = f"{limit:g}" if isinstance(limit, int | float) else str(limit)
    if not isinstance(measured, int | float):
        return f"{metric} not measured (limit {op} {limit_text})"
    broken = {">=": "<", "<=": ">"}.get(op, "vs")
    return f"{metric} {measured:.4g} {broken} limit {limit_text}"


def decisive_metric(verdicts: list[dict[str, Any]], overall: str) -> dict[str, Any] | None:
    """The metric verdict that decided ``overall`` (the first REGRESSION of a REGRESSION, ...), else fps's."""
    for v in verdicts:
        if isinstance(v, dict) and overall in (REGRESSION, "IMPROVED") and v.get("verdict") == overall:
            return v
    return next((v for v in verdicts if isinstance(v, dict) and v.get("metric") == "fps"), None)


def _regressed_text(verdicts: list[dict[str, Any]]) -> str:
    parts = []
    for v in verdicts:
        if isinstance(v, dict) and v.get("verdict") == REGRESSION:
            change = v.get("change_pct")
            parts.append(f"{v.get('metric')} {change:+.1f}%" if isinstance(change, int | float)
                         else str(v.get("metric")))
    return ", ".join(parts)


def settle(result: Result, test_outcome: str, failure: str = "") -> None:
    """Store the verdict a report shows (``result.verdict`` / ``verdict_reason``) from the test's outcome.

    ``test_outcome`` is the pytest outcome of the test's call phase ("passed", "failed", "skipped");
    ``failure`` the first line of its failure, shown when the test failed for a reason of its own.
    """
    result.test_outcome = test_outcome
    overall = result.overall_verdict
    breached = result.failed_limits()
    verdict, reason = overall, ""
    if result.status == STATUS_ERROR:
        verdict, reason = ERROR, result.status_reason
    elif breached:
        verdict, reason = FAIL, "; ".join(describe_limit(c) for c in breached)
    elif overall == REGRESSION and test_outcome == "failed":
        reason = "regressed: " + _regressed_text(result.verdicts)
    elif overall == NO_BASELINE and test_outcome == "failed":
        reason = "no baseline (--edgeperf-strict)"
    elif overall in (REGRESSION, NO_BASELINE):  # judged, but the run did not let it fail the test
        why = "a quick run's timing is informational" if result.quick else "the test did not fail on it"
        verdict, reason = INCONCLUSIVE, f"{overall} against the baseline is not a failure here: {why}"
        if overall == REGRESSION:
            reason += f" ({_regressed_text(result.verdicts)})"
    elif test_outcome == "failed":
        verdict, reason = FAIL, failure or "the test failed"
    result.verdict, result.verdict_reason = verdict, reason


def verdict_of(result: Result) -> str:
    """A Result's verdict for the reports: settled with its test's outcome, else its limits and baseline verdict."""
    if result.verdict:
        return result.verdict
    return FAIL if result.failed_limits() else result.overall_verdict


def label(result: dict[str, Any]) -> str:
    """The verdict a reader of a results JSON shows: the settled ``verdict``, else derived from older fields."""
    status = str(result.get("status") or "")
    if status == STATUS_ERROR:
        return ERROR
    verdict = str(result.get("verdict") or "")
    if verdict:
        return verdict
    limits = result.get("limits") or []
    if any(isinstance(c, dict) and c.get("verdict") not in (None, "PASS") for c in limits):
        return FAIL
    overall = str(result.get("overall_verdict") or "")
    if overall:
        return overall
    return INCONCLUSIVE if status == "inconclusive" else "–"


def reason(result: dict[str, Any]) -> str:
    """Why a results-JSON entry has its verdict ("" when nothing needs saying)."""
    text = str(result.get("verdict_reason") or "")
    if text or label(result) != FAIL:
        return text
    return "; ".join(describe_limit(c) for c in result.get("limits") or []
                     if isinstance(c, dict) and c.get("verdict") != "PASS")


def is_failing(result: dict[str, Any]) -> bool:
    return label(result) in FAILING
