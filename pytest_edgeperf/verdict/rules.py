"""Which metrics are judged, in which direction and with which default tolerance; the tolerance syntax; the busy limit.

The bottom of the verdict: the options and the marker (``config``) parse tolerances with these rules and the judge
judges with them, so neither has to import the other (one place for what a metric means and when a machine is busy).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import EdgeperfError

KINDS = ("timing", "memory", "accuracy", "energy", "counter", "scalar")


@dataclass(frozen=True)
class MetricRule:
    """How one metric (or a ``*`` pattern of metrics) is judged.

    ``tolerance`` is percent of the baseline for every kind except accuracy, where it is percentage
    points; ``slack_abs`` is an absolute allowance in the metric's own unit (memory: MB) added on top.
    """

    name: str
    higher_is_better: bool
    kind: str
    tolerance: float
    slack_abs: float = 0.0

    def matches(self, metric: str) -> bool:
        return fnmatch.fnmatchcase(metric, self.name)


DEFAULT_RULES: tuple[MetricRule, ...] = (
    # Timing: minimum effect 5% (pytest-benchmark users' habit); significance comes from the rank test.
    MetricRule("fps", True, "timing", 5.0),
    MetricRule("latency_p50_ms", False, "timing", 5.0),
    # Tails move more between runs than the median: 10%, and the fast half must have moved as well.
    MetricRule("latency_p90_ms", False, "timing", 10.0),
    # Peak RSS of a worker is dominated by the runtime; allocator and page-cache jitter is a few MB
    # whatever the model size, hence a small percentage plus an absolute slack.
    MetricRule("peak_memory_mb", False, "memory", 5.0, slack_abs=2.0),
    MetricRule("model_memory_mb", False, "memory", 10.0, slack_abs=2.0),
    # Accuracy on a fixed evaluation set is deterministic for one runtime; 0.5 points absorbs numeric
    # differences between runtime versions, and anything bigger is a real change.
    MetricRule("top1_pct", True, "accuracy", 0.5),
    MetricRule("top5_pct", True, "accuracy", 0.5),
    MetricRule("map50_pct", True, "accuracy", 0.5),
    # Power and energy are single readings without samples to test: a wider band than timing.
    MetricRule("energy_per_inference_j", False, "energy", 10.0),
    MetricRule("power_mean_w", False, "energy", 10.0),
    MetricRule("fom_*_per_j", True, "energy", 10.0),
    # Event counts per inference (instructions, cache loads) barely move unless the work changed.
    MetricRule("*_per_inference", False, "counter", 5.0),
)


#: above this share of its runnable time spent waiting for a CPU, a worker shared the machine with other load: the
#: result says so and its timing is not judged (idle runs here waited 0.4-1.2%, beside a 1-core CPU hog 38-49%);
#: ``--edgeperf-max-cpu-wait`` overrides it (config.Settings.max_cpu_wait_pct)
BUSY_CPU_WAIT_PCT = 10.0


class ToleranceError(EdgeperfError, ValueError):
    """A bad tolerance spec (option, ini or marker); the message names the bad part."""


def rule_for(metric: str, rules: tuple[MetricRule, ...] = DEFAULT_RULES) -> MetricRule | None:
    """The rule judging ``metric``: an exact name wins over a pattern; None if the metric has no rule."""
    for rule in rules:
        if rule.name == metric:
            return rule
    for rule in rules:
        if rule.matches(metric):
            return rule
    return None


_KEY_RE = re.compile(r"^[A-Za-z_*][A-Za-z0-9_*]*$")
_VALUE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|pp)?\s*$")


def parse_tolerances(
    spec: str | Mapping[str, object] | None, rules: tuple[MetricRule, ...] = DEFAULT_RULES
) -> dict[str, float]:
    """``"fps=5%,peak_memory_mb=10%,top1_pct=0.5"`` (or a marker dict) -> ``{"fps": 5.0, ...}``.

    Keys are a metric name, a rule pattern (``*_per_inference``) or a kind (``timing`` sets every
    timing metric). Values are percent, or percentage points for accuracy (``0.5`` or ``0.5pp``; a
    ``%`` there is refused because "0.5%" of 90% top-1 and 0.5 points are different things).
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        pairs: list[tuple[object, object]] = []
        for part in spec.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ToleranceError(f"tolerance {part.strip()!r}: expected metric=value, e.g. fps=5%")
            pairs.append((key.strip(), value.strip()))
    elif isinstance(spec, Mapping):
        pairs = [(key, value) for key, value in spec.items()]
    else:
        raise ToleranceError(f"tolerance must be a string or a dict, got {type(spec).__name__}")
    out: dict[str, float] = {}
    for key, raw in pairs:
        shown = f"{key}={raw}"
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ToleranceError(f"tolerance {shown!r}: {key!r} is not a metric name")
        kind = key if key in KINDS else None
        rule = None if kind else rule_for(key, rules)
        if kind is None and rule is None:
            known = ", ".join(r.name for r in rules)
            raise ToleranceError(f"tolerance {shown!r}: no rule judges {key!r} (known: {known}; or a kind: "
                                 f"{', '.join(KINDS)})")
        kind = kind or rule.kind  # type: ignore[union-attr]
        if isinstance(raw, bool):
            raise ToleranceError(f"tolerance {shown!r}: value must be a number")
        if isinstance(raw, (int, float)):
            value, unit = float(raw), None
        elif isinstance(raw, str) and (m := _VALUE_RE.match(raw)):
            value, unit = float(m.group(1)), m.group(2)
        else:
            raise ToleranceError(f"tolerance {shown!r}: value must be a non-negative number like 5% or 0.5")
        if not math.isfinite(value) or value < 0:
            raise ToleranceError(f"tolerance {shown!r}: value must be a finite non-negative number")
        if kind == "accuracy" and unit == "%":
            raise ToleranceError(f"tolerance {shown!r}: accuracy drops are in percentage points, write "
                                 f"{key}={value:g} or {key}={value:g}pp")
        if kind != "accuracy" and unit == "pp":
            raise ToleranceError(f"tolerance {shown!r}: percentage points apply to accuracy only, write "
                                 f"{key}={value:g}%")
        out[key] = value
    return out


def merge_tolerances(*layers: Mapping[str, float] | None) -> dict[str, float]:
    """Later layers win: call as ``merge_tolerances(ini, command_line, marker)``."""
    out: dict[str, float] = {}
    for layer in layers:
        out.update(layer or {})
    return out


def tolerance_for(metric: str, rule: MetricRule, tolerances: Mapping[str, float]) -> float:
    """Exact metric name, then the rule's pattern, then the kind, then the rule's default."""
    for key in (metric, rule.name, rule.kind):
        if key in tolerances:
            return float(tolerances[key])
    return rule.tolerance
