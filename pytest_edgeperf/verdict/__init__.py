"""The verdict of a measurement against its baseline, one concern per file.

``rules`` (which metrics are judged, tolerances, the busy limit), ``environment`` (whether two runs are comparable),
``location`` (between-run statistics), ``noise`` (run-to-run noise from the baseline's recordings), ``timing`` and
``scalar`` (the two decisions), ``judge`` (composes them), ``outcome`` (the verdicts) and ``table`` (what a failing
test shows). Import from the submodules; the verdict names and the table are re-exported here for convenience (the
judge is not: ``config`` imports the rules, and this package must stay light to import).
"""

from pytest_edgeperf.verdict.outcome import (
    FAILING,
    IMPROVED,
    INCONCLUSIVE,
    NEW,
    NO_BASELINE,
    NOT_JUDGED,
    PASS,
    REGRESSION,
    MetricVerdict,
    TestVerdict,
)
from pytest_edgeperf.verdict.table import format_verdict_table

__all__ = ["FAILING", "IMPROVED", "INCONCLUSIVE", "NEW", "NOT_JUDGED", "NO_BASELINE", "PASS", "REGRESSION",
           "MetricVerdict", "TestVerdict", "format_verdict_table"]
