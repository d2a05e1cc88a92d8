"""JUnit properties: each measured test's key figures, so ``--junitxml`` carries them to a CI system.

CI systems show a test case's ``<properties>`` (what ``record_property`` writes, kept in ``item.user_properties``).
Names are ``edgeperf.<metric>`` with the unit in the metric's name; a test with several measurements (frameworks
it loops over, labels) adds the measurement's label: ``edgeperf.int8.fps``. A figure that was not measured is
written as ``not measured``, never as a number.
"""

from __future__ import annotations

from ..result import Result

PREFIX = "edgeperf."
NOT_MEASURED = "not measured"
#: the figures every measured test reports, measured or not
KEY_METRICS = ("fps", "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "energy_per_inference_j")
ACCURACY_METRICS = ("top1_pct", "top5_pct", "map50_pct")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def result_properties(result: Result, label: str = "") -> list[tuple[str, str]]:
    """(name, value) pairs for one measurement; ``label`` is inserted after the prefix when not empty."""
    prefix = PREFIX + (f"{label}." if label else "")
    values = result.metric_values()
    props = [(prefix + key, _fmt(values[key]) if key in values else NOT_MEASURED) for key in KEY_METRICS]
    accuracy = [(prefix + key, _fmt(values[key])) for key in ACCURACY_METRICS if key in values]
    props += accuracy or [(prefix + "accuracy", NOT_MEASURED)]
    props.append((prefix + "verdict", result.verdict or result.overall_verdict or NOT_MEASURED))
    if result.verdict_reason:
        props.append((prefix + "verdict_reason", result.verdict_reason))
    if result.input_shape:
        props.append((prefix + "input_shape", "x".join(map(str, result.input_shape))))
    return props


def _labels(nodeid: str, results: list[Result]) -> list[str]:
    """'' for a test's only measurement; else each one's label (its ``::label``, else framework/model)."""
    if len(results) == 1:
        return [""]
    labels = []
    for index, result in enumerate(results):
        suffix = result.test_id[len(nodeid):].lstrip(":") if result.test_id.startswith(nodeid) else ""
        label = suffix or f"{result.framework}-{result.model}"
        labels.append(label if label not in labels else f"{label}-{index + 1}")
    return labels


def record_properties(user_properties: list[tuple[str, object]], nodeid: str, results: list[Result]) -> None:
    """Replace the edgeperf properties in ``item.user_properties`` (a repeated update pass replaces, not adds)."""
    user_properties[:] = [(k, v) for k, v in user_properties if not str(k).startswith(PREFIX)]
    for result, label in zip(results, _labels(nodeid, results), strict=True):
        user_properties.extend(result_properties(result, label))
