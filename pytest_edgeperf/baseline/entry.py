"""One test's baseline entry: what a Result leaves behind, whether it may, and its bounded noise history.

Each entry keeps a bounded ``history`` of its earlier comparable recordings (per-process statistics only, ~12
numbers each), from which the verdict learns how far the test's timing moves between runs (``noise.py``).
"""

from __future__ import annotations

import math
import shlex
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from pytest_edgeperf.result import STATUS_OK, Result, comparable_environment
from pytest_edgeperf.verdict import noise

from .validate import (
    ANY_RANGE,
    SAMPLE_RANGES,
    BaselineError,
    _check_history_item,
    _check_list,
    _out_of_range,
    _range_text,
    _shown,
    metric_range,
)

# Raw samples kept per metric. 2000 values give a rank test plenty of power and keep one entry ~16 KB.
MAX_STORED_SAMPLES = 2000
# Significant digits kept for stored floats: far below measurement noise, and it keeps diffs short.
_STORED_DIGITS = 6


def _round(x: float) -> float:
    return float(f"{x:.{_STORED_DIGITS}g}")


def decimate(values: np.ndarray | list[float], limit: int = MAX_STORED_SAMPLES) -> list[float]:
    """At most ``limit`` values, taken at evenly spaced positions in time order (deterministic).

    Evenly spaced picks keep both the distribution and the time structure (warm-up drift, throttling)
    visible, and the same input always stores the same output, so re-recording unchanged data gives
    an empty diff.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size > limit:
        idx = np.linspace(0, arr.size - 1, limit).round().astype(int)
        arr = arr[idx]
    return [_round(float(v)) for v in arr]


def default_recorded_by(environment: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Who/what recorded a baseline: host, command line and git commit (if the environment has one)."""
    env = environment or {}
    commit = env.get("git_commit") or env.get("commit") or ""
    return {
        "host": socket.gethostname(),
        "command": shlex.join(["pytest", *sys.argv[1:]]) if sys.argv else "",
        "git_commit": str(commit),
    }


def recordable_reason(result: Result) -> str | None:
    """Why a result must NOT become a baseline (quick, not ok, no valid samples), or None if it may."""
    if result.quick:
        return "quick run (--edgeperf-quick) results are never recorded as baselines"
    if result.status != STATUS_OK:
        return f"status is {result.status!r}" + (f": {result.status_reason}" if result.status_reason else "")
    if result.valid_count == 0:
        return "no valid samples"
    return None


#: how the warning of a baseline recorded on a busy machine begins (BaselineEntry.recorded_busy reads it back)
BUSY_WARNING = "recorded on a busy machine"


def busy_warning(result: Result, max_cpu_wait_pct: float) -> str | None:
    """What to say about a baseline recorded on a busy machine, or None when the machine was not busy.

    The verdict never judges timing against a baseline whose worker queued for a CPU more than the limit
    (``--edgeperf-max-cpu-wait``): such a recording still gates accuracy and memory, so it is stored, with this
    warning in the file (``warnings``) and in the update's summary, never silently.
    """
    pct = result.cpu_wait_pct
    if pct is None or pct <= max_cpu_wait_pct:
        return None
    return (f"{BUSY_WARNING} (the worker waited for a CPU {pct:.0f}% of its runnable time, limit "
            f"{max_cpu_wait_pct:g}%, --edgeperf-max-cpu-wait): timing is not judged against this baseline "
            "(INCONCLUSIVE) until it is re-recorded on an idle machine; accuracy and memory are")


@dataclass
class BaselineEntry:
    """What one test recorded: summary metrics, bounded raw valid samples, environment, provenance."""

    metrics: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)  # "latency_ms": per-inference, valid only
    sample_count: int = 0  # valid samples measured (before decimation)
    environment: dict[str, Any] = field(default_factory=dict)
    recorded_at: str = ""  # ISO-8601 UTC
    recorded_by: dict[str, str] = field(default_factory=dict)
    quick: bool = False
    # earlier comparable recordings, newest first: {"recorded_at", "process_latency_ms", "process_reference_ms"};
    # what the run-to-run noise is learnt from (noise.py), at most noise.HISTORY_LIMIT of them
    history: list[dict[str, Any]] = field(default_factory=list)
    # what a reader of the file must know about this recording (a busy machine), one line each
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_result(
        cls,
        result: Result,
        *,
        recorded_at: str | None = None,
        recorded_by: dict[str, str] | None = None,
        max_samples: int = MAX_STORED_SAMPLES,
    ) -> BaselineEntry:
        """Snapshot a Result; check ``recordable_reason`` first (this does not refuse quick/invalid runs)."""
        lat_ms = result.samples.valid_latencies_s() * 1e3
        env = comparable_environment(result)
        samples: dict[str, list[float]] = {"latency_ms": decimate(lat_ms, max_samples)} if lat_ms.size else {}
        per_process = result.process_statistics()
        if per_process:
            # what the verdict compares between runs: each process's fast-half mean, and its reference's
            samples["process_latency_ms"] = [_round(a) for a, _ in per_process]
            if all(b is not None for _, b in per_process):
                samples["process_reference_ms"] = [_round(b) for _, b in per_process]  # type: ignore[arg-type]
        return cls(
            metrics={k: _round(v) for k, v in sorted(result.metric_values().items())},
            samples=samples,
            sample_count=int(lat_ms.size),
            environment=_jsonable(env),
            recorded_at=recorded_at or datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            recorded_by=recorded_by if recorded_by is not None else default_recorded_by(env),
            quick=bool(result.quick),
        )

    def metric_samples(self, name: str) -> np.ndarray | None:
        """Raw values behind a timing metric, mirroring ``Result.metric_samples`` (None for scalars)."""
        lat = np.asarray(self.samples.get("latency_ms", []), dtype=float)
        if name == "fps":
            return 1e3 / lat[lat > 0]
        if name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
            return lat
        return None

    def process_statistics(self) -> list[tuple[float, float | None]]:
        """Per worker process (fast-half mean ms, reference ms or None), mirroring ``Result.process_statistics``."""
        lat = self.samples.get("process_latency_ms", [])
        ref = self.samples.get("process_reference_ms", [])
        if len(ref) != len(lat):
            ref = [None] * len(lat)  # type: ignore[list-item]
        return list(zip(lat, ref, strict=True))

    def recordings(self) -> list[list[tuple[float, float | None]]]:
        """This entry's per-process statistics, then those of each earlier recording in its history."""
        out = [self.process_statistics()]
        for item in self.history:
            lat, ref = item.get("process_latency_ms", []), item.get("process_reference_ms", [])
            out.append(list(zip(lat, ref if len(ref) == len(lat) else [None] * len(lat), strict=True)))
        return [r for r in out if r]

    @property
    def recorded_busy(self) -> bool:
        """Was this recorded on a busy machine (its file says so in ``warnings``)? Its timing then measured the
        other load, not this test's run-to-run noise."""
        return any(w.startswith(BUSY_WARNING) for w in self.warnings)

    def history_item(self) -> dict[str, Any]:
        """What this recording leaves in the history of the entry that replaces it."""
        item: dict[str, Any] = {"recorded_at": self.recorded_at}
        for key in ("process_latency_ms", "process_reference_ms"):
            if self.samples.get(key):
                item[key] = list(self.samples[key])
        return item

    def continued_from(self, old: BaselineEntry | None) -> BaselineEntry:
        """This entry with ``old`` and its history as its history, when they are comparable runs of one test.

        A different model, runtime (version), thread count, machine or timing budget starts afresh: the noise of
        the old set-up says nothing about the new one. A busy recording is left out, its history kept. Bounded by
        noise.HISTORY_LIMIT, oldest dropped.
        """
        if (old is None or old.quick or not old.samples.get("process_latency_ms")
                or not noise.history_comparable(old.environment, self.environment)):
            return self
        # a recording made on a busy machine stays out: its timing says how loaded the machine was, and one such
        # recording (7x slower on this project's VM) made the test's noise, and the device's pool, useless
        earlier = [] if old.recorded_busy else [old.history_item()]
        return replace(self, history=[*earlier, *old.history][: noise.HISTORY_LIMIT])

    def to_json(self) -> dict[str, Any]:
        extra = {"warnings": list(self.warnings)} if self.warnings else {}
        return {
            **extra,
            "history": [dict(sorted(h.items())) for h in self.history],
            "metrics": dict(sorted(self.metrics.items())),
            "samples": {k: list(v) for k, v in sorted(self.samples.items())},
            "sample_count": self.sample_count,
            "environment": self.environment,
            "recorded_at": self.recorded_at,
            "recorded_by": self.recorded_by,
            "quick": self.quick,
        }

    @classmethod
    def from_json(cls, data: Any) -> BaselineEntry:
        """Validate and build an entry; a wrong shape raises BaselineError (callers add the file name)."""
        if not isinstance(data, dict):
            raise BaselineError(f"entry is a {type(data).__name__}, expected an object")
        missing = [k for k in ("metrics", "environment", "recorded_at") if k not in data]
        if missing:
            raise BaselineError(f"entry is missing field(s) {', '.join(missing)}")
        metrics = data["metrics"]
        if not isinstance(metrics, dict):
            raise BaselineError("'metrics' must map metric names to finite numbers")
        for name, value in metrics.items():
            bounds = metric_range(name)
            if _out_of_range(value, bounds):
                raise BaselineError(f"'metrics': {name!r} is {_shown(value)}; it must be {_range_text(bounds)}")
        samples = data.get("samples", {})
        if not isinstance(samples, dict):
            raise BaselineError("'samples' must map names to lists of finite numbers")
        for name, values in samples.items():
            _check_list(f"'samples': {name!r}", values, SAMPLE_RANGES.get(name, ANY_RANGE))
        env = data["environment"]
        if not isinstance(env, dict):
            raise BaselineError("'environment' must be an object")
        recorded_at = data["recorded_at"]
        if not isinstance(recorded_at, str):
            raise BaselineError("'recorded_at' must be an ISO-8601 string")
        recorded_by = data.get("recorded_by", {})
        if not isinstance(recorded_by, dict):
            raise BaselineError("'recorded_by' must be an object")
        count = data.get("sample_count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BaselineError("'sample_count' must be a non-negative integer")
        quick = data.get("quick", False)
        if not isinstance(quick, bool):
            raise BaselineError("'quick' must be true or false")
        warnings = data.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise BaselineError("'warnings' must be a list of strings")
        history = data.get("history", [])
        if not isinstance(history, list):
            raise BaselineError("'history' must be a list of earlier recordings")
        for i, item in enumerate(history):
            _check_history_item(f"'history' item {i}", item)
        return cls(
            metrics={k: float(v) for k, v in metrics.items()},
            samples={k: [float(x) for x in v] for k, v in samples.items()},
            sample_count=count,
            environment=env,
            recorded_at=recorded_at,
            recorded_by={str(k): str(v) for k, v in recorded_by.items()},
            quick=quick,
            warnings=list(warnings),
            history=[{"recorded_at": h["recorded_at"],
                      **{k: [float(x) for x in h[k]] for k in ("process_latency_ms", "process_reference_ms") if k in h}}
                     for h in history],
        )


def _without_history(entry: BaselineEntry) -> dict[str, Any]:
    data = entry.to_json()
    data.pop("history")
    return data



def _jsonable(obj: Any) -> Any:
    """Environment values as plain JSON types (numpy scalars, paths and tuples turn up in practice)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return str(obj)
