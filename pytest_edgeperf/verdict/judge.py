"""Per-metric regression rules and the verdict of one test against its baseline.

Each metric has a direction and a tolerance (``MetricRule``). Timing metrics are judged on raw samples:
a change must exceed the minimum effect (the tolerance, default 5%) AND be significant in a one-sided
Mann-Whitney U test, Holm-adjusted across the test's timing metrics (as asv does, plus a family-wise
correction so judging fps, p50 and p90 together does not multiply false alarms), AND, with several worker
processes a side, be significant between the processes (below). The effect is measured
on the fast half of the latency distribution (the mean of its faster half) and the rank test runs on the
faster half of each side: on a shared machine other processes only ever *add* time, mostly to the slow
half, while more work per inference moves every sample. The fast-half mean replaced the 1st percentile
because it uses half the samples instead of 1% of them (a 10 s run of a 100 ms model on a Pi has ~100
samples: its p1 is its minimum), and in benchmarks/bench_verdict.py (real plugin runs on a loaded 2-core
machine) it moved less between runs with 2 threads (sd 7.2% vs 11.2%, 22 runs) and about as little with
1 thread (2.0% vs 1.7%, 12 runs; not a significant difference). The table still shows the median-based
change the user knows (fps = 1 / median); the note gives the fast-half change that decided. p90 latency
must pass its own tolerance and the fast half must have moved too. Memory is judged on a percentage plus
an absolute slack, accuracy on a drop in percentage points, the rest on a percentage.

Between runs (``location_change``): separate runs of one model differ by more than one run's samples show (the
machine drifts, each process lands differently: 1.6-5% sd here, 30-140x one run's standard error), so a rank test
on samples alone is almost always "significant" and the minimum effect alone used to decide (~24% false alarms
in benchmarks/bench_verdict.py). Two things fix it: a measurement is several worker processes, and each process
times a fixed reference model between its samples. The decisive change is that of the trimmed mean of the
processes' fast-half means, each divided by its reference's (the machine's speed cancels), and it must also be
significant in a one-sided Yuen-Welch t-test across the processes.

Between recordings (``noise.py``): the processes of one run lie within seconds, while a shared machine drifts over
minutes, so the baseline also keeps its last few comparable recordings (the update makes two passes by default) and
the minimum effect becomes the larger of the tolerance and three sds of that run-to-run noise for a difference of two
runs, borrowing from the device's other tests when the test itself has few recordings.

Anything that makes a comparison untrustworthy (result status "inconclusive", too few valid samples, a
different device / runtime / thread count; for timing also a worker that queued for a CPU more than 10% of its
runnable time, i.e. a busy machine) gives INCONCLUSIVE, never REGRESSION: a gate that cries wolf gets switched
off.

Overall verdicts: REGRESSION (fails the test), NO_BASELINE (no baseline and ``strict=True``: fails the
test), INCONCLUSIVE, NEW (no baseline: passes with a notice), IMPROVED, PASS.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tabulate import tabulate

from pytest_edgeperf import stats
from pytest_edgeperf.baseline import BaselineEntry, comparable_environment
from pytest_edgeperf.config import BUSY_CPU_WAIT_PCT
from pytest_edgeperf.result import STATUS_OK, Result
from pytest_edgeperf.verdict import noise
from pytest_edgeperf.verdict.rules import DEFAULT_RULES, MetricRule, rule_for, tolerance_for
from pytest_edgeperf.verdict.rules import KINDS as KINDS  # re-exported: callers read the rules through the verdict too
from pytest_edgeperf.verdict.rules import ToleranceError as ToleranceError
from pytest_edgeperf.verdict.rules import merge_tolerances as merge_tolerances
from pytest_edgeperf.verdict.rules import parse_tolerances as parse_tolerances

PASS = "PASS"
REGRESSION = "REGRESSION"
IMPROVED = "IMPROVED"
INCONCLUSIVE = "INCONCLUSIVE"
NEW = "NEW"
NOT_JUDGED = "-"  # a metric without a rule: reported, never judged
NO_BASELINE = "NO_BASELINE"  # overall only: missing baseline under --edgeperf-strict (fails the test)
FAILING = frozenset({REGRESSION, NO_BASELINE})

DEFAULT_ALPHA = 0.01
# Worker processes each side before their spread is tested (a t-test on 2 values says nothing useful).
MIN_PROCESSES = 3
# Share of the processes cut off each end before averaging and testing them (Yuen's trimmed t-test): with the
# default 5 processes, the fastest and the slowest one. In bench_verdict.py one process in 75 ran 20% slower than
# its siblings; untrimmed, that one process hid a 10% regression behind its spread.
PROCESS_TRIM = noise.PROCESS_TRIM
# Valid samples each side before a timing metric is judged; a p90 needs more (MLPerf: >= 64 for p90).
MIN_TIMING_SAMPLES = 10
MIN_TAIL_SAMPLES = 64
# The change that decides a timing regression is that of the mean of the faster half of the latencies
# (stats.fast_half_mean): interference adds time mostly to the slow half, more work moves every sample.
# Environment keys that make two runs incomparable when they differ: a different input shape or dtype is another
# workload (INCONCLUSIVE with a note), never a regression. "inputs" (name, shape, dtype of each input as measured)
# is compared only where both sides have it; older baselines have "input_shape" (the first input) alone.
#: ``provider`` (the accelerator path that ran: ONNX Runtime's providers, a LiteRT delegate, OpenCV's backend/target)
#: and ``accelerator`` (what was asked for, with its options) too: CUDA against the CPU is no regression
INCOMPARABLE_KEYS = ("device", "runtime", "threads", "input_shape", "inputs", "provider", "accelerator")
# Keys whose change is worth a flag but does not stop the comparison.
FLAGGED_KEYS = ("runtime_version", "model_sha256")
#: for the ``host`` profile (any Linux machine), what identifies the machine whose timing a baseline holds
#: (device/environment.py); a key missing on either side (a baseline from before it was recorded) is not compared
HOST_IDENTITY_KEYS = ("cpu", "cpu_id", "machine", "cpu_count", "hostname")
#: timing is judged only between runs whose minimum timed time (``environment["min_time_s"]``) differs by at most
#: this factor: a much shorter run warms up less and its processes see seconds, not the tens of seconds of
#: the machine's drift the baseline's processes were spread over (a 1 s run against 10 s baselines raised a false
#: -19% fps alarm, see benchmarks/README.md)
BUDGET_RATIO = noise.BUDGET_RATIO
#: the machine reference corrects drift of a few percent; when it moved more than this between the two runs the
#: machine was in another state (a slow spell of the VM's host, another clock) that does not scale every model
#: alike: in one suite run the reference was 37% faster and OpenCV SqueezeNet 27% faster, which divided out would
#: have read as a 25% regression. Timing is then INCONCLUSIVE.
MAX_MACHINE_SHIFT_PCT = 15.0


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
                parts.append(f"{m.metric} {_fmt_num(m.baseline)} -> {_fmt_num(m.current)} ({_fmt_change(m)})")
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
        """Store the verdict on the Result (``verdicts`` / ``overall_verdict``) for the JSON report."""
        result.verdicts = self.to_json()["metrics"]
        result.overall_verdict = self.overall


def _environment_differences(
    current: Mapping[str, Any], baseline: Mapping[str, Any], keys: tuple[str, ...]
) -> list[str]:
    diffs: dict[str, str] = {}
    for key in keys:
        a, b = baseline.get(key), current.get(key)
        if key == "inputs":
            a, b = _input_signature(a), _input_signature(b)
        if a is not None and b is not None and str(a) != str(b):
            diffs[key] = f"{key} {a} -> {b}"
    if "inputs" in diffs:
        diffs.pop("input_shape", None)  # the full signature says it already
    return list(diffs.values())


def _input_signature(inputs: Any) -> str | None:
    """``name 1x3x224x224 float32; ...``: the measured inputs in a form a note can show (quantisation left out)."""
    if not isinstance(inputs, list) or not inputs:
        return None
    parts = []
    for spec in inputs:
        if not isinstance(spec, Mapping):
            return str(inputs)
        shape = "x".join(str(d) for d in spec.get("shape") or []) or "scalar"
        parts.append(f"{spec.get('name')} {shape} {spec.get('dtype')}")
    return "; ".join(parts)


def _overall(verdicts: list[str]) -> str:
    for name in (REGRESSION, INCONCLUSIVE, NEW, IMPROVED):
        if name in verdicts:
            return name
    return PASS


def judge(
    current: Result,
    baseline: BaselineEntry | None,
    tolerances: Mapping[str, float],
    *,
    alpha: float = DEFAULT_ALPHA,
    strict: bool = False,
    rules: tuple[MetricRule, ...] = DEFAULT_RULES,
    max_cpu_wait_pct: float = BUSY_CPU_WAIT_PCT,
    noise_prior: Callable[[bool], noise.NoisePrior | None] | None = None,
) -> TestVerdict:
    """Judge every metric of ``current`` against ``baseline`` and combine them into the test's verdict.

    ``noise_prior(by_reference)`` gives the device's pooled run-to-run variance (``BaselineStore.noise_prior``),
    which a baseline with few recordings borrows from.
    """
    values = current.metric_values()
    flags: list[str] = []

    if baseline is None:
        metrics = []
        for name, value in values.items():
            rule = rule_for(name, rules)
            metrics.append(MetricVerdict(
                name, None, value, None, None, tolerance_for(name, rule, tolerances) if rule else None,
                NEW if rule else NOT_JUDGED, "no baseline", rule.kind if rule else "",
                slack_abs=rule.slack_abs if rule else 0.0,
            ))
        flags.append("no baseline: record one with --edgeperf-update-baselines")
        return TestVerdict(NO_BASELINE if strict else NEW, metrics, flags)

    env_now = comparable_environment(current)
    blocked = ""
    if current.status != STATUS_OK:
        reason = f" ({current.status_reason})" if current.status_reason else ""
        blocked = f"result is {current.status}{reason}"
    elif diffs := _environment_differences(env_now, baseline.environment, INCOMPARABLE_KEYS):
        blocked = "incomparable environment: " + ", ".join(diffs)
    if blocked:
        flags.append(blocked)
    if baseline.quick:
        flags.append("baseline was recorded by a quick run")
    for diff in _environment_differences(env_now, baseline.environment, FLAGGED_KEYS):
        if diff.startswith("model_sha256"):
            flags.append("model changed since baseline (sha256 "
                         f"{str(baseline.environment.get('model_sha256'))[:12]} -> "
                         f"{str(env_now.get('model_sha256'))[:12]})")
        else:
            key, change = diff.split(" ", 1)
            flags.append(f"{key.replace('_', ' ')} changed since baseline ({change})")

    # "host" is not a hardware class like pi3: its timing is comparable only on the machine that recorded it
    timing_blocked, timing_note = "", ""
    host_diffs = (_environment_differences(env_now, baseline.environment, HOST_IDENTITY_KEYS)
                  if str(env_now.get("device")) == "host" else [])
    if host_diffs:
        timing_blocked = ("host baseline recorded on another machine (" + ", ".join(host_diffs) + "): timing is "
                          "judged only on the machine that recorded it; accuracy and memory still are")
        timing_note = "recorded on another machine"
        flags.append(timing_blocked)
    # A worker that queued for a CPU shared the machine with other load: its times say more about that load
    # than about the model (bench_verdict.py under a 1-core CPU hog: waits 38-49% vs 0.4-1.2% idle, and 3% of
    # A/A pairs failed while 74% of 10% slowdowns hid in the spread). Timing is then not judged either way.
    elif busy := _busy(current.cpu_wait_pct, baseline.metrics.get("cpu_wait_pct"), max_cpu_wait_pct):
        timing_blocked, timing_note = busy, "machine busy"
        flags.append(busy)
    elif budget := _budget_mismatch(env_now.get("min_time_s"), baseline.environment.get("min_time_s")):
        timing_blocked, timing_note = budget, "different timing budget"
        flags.append(budget)

    names = list(values) + [n for n in baseline.metrics if n not in values]
    metrics: list[MetricVerdict] = []
    # Timing metrics first get their raw one-sided p-values, then Holm across them, then the decision.
    pending: list[tuple[MetricVerdict, MetricRule, float, float]] = []
    warned = False
    location: LocationChange | None = None
    for name in names:
        rule = rule_for(name, rules)
        cur, base = values.get(name), baseline.metrics.get(name)
        tol = tolerance_for(name, rule, tolerances) if rule else None
        mv = MetricVerdict(name, base, cur, None, None, tol, NOT_JUDGED, kind=rule.kind if rule else "",
                           slack_abs=rule.slack_abs if rule else 0.0)
        metrics.append(mv)
        if cur is not None and base is not None:
            mv.change_abs = cur - base
            mv.change_pct = stats.percent_change(base, cur)
        if rule is None:
            mv.note = "no rule: reported only"
            continue
        if cur is None:
            mv.note = "not measured in this run"
            continue
        if base is None:
            mv.verdict, mv.note = NEW, "not in the baseline"
            continue
        if blocked:
            mv.verdict, mv.note = INCONCLUSIVE, blocked
            continue
        if rule.kind == "timing" and timing_blocked:
            mv.verdict, mv.note = INCONCLUSIVE, timing_note
            continue
        if rule.kind == "timing":
            now_s, base_s = current.metric_samples(name), baseline.metric_samples(name)
            need = MIN_TAIL_SAMPLES if name in ("latency_p90_ms", "latency_p99_ms") else MIN_TIMING_SAMPLES
            n_now = 0 if now_s is None else len(now_s)
            n_base = 0 if base_s is None else len(base_s)
            if min(n_now, n_base) < need:
                mv.verdict = INCONCLUSIVE
                mv.note = f"too few valid samples (now {n_now}, baseline {n_base}; need {need})"
                continue
            if not warned and (warning := stats.stability_warning(now_s)):
                flags.append(f"{name}: {warning}")
                warned = True
            if location is None:
                location = location_change(current, baseline)
                if location.note_flag:
                    flags.append(location.note_flag)
            lat_now = current.metric_samples("latency_p50_ms")
            lat_base = baseline.metric_samples("latency_p50_ms")
            floor_pct = location.change_pct
            # One-sided rank test on the faster half of each side (each scaled by its machine-speed reference
            # when both have one), in the direction the location moved.
            slower = floor_pct > 0
            low_now = _faster_half(lat_now) / location.scale_now
            low_base = _faster_half(lat_base) / location.scale_base
            p = stats.mann_whitney_greater(*((low_now, low_base) if slower else (low_base, low_now)))
            pending.append((mv, rule, p, floor_pct or 0.0))
            continue
        mv.verdict, mv.note = _judge_scalar(rule, base, cur, tol or 0.0)

    adjusted = stats.holm_adjust([p for _, _, p, _ in pending])
    location_tol = min((mv.tolerance or 0.0 for mv, _r, _, _ in pending if mv.metric != "latency_p90_ms"),
                       default=5.0)
    shift = location.machine_pct if location is not None else None
    run_noise = None
    if location is not None:
        prior = noise_prior(location.normalized) if noise_prior is not None else None
        run_noise = noise.learn(baseline.recordings(), location.normalized, prior)
    noise_floor = run_noise.floor_pct if run_noise is not None else 0.0
    if run_noise is not None and noise_floor > location_tol:
        flags.append(f"timing: {run_noise.describe()}, above the {location_tol:g}% tolerance")
    machine_shifted = shift is not None and abs(shift) > MAX_MACHINE_SHIFT_PCT
    if machine_shifted:
        assert shift is not None
        flags.append(f"machine speed changed: the reference model ran {abs(shift):.0f}% "
                     f"{'slower' if shift > 0 else 'faster'} than at the baseline (limit {MAX_MACHINE_SHIFT_PCT:g}%); "
                     "timing is not judged: re-run on a steady machine")
    for (mv, _rule, _raw_p, floor_pct), p_adj in zip(pending, adjusted, strict=True):
        assert location is not None
        # both tests must agree: the samples' rank test (Holm) and, with several processes, the processes'
        p_process = location.p_value
        mv.p_value = p_adj if p_process is None else max(p_adj, p_process)
        change = mv.change_pct if mv.change_pct is not None else 0.0
        tol = mv.tolerance or 0.0
        mv.noise_floor_pct = noise_floor if run_noise is not None else None
        if mv.metric in ("latency_p90_ms", "latency_p99_ms"):
            # A tail metric: its own change must pass its tolerance, and the fast half must have moved
            # (beyond the location tolerance and the run-to-run noise) too, else the tail moved because of
            # other processes.
            beyond = abs(change) > tol and abs(floor_pct) > max(location_tol, noise_floor)
            within_noise = abs(change) > tol and abs(floor_pct) > location_tol and not beyond
        else:
            beyond = abs(floor_pct) > max(tol, noise_floor)
            within_noise = abs(floor_pct) > tol and not beyond
        floor_worse = floor_pct > 0
        floor_note = location.describe()
        raw_pct = location.raw_change_pct
        if machine_shifted:
            mv.verdict, mv.note = INCONCLUSIVE, f"machine speed changed; {floor_note}"
        elif within_noise:
            mv.verdict, mv.note = PASS, f"within the run-to-run noise (minimum effect {noise_floor:.1f}%); {floor_note}"
        elif not beyond:
            mv.verdict, mv.note = PASS, f"within the minimum effect; {floor_note}"
        elif p_adj >= alpha:
            mv.verdict, mv.note = PASS, f"not significant (p >= {alpha:g}, Holm-adjusted); {floor_note}"
        elif p_process is not None and p_process >= alpha:
            mv.verdict, mv.note = PASS, (f"not significant between processes (Yuen-Welch p = {p_process:.2g}); "
                                         f"{floor_note}")
        elif location.normalized and raw_pct is not None and (raw_pct > 0) != floor_worse:
            # relative to the reference it moved one way, in raw time the other: only the machine can say which
            mv.verdict, mv.note = INCONCLUSIVE, (f"raw and machine-relative changes disagree (raw {raw_pct:+.1f}%); "
                                                 f"{floor_note}")
        else:
            mv.verdict = REGRESSION if floor_worse else IMPROVED
            mv.note = floor_note

    return TestVerdict(
        _overall([m.verdict for m in metrics]), metrics, flags,
        baseline_recorded_at=baseline.recorded_at,
        baseline_commit=str(
            baseline.recorded_by.get("git_commit", "") or baseline.environment.get("git_commit", "")
        ),
    )


def _busy(now_pct: float | None, base_pct: float | None, limit: float) -> str:
    """Why timing cannot be judged because a side's worker waited for a CPU more than ``limit`` %, or ""."""
    for side, pct in (("this run", now_pct), ("the baseline", base_pct)):
        if pct is not None and pct > limit:
            return (f"machine busy: in {side} the worker waited for a CPU {pct:.0f}% of its runnable time "
                    f"(limit {limit:g}%, --edgeperf-max-cpu-wait); timing is not judged")
    return ""


def _budget_mismatch(now_s: Any, base_s: Any) -> str:
    """Why timing cannot be judged because the two runs were timed for very different lengths, or ""."""
    if noise.budgets_comparable(now_s, base_s):  # also a baseline from before the budget was recorded
        return ""
    now, base = float(now_s), float(base_s)
    return (f"different timing budget: this run timed for at least {now:g} s, the baseline for {base:g} s; "
            f"timing is judged only within a factor {BUDGET_RATIO:g} (--edgeperf-min-time={base:g} to compare, "
            "or record a baseline at this budget)")


@dataclass
class LocationChange:
    """How far the typical inference time moved, as the verdict decides it (see ``location_change``)."""

    change_pct: float  # change of the fast-half mean (machine-normalised when ``normalized``), percent
    p_value: float | None  # one-sided Yuen-Welch t-test between both sides' processes, None with < 3 a side
    normalized: bool  # divided by the reference model's time on each side
    processes: tuple[int, int]  # (baseline, now)
    scale_now: float = 1.0  # each side's reference time (ms), to scale raw samples for the rank test
    scale_base: float = 1.0
    machine_pct: float | None = None  # how much the reference itself moved (the machine's speed)
    note_flag: str = ""
    raw_change_pct: float | None = None  # the same statistic without the reference (equals change_pct if raw)

    def describe(self) -> str:
        parts = [f"fast-half mean {self.change_pct:+.1f}%"]
        if self.normalized:
            parts[0] += " relative to the machine reference"
            if self.machine_pct is not None:
                parts.append(f"reference {self.machine_pct:+.1f}%")
        if self.processes != (1, 1):
            parts.append(f"processes {self.processes[0]} -> {self.processes[1]}")
        return ", ".join(parts)


def location_change(current: Result, baseline: BaselineEntry) -> LocationChange:
    """The change the timing verdict decides on, from what both sides have.

    *Machine-normalised* when both sides timed the reference model in the same runtime version: each fast-half
    mean is divided by its own reference's, so a machine that is a few percent slower today (drift, a noisy
    neighbour, a different clock) does not read as a regression, while a slower model does. With a changed runtime
    version the raw times are compared (the reference would hide the runtime's own regression).
    *Per process* when both sides ran >= MIN_PROCESSES worker processes: the change is that of the 20%-trimmed
    mean of the logarithms of the processes' values, and it must also be significant in a one-sided Yuen-Welch
    t-test on them, so the spread between separate runs of the same model (which one run's samples cannot show)
    sets the bar, and one odd process cannot decide alone.
    """
    now, base = current.process_statistics(), baseline.process_statistics()
    v_now, v_base = current.environment.get("runtime_version"), baseline.environment.get("runtime_version")
    same_runtime = v_now is not None and v_base is not None and str(v_now) == str(v_base)
    have_reference = bool(now) and bool(base) and all(r for _, r in now) and all(r for _, r in base)
    normalized = same_runtime and have_reference
    flag = ""
    if have_reference and not same_runtime:
        flag = ("runtime version changed: timing is compared without the machine reference (it runs in the "
                "same runtime and would hide the runtime's own change)")
    ref_now, ref_base = current.reference_ms, baseline.metrics.get("reference_ms")
    machine_pct = stats.percent_change(ref_base, ref_now) if ref_now and ref_base else None

    def logs(side: list[tuple[float, float | None]], by_reference: bool) -> np.ndarray:
        return np.array([math.log(a / b) if by_reference and b else math.log(a) for a, b in side if a > 0])

    def trimmed_diff(by_reference: bool) -> float:  # the run locations the run-to-run noise is learnt on
        t_now, t_base = noise.run_location(now, by_reference), noise.run_location(base, by_reference)
        return float((t_now or 0.0) - (t_base or 0.0))

    l_now, l_base = logs(now, normalized), logs(base, normalized)
    p_value = None
    if l_now.size >= MIN_PROCESSES and l_base.size >= MIN_PROCESSES:
        diff = trimmed_diff(normalized)
        raw_diff = trimmed_diff(False) if normalized else diff
        first, second = (l_now, l_base) if diff > 0 else (l_base, l_now)
        p_value = stats.welch_greater(first, second, trim=PROCESS_TRIM)
    else:
        lat_now = current.metric_samples("latency_p50_ms")
        lat_base = baseline.metric_samples("latency_p50_ms")
        fh_now, fh_base = stats.fast_half_mean(lat_now), stats.fast_half_mean(lat_base)
        raw_diff = math.log(fh_now / fh_base) if fh_now and fh_base else 0.0
        if normalized and ref_now and ref_base:
            fh_now, fh_base = (fh_now or 0.0) / ref_now, (fh_base or 0.0) / ref_base
        diff = math.log(fh_now / fh_base) if fh_now and fh_base else 0.0
    scale_now = float(ref_now) if normalized and ref_now else 1.0
    scale_base = float(ref_base) if normalized and ref_base else 1.0
    return LocationChange(change_pct=math.expm1(diff) * 100.0, p_value=p_value, normalized=normalized,
                          processes=(max(1, len(base)), max(1, len(now))), scale_now=scale_now,
                          scale_base=scale_base, machine_pct=machine_pct if normalized else None, note_flag=flag,
                          raw_change_pct=math.expm1(raw_diff) * 100.0)


def _faster_half(values: np.ndarray) -> np.ndarray:
    """The faster half of the latencies: the rank test then ignores the interference-dominated tail."""
    arr = np.sort(np.asarray(values, dtype=float))
    return arr[: max(stats.MIN_SAMPLES_FOR_TEST, (arr.size + 1) // 2)]


def _judge_scalar(rule: MetricRule, base: float, cur: float, tol: float) -> tuple[str, str]:
    """Memory / accuracy / energy / counters / scalars: one number each side, a band around the baseline."""
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


# --- presentation --------------------------------------------------------------------------------------
def _fmt_num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}"


def _fmt_change(m: MetricVerdict) -> str:
    if m.kind == "accuracy" and m.change_abs is not None:
        return f"{m.change_abs:+.2f} pp"
    if m.change_pct is None:
        return "-"
    return f"{m.change_pct:+.1f}%"


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
        [m.metric, _fmt_num(m.baseline), _fmt_num(m.current), _fmt_change(m), _fmt_p(m.p_value),
         _fmt_tol(m), m.verdict, m.note]
        for m in v.metrics
    ]
    table = tabulate(rows, headers=["metric", "baseline", "now", "change", "p-value", "tolerance", "verdict",
                                    "note"], disable_numparse=True)
    lines = [v.summary_line(), table]
    lines += [f"note: {flag}" for flag in v.flags]
    return "\n".join(lines)
