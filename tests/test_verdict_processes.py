"""The timing verdict across worker processes and against the machine-speed reference (issue 4).

Results are built from known numbers: each process's latencies are a fixed jitter pattern times a per-process
speed, and the reference model's times carry the machine's speed of that moment. The verdict must tell a machine
that got slower (model and reference both move) from a model that got slower (only the model moves), and must not
call a change significant when separate processes of the same side disagree by as much.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_edgeperf import stats
from pytest_edgeperf.baseline import BaselineEntry
from pytest_edgeperf.result import Result, Samples
from pytest_edgeperf.verdict.judge import judge
from pytest_edgeperf.verdict.location import location_change
from pytest_edgeperf.verdict.outcome import IMPROVED, INCONCLUSIVE, PASS, REGRESSION

SAMPLES_PER_PROCESS = 80


def multi_process_result(model_speeds: list[float], machine_speeds: list[float], *, seed: int = 0,
                         model_ms: float = 2.0, reference_ms: float = 0.05, runtime: str = "1.17",
                         with_reference: bool = True) -> Result:
    """One Result from len(model_speeds) processes: process i's latencies are ``model_ms * model_speeds[i] *
    machine_speeds[i]`` with jitter, its reference times ``reference_ms * machine_speeds[i]`` with jitter."""
    rng = np.random.default_rng(seed)
    lat: list[float] = []
    proc: list[int] = []
    ref: list[float] = []
    ref_proc: list[int] = []
    for i, (model, machine) in enumerate(zip(model_speeds, machine_speeds, strict=True)):
        jitter = 1.0 + rng.gamma(2.0, 0.01, SAMPLES_PER_PROCESS)
        lat += list(model_ms * 1e-3 * model * machine * jitter)
        proc += [i] * SAMPLES_PER_PROCESS
        if with_reference:
            ref += list(reference_ms * 1e-3 * machine * (1.0 + rng.gamma(2.0, 0.01, 20)))
            ref_proc += [i] * 20
    return Result(
        test_id="t.py::test_x[onnxruntime]", framework="onnxruntime", model="m.onnx", device="pi4", threads=4,
        samples=Samples(latency_s=lat, valid=[True] * len(lat), process=proc, reference_s=ref,
                        reference_process=ref_proc),
        peak_rss_mb=100.0, environment={"model_sha256": "a" * 64, "runtime_version": runtime},
    )


def entry_of(result: Result) -> BaselineEntry:
    """Through the JSON form, as a baseline file stores it."""
    return BaselineEntry.from_json(json.loads(json.dumps(BaselineEntry.from_result(result).to_json())))


def verdicts(v) -> dict[str, str]:
    return {m.metric: m.verdict for m in v.metrics if m.kind == "timing"}


STEADY = [1.0, 1.0, 1.0, 1.0, 1.0]


def test_process_statistics_follow_processes_and_survive_the_baseline_file() -> None:
    result = multi_process_result([1.0, 1.1, 1.0], [1.0, 1.0, 1.2])
    stats_now = result.process_statistics()
    assert len(stats_now) == 3
    # process 2's latency is 1.2x process 0's and so is its reference: both show in the per-process values
    assert stats_now[2][0] / stats_now[0][0] == pytest.approx(1.2, rel=0.02)
    assert stats_now[2][1] / stats_now[0][1] == pytest.approx(1.2, rel=0.02)
    entry = entry_of(result)
    assert [round(a, 3) for a, _ in entry.process_statistics()] == [round(a, 3) for a, _ in stats_now]
    assert "reference_ms" in entry.metrics


def test_a_slower_machine_is_not_a_regression() -> None:
    """Machine 8% slower today (model and reference alike): raw times moved beyond 5%, the verdict passes."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result(STEADY, [1.08] * 5, seed=2)
    raw = stats.percent_change(base.metrics["latency_p50_ms"], now.metric_values()["latency_p50_ms"])
    assert raw is not None and raw > 6.0
    v = judge(now, base, {})
    assert verdicts(v) == {"fps": PASS, "latency_p50_ms": PASS, "latency_p90_ms": PASS}
    note = {m.metric: m.note for m in v.metrics}["fps"]
    assert "relative to the machine reference" in note and "reference +8" in note


def test_a_slower_model_on_the_same_machine_is_a_regression() -> None:
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result([1.10] * 5, STEADY, seed=2)
    v = judge(now, base, {})
    assert v.overall == REGRESSION
    assert verdicts(v)["fps"] == REGRESSION and verdicts(v)["latency_p50_ms"] == REGRESSION
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.p_value is not None and fps.p_value < 0.01


def test_a_slower_model_on_a_faster_machine_is_still_a_regression() -> None:
    """Raw times barely moved (model +10%, machine -7%): only the reference shows the model got slower."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result([1.10] * 5, [0.93] * 5, seed=2)
    assert verdicts(judge(now, base, {}))["fps"] == REGRESSION


def test_faster_model_is_improved() -> None:
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result([0.8] * 5, STEADY, seed=2)
    assert judge(now, base, {}).overall == IMPROVED


def test_processes_that_disagree_as_much_as_the_change_are_not_significant() -> None:
    """Each side's processes spread +-8%: a 7% move of their mean is not told apart from that spread."""
    spread = [0.92, 1.08, 0.95, 1.05, 1.0]
    base = entry_of(multi_process_result(spread, STEADY, seed=1))
    now = multi_process_result([s * 1.07 for s in reversed(spread)], STEADY, seed=2)
    loc = location_change(now, base)
    assert loc.change_pct == pytest.approx(7.0, abs=1.0)
    assert loc.p_value is not None and loc.p_value > 0.01
    v = judge(now, base, {})
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.verdict == PASS and "not significant between processes" in fps.note
    # the same 7% with processes that agree is a regression: the spread, not the size, made the difference
    tight_base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    tight_now = multi_process_result([1.07] * 5, STEADY, seed=2)
    assert verdicts(judge(tight_now, tight_base, {}))["fps"] == REGRESSION


def test_changed_runtime_version_compares_raw_times_and_says_why() -> None:
    """A runtime upgrade slows the reference too: normalising would hide its regression, so raw times decide."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1, runtime="1.17"))
    now = multi_process_result(STEADY, [1.10] * 5, seed=2, runtime="1.18")
    v = judge(now, base, {})
    assert verdicts(v)["fps"] == REGRESSION
    assert any("runtime version changed" in f and "without the machine reference" in f for f in v.flags)
    assert not location_change(now, base).normalized


def test_without_reference_on_either_side_raw_times_decide() -> None:
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1, with_reference=False))
    now = multi_process_result(STEADY, [1.10] * 5, seed=2)
    loc = location_change(now, base)
    assert not loc.normalized and loc.change_pct == pytest.approx(10.0, abs=1.0)
    assert verdicts(judge(now, base, {}))["fps"] == REGRESSION


def test_single_process_sides_use_the_pooled_fast_half_normalised() -> None:
    """An older one-process baseline against a one-process run: no process test, the reference still applies."""
    base = entry_of(multi_process_result([1.0], [1.0], seed=1))
    now = multi_process_result([1.0], [1.09], seed=2)
    loc = location_change(now, base)
    assert loc.p_value is None and loc.normalized
    assert abs(loc.change_pct) < 1.5
    assert verdicts(judge(now, base, {}))["fps"] == PASS


def test_welch_greater_direction_and_degenerate_inputs() -> None:
    low, high = [0.0, 0.01, -0.01, 0.005], [0.1, 0.11, 0.09, 0.105]
    assert stats.welch_greater(high, low) < 1e-4
    assert stats.welch_greater(low, high) > 0.999
    assert stats.welch_greater([1.0], [0.0, 0.1]) == 1.0  # one value: cannot say
    assert stats.welch_greater([1.0, 1.0], [0.0, 0.0]) == 0.0  # no spread: the order is the answer
    assert stats.welch_greater([0.0, 0.0], [0.0, 0.0]) == 1.0
    assert math.isfinite(stats.welch_greater([0.1, 0.2, float("nan")], [0.0, 0.05]))


def test_one_odd_process_neither_hides_nor_fakes_a_change() -> None:
    """Seen in bench_verdict.py: one process of five ran 20% slower than its siblings."""
    odd_base = entry_of(multi_process_result([1.2, 1.0, 1.0, 1.0, 1.0], STEADY, seed=1))
    # a real 10% slowdown is still found against the baseline with the odd process ...
    assert verdicts(judge(multi_process_result([1.10] * 5, STEADY, seed=2), odd_base, {}))["fps"] == REGRESSION
    # ... and an odd process in an unchanged run is not a regression
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    odd_now = multi_process_result([1.0, 1.0, 1.25, 1.0, 1.0], STEADY, seed=2)
    assert location_change(odd_now, base).change_pct == pytest.approx(0.0, abs=1.0)
    assert verdicts(judge(odd_now, base, {}))["fps"] == PASS


def test_a_busy_machine_leaves_timing_inconclusive_and_still_judges_memory() -> None:
    """A worker that queued for a CPU 45% of its runnable time (a 1-core hog on 2 cores): timing is not judged."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result([1.10] * 5, STEADY, seed=2)  # a real regression, hidden by the busy machine
    now.cpu_wait_pct = 45.0
    now.peak_rss_mb = 200.0  # memory doubled: still a regression
    v = judge(now, base, {})
    assert verdicts(v) == {"fps": INCONCLUSIVE, "latency_p50_ms": INCONCLUSIVE, "latency_p90_ms": INCONCLUSIVE}
    assert {m.metric: m.verdict for m in v.metrics}["peak_memory_mb"] == REGRESSION
    assert any(f.startswith("machine busy: in this run the worker waited for a CPU 45%") for f in v.flags)
    # the limit is the user's: 100 judges timing on a busy machine too
    assert verdicts(judge(now, base, {}, max_cpu_wait_pct=100.0))["fps"] == REGRESSION
    # a busy baseline is as untrustworthy as a busy run
    busy_base = multi_process_result(STEADY, STEADY, seed=1)
    busy_base.cpu_wait_pct = 30.0
    quiet_now = multi_process_result([1.10] * 5, STEADY, seed=2)
    quiet_now.cpu_wait_pct = 0.5
    v = judge(quiet_now, entry_of(busy_base), {})
    assert verdicts(v)["fps"] == INCONCLUSIVE and any("in the baseline" in f for f in v.flags)
    quiet_base = multi_process_result(STEADY, STEADY, seed=1)
    quiet_base.cpu_wait_pct = 0.9
    assert verdicts(judge(quiet_now, entry_of(quiet_base), {}))["fps"] == REGRESSION


def test_runs_timed_for_very_different_budgets_leave_timing_inconclusive() -> None:
    """A 1 s run against a 10 s baseline: timing is not judged either way, memory still is."""
    def timed_for(min_time_s: float | None, model_speed: float, seed: int) -> Result:
        result = multi_process_result([model_speed] * 5, STEADY, seed=seed)
        if min_time_s is not None:
            result.environment["min_time_s"] = min_time_s
        return result

    base = entry_of(timed_for(10.0, 1.0, seed=1))
    short = timed_for(1.0, 1.10, seed=2)  # a real 10% regression, but measured for a tenth of the time
    short.peak_rss_mb = 200.0
    v = judge(short, base, {})
    assert verdicts(v) == {"fps": INCONCLUSIVE, "latency_p50_ms": INCONCLUSIVE, "latency_p90_ms": INCONCLUSIVE}
    assert {m.metric: m.verdict for m in v.metrics}["peak_memory_mb"] == REGRESSION
    (flag,) = [f for f in v.flags if f.startswith("different timing budget")]
    assert "this run timed for at least 1 s, the baseline for 10 s" in flag and "--edgeperf-min-time=10" in flag
    assert {m.note for m in v.metrics if m.kind == "timing"} == {"different timing budget"}
    # the same the other way round, and just outside the factor 2
    assert verdicts(judge(timed_for(10.0, 1.1, 2), entry_of(timed_for(1.0, 1.0, 1)), {}))["fps"] == INCONCLUSIVE
    assert verdicts(judge(timed_for(4.9, 1.1, 2), entry_of(timed_for(10.0, 1.0, 1)), {}))["fps"] == INCONCLUSIVE
    # within the factor, and against a baseline that predates the recorded budget, timing is judged
    assert verdicts(judge(timed_for(5.0, 1.1, 2), entry_of(timed_for(10.0, 1.0, 1)), {}))["fps"] == REGRESSION
    assert verdicts(judge(timed_for(1.0, 1.1, 2), entry_of(timed_for(None, 1.0, 1)), {}))["fps"] == REGRESSION


def test_a_large_machine_shift_leaves_timing_inconclusive() -> None:
    """Seen in a suite run: reference 37% faster, OpenCV SqueezeNet 27% faster. Divided out that is a 25%
    "regression" of a model that got faster; past MAX_MACHINE_SHIFT_PCT the verdict does not judge timing."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    model_speed = 0.79 / 0.63  # the model scales less than the reference with the machine's state
    now = multi_process_result([model_speed] * 5, [0.63] * 5, seed=2)
    v = judge(now, base, {})
    assert verdicts(v) == {"fps": INCONCLUSIVE, "latency_p50_ms": INCONCLUSIVE, "latency_p90_ms": INCONCLUSIVE}
    (flag,) = [f for f in v.flags if f.startswith("machine speed changed")]
    assert "the reference model ran 37% faster than at the baseline (limit 15%)" in flag
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.change_pct is not None and fps.change_pct > 20  # raw fps went up...
    assert "relative to the machine reference" in fps.note  # ...and the note still shows the relative change
    # the same slower model on a machine 12% slower (inside the limit) is judged: REGRESSION
    assert verdicts(judge(multi_process_result([1.10] * 5, [1.12] * 5, seed=3), base, {}))["fps"] == REGRESSION


def test_raw_and_relative_changes_in_opposite_directions_are_inconclusive() -> None:
    """Reference 12% faster, model 2% faster in raw time: relative to the machine +11% slower. Either the model
    regressed on a faster machine or the machine sped the reference up more than the model; not a verdict."""
    base = entry_of(multi_process_result(STEADY, STEADY, seed=1))
    now = multi_process_result([0.98 / 0.88] * 5, [0.88] * 5, seed=2)
    loc = location_change(now, base)
    assert loc.change_pct > 8 and loc.raw_change_pct is not None and loc.raw_change_pct < 0
    v = judge(now, base, {})
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.verdict == INCONCLUSIVE and fps.note.startswith("raw and machine-relative changes disagree (raw -2")
    assert v.overall != REGRESSION
    # raw slower as well (the model regressed on a machine 5% faster): REGRESSION, as before
    slower = multi_process_result([1.12] * 5, [0.95] * 5, seed=2)
    assert verdicts(judge(slower, base, {}))["fps"] == REGRESSION
