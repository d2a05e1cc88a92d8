"""The measurement result of one (test, framework): raw values first, summaries derived, and its JSON form.

Every other stage reads or extends a ``Result``: the guard and sampler mark samples invalid, the power meter
adds ``power``, the accuracy pass adds ``accuracy``, the verdict adds ``verdicts``. Raw samples are kept so
that baselines and reports can always recompute a summary instead of trusting a stored number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pytest_edgeperf.schema import RESULTS_SCHEMA_VERSION as RESULT_SCHEMA_VERSION

# Result.status values.
STATUS_OK = "ok"  # enough valid samples, numbers are trustworthy
STATUS_INCONCLUSIVE = "inconclusive"  # measured, but too few valid samples (throttling, noise): never a regression
STATUS_ERROR = "error"  # the worker crashed, hung or the runtime refused the model
STATUS_DISABLED = "disabled"  # --edgeperf-disable: the model ran once in-process; nothing measured, no figures

# Result.limits[i]["verdict"] values; LIMIT_FAIL is also the Result.verdict of a breached limit.
LIMIT_PASS = "PASS"
LIMIT_FAIL = "FAIL"
LIMIT_NOT_MEASURED = "NOT_MEASURED"


@dataclass
class TimelinePoint:
    """One sensor reading taken while the worker was timing; ``t_s`` is on the samples' clock (perf_counter)."""

    t_s: float
    freq_ghz: float | None = None
    temp_c: float | None = None
    throttled: int | None = None
    cpu_percent: float | None = None
    power_w: float | None = None


@dataclass
class Samples:
    """Per-inference raw values from the timed window, in the order they were taken.

    ``latency_s`` is the whole per-sample time (preprocessing + inference) that throughput is computed from;
    ``preprocess_s`` is the preprocessing share of it (all zeros when the test feeds ready tensors).
    ``process`` is the worker process each sample came from (empty: one process); ``reference_s`` are the
    machine-speed reference model's times taken between the samples (``reference_process`` likewise).
    """

    start_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    preprocess_s: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    process: list[int] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)
    reference_process: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.latency_s)

    def valid_latencies_s(self) -> np.ndarray:
        lat = np.asarray(self.latency_s, dtype=float)
        if not self.valid:
            return lat
        return lat[np.asarray(self.valid, dtype=bool)]

    def valid_preprocess_s(self) -> np.ndarray:
        pre = np.asarray(self.preprocess_s, dtype=float)
        if not self.valid or len(pre) != len(self.valid):
            return pre
        return pre[np.asarray(self.valid, dtype=bool)]

    @property
    def valid_count(self) -> int:
        return int(sum(self.valid)) if self.valid else len(self.latency_s)

    def per_process(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(valid latencies, reference times) of each worker process, in process order."""
        lat = self.valid_latencies_s()
        ref = np.asarray(self.reference_s, dtype=float)
        if not self.process or len(self.process) != len(self.latency_s):
            return [(lat, ref)]
        proc = np.asarray(self.process, dtype=int)
        if self.valid and len(self.valid) == len(proc):
            proc = proc[np.asarray(self.valid, dtype=bool)]
        ref_proc = np.asarray(self.reference_process, dtype=int)
        if ref_proc.size != ref.size:
            ref_proc = np.full(ref.size, -1)
        return [(lat[proc == i], ref[ref_proc == i]) for i in sorted(set(self.process))]


@dataclass
class Result:
    """Everything measured for one (test, framework) pair."""

    test_id: str
    framework: str
    model: str
    device: str
    status: str = STATUS_OK
    status_reason: str = ""
    quick: bool = False
    threads: int = 0
    load_time_s: float | None = None
    first_inference_s: float | None = None
    window_start_unix_s: float | None = None  # wall clock at the first timed sample (aligns external power logs)
    window_start_s: float | None = None  # perf_counter at the first timed sample
    window_end_s: float | None = None
    windows: list[list[float]] = field(default_factory=list)  # [start, end] of each process's window (several)
    samples: Samples = field(default_factory=Samples)
    rss_before_load_mb: float | None = None
    rss_after_load_mb: float | None = None
    peak_rss_mb: float | None = None  # VmHWM of the worker: includes the runtime, the model and the inputs
    # each worker process's VmHWM (peak_rss_mb is the highest): shows whether a peak is one process's or all's
    process_peak_rss_mb: list[float] = field(default_factory=list)
    cpu_percent: float | None = None  # worker CPU time / wall time over the timed window (100 = one core)
    cpu_wait_pct: float | None = None  # share of the worker's runnable time spent waiting for a CPU (busy machine)
    timeline: list[TimelinePoint] = field(default_factory=list)
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    notes: list[str] = field(default_factory=list)
    device_start: dict[str, Any] = field(default_factory=dict)
    device_end: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)  # e.g. {"top1_pct": 91.2, "top5_pct": 99.1}
    power: dict[str, Any] = field(default_factory=dict)  # see pytest_edgeperf.power.summary
    counters: dict[str, Any] = field(default_factory=dict)  # see pytest_edgeperf.counters
    extra_metrics: dict[str, float] = field(default_factory=dict)  # added by a test: result.add_metric(...)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    overall_verdict: str = ""  # against the baseline only (NEW, PASS, REGRESSION, ...): see ``verdict``
    # every absolute limit or variant gate checked on this measurement: {"metric", "op", "limit", "measured",
    # "verdict"} with verdict PASS, FAIL or NOT_MEASURED (a limit on a figure that was not measured fails too)
    limits: list[dict[str, Any]] = field(default_factory=list)
    test_outcome: str = ""  # the pytest outcome of the test that measured it: passed, failed or skipped
    # what every report shows: the baseline verdict, the limits and the test's own outcome agreed
    # (report/outcome.py); FAIL for a breached limit, so no report says NEW for a test that failed
    verdict: str = ""
    verdict_reason: str = ""
    # the baseline latencies (ms) the verdict compared this result against, for the HTML report's distribution
    # chart: the report does not look the baseline up a second time. Only an xdist worker's handoff carries them
    # (``to_json(handoff=True)``); the results file leaves them out, the baseline file has them.
    baseline_latency_ms: list[float] = field(default_factory=list, repr=False, compare=False)

    def __repr__(self) -> str:
        """One short line: pytest prints it in every failed assertion about a result (the samples are thousands)."""
        fps = self.fps
        return (f"Result({self.test_id!r}, {self.framework!r}, {self.model!r}, status={self.status!r}, "
                f"valid={self.valid_count}, fps={'n/a' if fps is None else f'{fps:.4g}'})")

    # --- summaries derived from raw values -------------------------------------------------------------
    @property
    def valid_count(self) -> int:
        return self.samples.valid_count

    @property
    def invalid_count(self) -> int:
        return len(self.samples) - self.valid_count

    def latency_percentile_ms(self, q: float) -> float | None:
        lat = self.samples.valid_latencies_s()
        if lat.size == 0:
            return None
        return float(np.percentile(lat, q) * 1e3)

    @property
    def fps(self) -> float | None:
        """Batch-1 throughput: 1 / median per-sample time (preprocessing included), robust to outliers."""
        lat = self.samples.valid_latencies_s()
        if lat.size == 0:
            return None
        med = float(np.median(lat))
        return 1.0 / med if med > 0 else None

    @property
    def fps_mean(self) -> float | None:
        """Throughput as the seeds computed it: valid inferences / their summed time."""
        lat = self.samples.valid_latencies_s()
        if lat.size == 0 or float(lat.sum()) <= 0:
            return None
        return float(lat.size / lat.sum())

    @property
    def reference_ms(self) -> float | None:
        """Fast-half mean time of the machine-speed reference model (ms), None when it did not run."""
        return _fast_half_ms(np.asarray(self.samples.reference_s, dtype=float))

    def process_statistics(self) -> list[tuple[float, float | None]]:
        """Per worker process: (fast-half mean latency, fast-half mean reference time) in ms, valid samples only.

        A process with fewer than MIN_PROCESS_SAMPLES valid samples is left out (throttled away, mostly).
        """
        out = []
        for lat, ref in self.samples.per_process():
            if lat.size >= MIN_PROCESS_SAMPLES:
                out.append((_fast_half_ms(lat), _fast_half_ms(ref)))
        return [(a, b) for a, b in out if a is not None]

    def add_limit(self, metric: str, op: str, limit: float, measured: float | None) -> bool:
        """Record one limit check (``op`` is ">=" or "<="); True when it holds. Unmeasured never holds."""
        if measured is None:
            verdict = LIMIT_NOT_MEASURED
        else:
            verdict = LIMIT_PASS if (measured >= limit if op == ">=" else measured <= limit) else LIMIT_FAIL
        self.limits = [c for c in self.limits if c.get("metric") != metric]  # a re-check replaces the last one
        self.limits.append({"metric": metric, "op": op, "limit": float(limit),
                            "measured": None if measured is None else float(measured), "verdict": verdict})
        return verdict == LIMIT_PASS

    def failed_limits(self) -> list[dict[str, Any]]:
        return [c for c in self.limits if c.get("verdict") != LIMIT_PASS]

    @property
    def input_shape(self) -> list[int] | None:
        """The model input's shape as the worker fed it (dynamic dimensions resolved), None if unknown."""
        shape = self.environment.get("input_shape")
        return [int(v) for v in shape] if isinstance(shape, list | tuple) and shape else None

    def add_metric(self, name: str, value: float) -> None:
        """Record a test's own figure; it joins the table, the JSON and (with a known direction) the verdict."""
        self.extra_metrics[name] = float(value)

    def metric_values(self) -> dict[str, float]:
        """Every scalar metric this result has, by its unit-carrying name. Missing readings are left out."""
        out: dict[str, float] = {}

        def put(name: str, value: float | None) -> None:
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out[name] = float(value)

        put("fps", self.fps)
        put("latency_p50_ms", self.latency_percentile_ms(50))
        put("latency_p90_ms", self.latency_percentile_ms(90))
        put("latency_p99_ms", self.latency_percentile_ms(99))
        pre = self.samples.valid_preprocess_s()
        if pre.size and float(pre.max()) > 0:
            put("preprocess_p50_ms", float(np.median(pre) * 1e3))
            lat = self.samples.valid_latencies_s()
            put("inference_p50_ms", float(np.median(lat - pre) * 1e3))
        put("peak_memory_mb", self.peak_rss_mb)
        put("model_memory_mb", _delta(self.rss_after_load_mb, self.rss_before_load_mb))
        put("load_time_s", self.load_time_s)
        put("first_inference_ms", None if self.first_inference_s is None else self.first_inference_s * 1e3)
        put("cpu_percent", self.cpu_percent)
        put("reference_ms", self.reference_ms)
        put("cpu_wait_pct", self.cpu_wait_pct)
        for key, value in self.accuracy.items():
            if key.endswith("_pct"):  # "n" (images scored) is a count, not a metric
                put(key, value)
        for key in ("power_mean_w", "energy_per_inference_j", "fom_top1_per_j", "fom_top5_per_j",
                    "fom_map50_per_j"):
            if key in self.power:
                put(key, self.power[key])
        for key, value in self.counters.get("per_inference", {}).items():
            put(f"{key}_per_inference", value)
        for key, value in self.extra_metrics.items():
            put(key, value)
        return out

    def metric_samples(self, name: str) -> np.ndarray | None:
        """Raw per-inference values behind a timing metric (for rank tests), or None for scalar metrics."""
        lat = self.samples.valid_latencies_s()
        if name == "fps":
            return 1.0 / lat[lat > 0]
        if name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
            return lat * 1e3
        return None

    # --- JSON ----------------------------------------------------------------------------------------
    def to_json(self, *, handoff: bool = False) -> dict[str, Any]:
        """The result's JSON form; ``handoff`` (an xdist worker to its controller) keeps the baseline latencies too."""
        data = asdict(self)
        if not handoff:
            del data["baseline_latency_ms"]
        # raw samples dominate the file: nanosecond resolution is what perf_counter gives; an all-zero
        # preprocessing list (ready tensors, no preprocessing) is stored empty
        samples = data["samples"]
        samples["start_s"] = [round(v, 9) for v in samples["start_s"]]
        samples["latency_s"] = [round(v, 9) for v in samples["latency_s"]]
        samples["preprocess_s"] = ([round(v, 9) for v in samples["preprocess_s"]]
                                   if any(samples["preprocess_s"]) else [])
        samples["reference_s"] = [round(v, 9) for v in samples["reference_s"]]

        data["schema_version"] = RESULT_SCHEMA_VERSION
        data["summary"] = self.metric_values()
        data["valid_count"] = self.valid_count
        data["invalid_count"] = self.invalid_count
        if not self.verdict:  # not settled by a test outcome (e.g. an interrupted run): limits still count
            data["verdict"] = LIMIT_FAIL if self.failed_limits() else self.overall_verdict
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["samples"] = Samples(**data.get("samples", {}))
        kwargs["timeline"] = [TimelinePoint(**p) for p in data.get("timeline", [])]
        return cls(**kwargs)


def comparable_environment(result: Result) -> dict[str, Any]:
    """Result.environment with the device, runtime and thread count filled in from the Result itself.

    What a baseline stores as its environment and what the verdict compares it with: both sides in one form.
    """
    env = dict(result.environment)
    env.setdefault("device", result.device)
    env.setdefault("runtime", result.framework)
    env.setdefault("threads", result.threads)
    env.setdefault("model", result.model)
    return env


@runtime_checkable
class Measured(Protocol):
    """What the verdict reads alike from both sides of a comparison: a ``Result`` and a ``BaselineEntry``.

    Declared so the two classes cannot drift apart unnoticed: each computes the same raw values its own way (a
    Result from its samples, a baseline entry from what it stored) and the verdict treats them symmetrically.
    """

    @property
    def environment(self) -> Mapping[str, Any]: ...

    def metric_samples(self, name: str) -> np.ndarray | None:
        """Raw per-inference values behind a timing metric (for rank tests), None for scalar metrics."""
        ...

    def process_statistics(self) -> list[tuple[float, float | None]]:
        """Per worker process: (fast-half mean latency ms, fast-half mean reference ms or None)."""
        ...


#: a worker process needs this many valid samples for its own fast-half mean
MIN_PROCESS_SAMPLES = 5


def _fast_half_ms(values: np.ndarray) -> float | None:
    """Mean of the faster half, in ms (the location statistic the verdict uses)."""
    from .stats import fast_half_mean

    value = fast_half_mean(values)
    return None if value is None else value * 1e3


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return a - b
