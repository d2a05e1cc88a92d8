"""Tests for pytest_edgeperf.verdict: rules, tolerance parsing, judge() and the failure table.

Results are built from samples drawn with numpy's seeded RNG: test data, not measurement claims.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_edgeperf import stats
from pytest_edgeperf.baseline import BaselineEntry
from pytest_edgeperf.result import STATUS_INCONCLUSIVE, Result, Samples
from pytest_edgeperf.verdict.judge import judge
from pytest_edgeperf.verdict.outcome import IMPROVED, INCONCLUSIVE, NEW, NO_BASELINE, NOT_JUDGED, PASS, REGRESSION
from pytest_edgeperf.verdict.rules import ToleranceError, merge_tolerances, parse_tolerances, rule_for
from pytest_edgeperf.verdict.table import format_verdict_table

NODE = "suites/test_arch.py::test_arch[squeezenet-onnxruntime]"


def make_result(
    seed: int,
    *,
    scale: float = 1.0,
    n: int = 400,
    peak_mb: float | None = 120.0,
    accuracy: dict[str, float] | None = None,
    env: dict | None = None,
    threads: int = 2,
    device: str = "pi4",
    status: str = "ok",
    latencies_s: np.ndarray | None = None,
) -> Result:
    """A Result whose latencies are ~20 ms with a right-skewed jitter, times ``scale``."""
    if latencies_s is None:
        rng = np.random.default_rng(seed)
        latencies_s = 0.020 * scale * (1.0 + rng.gamma(2.0, 0.02, n))
    lat = [float(x) for x in latencies_s]
    return Result(
        test_id=NODE, framework="onnxruntime", model="squeezenet", device=device, status=status,
        threads=threads, samples=Samples(latency_s=lat, valid=[True] * len(lat)), peak_rss_mb=peak_mb,
        accuracy=dict(accuracy or {}), environment={"model_sha256": "a" * 64, "runtime_version": "1.17",
                                                    **(env or {})},
    )


def entry_of(result: Result) -> BaselineEntry:
    return BaselineEntry.from_json(json.loads(json.dumps(BaselineEntry.from_result(result).to_json())))


def by_metric(verdict) -> dict:
    return {m.metric: m for m in verdict.metrics}


# --- the timing path -------------------------------------------------------------------------------------
def test_aa_same_distribution_passes() -> None:
    v = judge(make_result(2), entry_of(make_result(1)), {})
    assert v.overall == PASS
    assert not v.failed
    assert all(m.verdict in (PASS, NOT_JUDGED) for m in v.metrics)


def test_twice_slower_is_regression_naming_fps_and_latency() -> None:
    v = judge(make_result(2, scale=2.0), entry_of(make_result(1)), {})
    assert v.overall == REGRESSION and v.failed
    names = {m.metric for m in v.regressed()}
    assert {"fps", "latency_p50_ms", "latency_p90_ms"} <= names
    fps = by_metric(v)["fps"]
    assert fps.change_pct == pytest.approx(-50.0, abs=3.0)
    assert fps.p_value is not None and fps.p_value < 1e-6
    text = format_verdict_table(v)
    assert "performance regressed" in text.splitlines()[0]
    assert "fps" in text.splitlines()[0]
    for header in ("metric", "baseline", "now", "change", "p-value", "tolerance", "verdict"):
        assert header in text
    assert "REGRESSION" in text


def test_faster_is_improved_and_passes() -> None:
    v = judge(make_result(2, scale=0.6), entry_of(make_result(1)), {})
    assert v.overall == IMPROVED and not v.failed
    assert by_metric(v)["fps"].verdict == IMPROVED
    assert by_metric(v)["latency_p50_ms"].verdict == IMPROVED


def test_significant_but_below_minimum_effect_passes() -> None:
    v = judge(make_result(2, scale=1.03, n=2000), entry_of(make_result(1, n=2000)), {})
    fps = by_metric(v)["fps"]
    assert fps.p_value is not None and fps.p_value < 0.01  # the shift is real...
    assert fps.verdict == PASS and "minimum effect" in fps.note  # ...but smaller than 5%
    # A tighter minimum effect turns the same data into a regression.
    v2 = judge(make_result(2, scale=1.03, n=2000), entry_of(make_result(1, n=2000)), {"timing": 1.0})
    assert by_metric(v2)["fps"].verdict == REGRESSION


def test_large_but_not_significant_change_passes() -> None:
    base = np.linspace(0.010, 0.030, 80)
    rng = np.random.default_rng(5)
    now = rng.permutation(base * 1.08)  # 8% slower median, but spread is +-50%: not significant at 0.01
    v = judge(make_result(0, latencies_s=now), entry_of(make_result(0, latencies_s=base)), {})
    fps = by_metric(v)["fps"]
    assert abs(fps.change_pct) > 5.0
    assert fps.verdict == PASS and "not significant" in fps.note
    assert v.overall == PASS


def test_holm_adjusts_across_timing_metrics() -> None:
    base = np.linspace(0.010, 0.030, 80)
    now = base * 1.08
    stored = entry_of(make_result(0, latencies_s=base))
    # judge() tests the faster half of each side (the slow tail is where interference lives)
    base_ms = np.sort(stored.metric_samples("latency_p50_ms"))[:40]
    raw_p = stats.mann_whitney_greater(np.sort(now * 1e3)[:40], base_ms)
    judged = {"fps", "latency_p50_ms", "latency_p90_ms"}  # all share the same rank-test p-value
    # At alpha between raw p and 3 x raw p, an unadjusted test would fire; Holm must not.
    v = judge(make_result(0, latencies_s=now), stored, {"timing": 1.0}, alpha=raw_p * 2)
    for name in judged:
        m = by_metric(v)[name]
        assert m.p_value == pytest.approx(min(1.0, 3 * raw_p), rel=1e-3)
        assert m.verdict == PASS
    v2 = judge(make_result(0, latencies_s=now), stored, {"timing": 1.0}, alpha=raw_p * 4)
    assert {m.metric for m in v2.regressed()} == judged


def test_interference_moving_median_but_not_fast_end_passes() -> None:
    """Another process stealing the CPU adds time to many samples; the work per inference is unchanged.

    The deciding statistic is the mean of the faster half, so interference that delays fewer than half of
    the samples (here 40%) moves the tail and the mean a lot and the decision not at all.
    """
    rng = np.random.default_rng(7)
    clean = 0.020 * (1.0 + rng.gamma(2.0, 0.01, 600))
    hit = rng.random(600) < 0.4
    contended = clean + hit * rng.uniform(0.008, 0.016, 600)  # 40% of samples delayed by 8-16 ms
    v = judge(make_result(0, latencies_s=contended), entry_of(make_result(0, latencies_s=clean[::-1])), {})
    fps, p90 = by_metric(v)["fps"], by_metric(v)["latency_p90_ms"]
    assert p90.change_pct > 30.0  # the tail got much slower...
    assert fps.verdict == PASS and "fast-half" in fps.note  # ...but the fast half barely moved
    assert p90.verdict == PASS
    assert v.overall == PASS


# --- memory, accuracy, counters ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now_mb", "tolerances", "expected"),
    [(106.0, {}, PASS), (108.0, {}, REGRESSION), (90.0, {}, IMPROVED),
     (108.0, {"peak_memory_mb": 10.0}, PASS)],
)
def test_memory_percent_plus_slack(now_mb: float, tolerances: dict, expected: str) -> None:
    # 100 MB baseline, default 5% + 2 MB slack: the band is +-7 MB.
    v = judge(make_result(1, peak_mb=now_mb), entry_of(make_result(1, peak_mb=100.0)), tolerances)
    assert by_metric(v)["peak_memory_mb"].verdict == expected


@pytest.mark.parametrize(
    ("now_pct", "tolerances", "expected"),
    [(69.6, {}, PASS), (69.4, {}, REGRESSION), (71.0, {}, IMPROVED), (69.4, {"top1_pct": 1.0}, PASS)],
)
def test_accuracy_in_points(now_pct: float, tolerances: dict, expected: str) -> None:
    base = entry_of(make_result(1, accuracy={"top1_pct": 70.0}))
    v = judge(make_result(1, accuracy={"top1_pct": now_pct}), base, tolerances)
    m = by_metric(v)["top1_pct"]
    assert m.verdict == expected
    if expected == REGRESSION:
        assert "0.60 points" in m.note
        assert "-0.60 pp" in format_verdict_table(v)


def test_counter_pattern_and_unjudged_metric() -> None:
    base, now = make_result(1), make_result(1)
    base.counters = {"per_inference": {"instructions": 1.0e9}}
    now.counters = {"per_inference": {"instructions": 1.2e9}}
    base.add_metric("my_score", 10.0)
    now.add_metric("my_score", 1.0)  # no rule: reported, never judged
    v = judge(now, entry_of(base), {})
    assert by_metric(v)["instructions_per_inference"].verdict == REGRESSION
    assert by_metric(v)["my_score"].verdict == NOT_JUDGED
    assert rule_for("instructions_per_inference").higher_is_better is False
    assert rule_for("fom_top1_per_j").higher_is_better is True
    assert rule_for("my_score") is None


# --- inconclusive and new ------------------------------------------------------------------------------
def test_inconclusive_status_never_regresses() -> None:
    v = judge(make_result(2, scale=2.0, status=STATUS_INCONCLUSIVE), entry_of(make_result(1)), {})
    assert v.overall == INCONCLUSIVE and not v.failed
    assert not v.regressed()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [({"threads": 4}, "threads 2 -> 4"), ({"device": "pi5"}, "device pi4 -> pi5"),
     ({"env": {"runtime": "litert"}}, "runtime onnxruntime -> litert")],
)
def test_incomparable_environment_is_inconclusive(kwargs: dict, says: str) -> None:
    v = judge(make_result(2, scale=2.0, **kwargs), entry_of(make_result(1)), {})
    assert v.overall == INCONCLUSIVE
    assert any(says in f for f in v.flags)


def test_too_few_samples_is_inconclusive() -> None:
    v = judge(make_result(2, scale=2.0, n=8), entry_of(make_result(1)), {})
    assert by_metric(v)["fps"].verdict == INCONCLUSIVE
    assert "too few valid samples" in by_metric(v)["fps"].note
    assert v.overall == INCONCLUSIVE


def test_model_change_is_compared_and_flagged() -> None:
    v = judge(make_result(2, scale=2.0, env={"model_sha256": "b" * 64}), entry_of(make_result(1)), {})
    assert v.overall == REGRESSION
    assert any("model changed since baseline" in f for f in v.flags)
    assert "model changed since baseline" in format_verdict_table(v)


def test_missing_baseline_new_or_strict_failure() -> None:
    v = judge(make_result(1), None, {})
    assert v.overall == NEW and not v.failed
    assert by_metric(v)["fps"].verdict == NEW
    strict = judge(make_result(1), None, {}, strict=True)
    assert strict.overall == NO_BASELINE and strict.failed
    assert "--edgeperf-update-baselines" in format_verdict_table(strict)


def test_verdict_json_roundtrips_and_applies() -> None:
    result = make_result(2, scale=2.0)
    v = judge(result, entry_of(make_result(1)), {})
    data = json.loads(json.dumps(v.to_json()))
    assert data["overall"] == REGRESSION and data["failed"] is True
    assert {"metric", "baseline", "current", "change_pct", "p_value", "tolerance", "verdict", "note"} <= set(
        data["metrics"][0])
    v.apply_to(result)
    assert result.overall_verdict == REGRESSION and result.verdicts == data["metrics"]


# --- tolerance specs ------------------------------------------------------------------------------------
def test_parse_tolerances_string_and_dict() -> None:
    assert parse_tolerances("fps=5%, peak_memory_mb=10%,top1_pct=0.5,") == {
        "fps": 5.0, "peak_memory_mb": 10.0, "top1_pct": 0.5}
    assert parse_tolerances({"latency_p90_ms": 12, "top5_pct": "1pp", "timing": "7%"}) == {
        "latency_p90_ms": 12.0, "top5_pct": 1.0, "timing": 7.0}
    assert parse_tolerances("*_per_inference=3") == {"*_per_inference": 3.0}
    assert parse_tolerances(None) == {}
    merged = merge_tolerances({"fps": 5.0}, None, {"fps": 8.0, "top1_pct": 1.0})
    assert merged == {"fps": 8.0, "top1_pct": 1.0}


@pytest.mark.parametrize(
    ("spec", "names"),
    [("fps", "'fps'"), ("fps=abc", "fps=abc"), ("fps=-5%", "fps=-5%"), ("nosuch=5%", "nosuch"),
     ("top1_pct=0.5%", "top1_pct=0.5%"), ("fps=2pp", "fps=2pp"), ("fps=5%,bad key=1", "bad key"),
     ({"fps": True}, "fps=True"), ({"fps": float("nan")}, "fps=nan")],
)
def test_parse_tolerances_errors_name_the_bad_part(spec, names: str) -> None:
    with pytest.raises(ToleranceError) as info:
        parse_tolerances(spec)
    msg = str(info.value)
    assert names in msg
    assert "\n" not in msg
    assert isinstance(info.value, ValueError)


def test_tolerance_precedence_metric_over_kind() -> None:
    v = judge(make_result(2, scale=1.03, n=2000), entry_of(make_result(1, n=2000)),
              {"timing": 1.0, "fps": 10.0})
    assert by_metric(v)["fps"].verdict == PASS and by_metric(v)["fps"].tolerance == 10.0
    assert by_metric(v)["latency_p50_ms"].verdict == REGRESSION


def test_host_baseline_from_another_machine_judges_accuracy_but_not_timing() -> None:
    """`host` is any Linux box: timing recorded on one is not a baseline for another; accuracy still is."""
    rng = np.random.default_rng(3)

    def result(hostname: str, scale: float, top1: float) -> Result:
        lat = (rng.normal(1e-3, 2e-5, 400) * scale).tolist()
        r = Result(test_id="t.py::test_x[onnxruntime]", framework="onnxruntime", model="m", device="host",
                   samples=Samples(start_s=[float(i) for i in range(400)], latency_s=lat,
                                   preprocess_s=[0.0] * 400, valid=[True] * 400))
        r.environment = {"device": "host", "runtime": "onnxruntime", "threads": 2, "hostname": hostname,
                         "cpu": "Some CPU"}
        r.accuracy = {"top1_pct": top1}
        return r

    base = BaselineEntry.from_result(result("box-a", 1.0, 98.0))
    slower_elsewhere = judge(result("box-b", 1.5, 98.0), base, {})
    assert slower_elsewhere.overall != "REGRESSION"
    assert {m.metric: m.verdict for m in slower_elsewhere.metrics}["fps"] == "INCONCLUSIVE"
    assert any("another machine" in f for f in slower_elsewhere.flags)
    worse_elsewhere = judge(result("box-b", 1.0, 90.0), base, {})
    assert {m.metric: m.verdict for m in worse_elsewhere.metrics}["top1_pct"] == "REGRESSION"
    slower_here = judge(result("box-a", 1.5, 98.0), base, {})
    assert {m.metric: m.verdict for m in slower_here.metrics}["fps"] == "REGRESSION"
