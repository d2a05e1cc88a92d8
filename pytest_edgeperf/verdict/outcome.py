"""What the verdict says: the verdict names, the judgement of one metric and of one test, and its one-line summary.

Overall verdicts: REGRESSION (fails the test), NO_BASELINE (no baseline and ``strict=True``: fails the test),
INCONCLUSIVE, NEW (no baseline: passes with a notice), IMPROVED, PASS. The judge (``judge.py``) fills these in; the
table (``table.py``) and the reports read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_edgeperf.result import Result

PASS = "PASS"
REGRESSION = "REGRESSION"
IMPROVED = "IMPROVED"
INCONCLUSIVE = "INCONCLUSIVE"
NEW = "NEW"
NOT_JUDGED = "-"  # a metric without a rule: reported, never judged
NO_BASELINE = "NO_BASELINE"  # overall only: missing baseline under --edgeperf-strict (fails the test)
FAILING = frozenset({REGRESSION, NO_BASELINE})


@dataclass
class MetricVerdict:
    """The judgement of one metric; ``change_pct`` is relative, ``change_abs`` is now - baseline."""

    metric: str
    baseline: float | None
    current: float | None
    change_pct: float | None
    p_value: float | None
    tolerance: float | None
    verdict: str
    note: str = ""
    kind: str = ""
    change_abs: float | None = None
    slack_abs: float = 0.0
    noise_floor_pct: float | None = None  # timing: the minimum effect the run-to-run noise sets (noise.py)


@dataclass
class TestVerdict:
    """The verdict of one test (one Result) against its baseline."""

    __test__ = False  # not a pytest test class despite the name

    overall: str
    metrics: list[MetricVerdict]
    flags: list[str] = field(default_factory=list)
    baseline_recorded_at: str = ""
    baseline_commit: str = ""
    # the baseline's latencies (ms) this verdict compared against: carried onto the Result (``apply_to``) so the
    # HTML report draws them without looking the baseline up a second time
    baseline_latency_ms: list[float] = field(default_factory=list, repr=False, compare=False)

    @property
    def failed(self) -> bool:
        """True when the test must fail: a regression, or a missing baseline under strict mode."""
        return self.overall in FAILING

    def regressed(self) -> list[MetricVerdict]:
        return [m for m in self.metrics if m.verdict == REGRESSION]

    def summary_line(self) -> str:
        """One line for the failure header, like pytest-memray's "limited to X but allocated Y"."""
        if self.overall == REGRESSION:
            parts = []
            for m in self.regressed():
                parts.append(f"{m.metric} {fmt_num(m.baseline)} -> {fmt_num(m.current)} ({fmt_change(m)})")
            since = f" (baseline recorded {self.baseline_recorded_at})" if self.baseline_recorded_at else ""
            return "edgeperf: performance regressed" + since + ": " + "; ".join(parts)
        if self.overall == NO_BASELINE:
            return ("edgeperf: no baseline for this test and --edgeperf-strict is set; record one with "
                    "--edgeperf-update-baselines")
        return f"edgeperf: {self.overall}"

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall,
            "failed": self.failed,
            "flags": list(self.flags),
            "baseline_recorded_at": self.baseline_recorded_at,
            "baseline_commit": self.baseline_commit,
            "metrics": [asdict(m) for m in self.metrics],
        }

    def apply_to(self, result: Result) -> None:
        """Store the verdict on the Result (``verdicts`` / ``overall_verdict``) for the JSON report, and the
        baseline latencies it compared against for the HTML report."""
        result.verdicts = self.to_json()["metrics"]
        result.overall_verdict = self.overall
        result.baseline_latency_ms = list(self.baseline_latency_ms)


def overall(verdicts: list[str]) -> str:
    """The test's verdict from its metrics': the worst one wins (a regression over an inconclusive over a new...)."""
    for name in (REGRESSION, INCONCLUSIVE, NEW, IMPROVED):
        if name in verdicts:
            return name
    return PASS


def fmt_num(v: float | None) -> str:
    """A metric's value as the summary line and the table show it."""
    if v is None:
        return "-"
    return f"{v:.4g}"


def fmt_change(m: MetricVerdict) -> str:
    """A metric's change: percentage points for accuracy, percent for the rest."""
    if m.kind == "accuracy" and m.change_abs is not None:
        return f"{m.change_abs:+.2f} pp"
    if m.change_pct is None:
        return "-"
    return f"{m.change_pct:+.1f}%"
