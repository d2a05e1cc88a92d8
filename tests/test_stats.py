"""Tests for pytest_edgeperf.stats: summaries, the one-sided rank test, Holm, stability warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="property tests need hypothesis (pip install -e '.[dev]')")

from hypothesis import given
from hypothesis import strategies as st

from pytest_edgeperf import stats


def test_summarize_matches_numpy_and_drops_nan() -> None:
    values = [3.0, 1.0, 2.0, 4.0, float("nan"), 10.0]
    s = stats.summarize(values)
    clean = np.array([3.0, 1.0, 2.0, 4.0, 10.0])
    assert s["n"] == 5
    assert s["min"] == 1.0 and s["max"] == 10.0
    assert s["median"] == 3.0
    assert s["mean"] == pytest.approx(4.0)
    assert s["stddev"] == pytest.approx(float(np.std(clean, ddof=1)))
    assert s["iqr"] == pytest.approx(float(np.percentile(clean, 75) - np.percentile(clean, 25)))
    assert s["p90"] == pytest.approx(float(np.percentile(clean, 90)))
    assert s["ops"] == pytest.approx(0.25)


def test_summarize_empty_gives_none() -> None:
    s = stats.summarize([])
    assert s["n"] == 0
    assert s["median"] is None and s["ops"] is None


def test_mann_whitney_detects_direction() -> None:
    rng = np.random.default_rng(1)
    base = rng.gamma(4.0, 1.0, 300) + 10
    slower = base * 1.2
    assert stats.mann_whitney_greater(slower, base) < 1e-6
    assert stats.mann_whitney_greater(base, slower) > 0.99


def test_mann_whitney_same_distribution_not_significant() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(10, 1, 200), rng.normal(10, 1, 200)
    assert stats.mann_whitney_greater(a, b) > 0.01


@pytest.mark.parametrize(("x", "y"), [([1.0] * 5, [0.0] * 20), ([2.0] * 10, [2.0] * 10)])
def test_mann_whitney_untestable_gives_one(x: list[float], y: list[float]) -> None:
    assert stats.mann_whitney_greater(x, y) == 1.0


def test_mann_whitney_small_exact() -> None:
    # Complete separation with 6 a side: the exact one-sided p is 1 / C(12, 6).
    p = stats.mann_whitney_greater([7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 5, 6])
    assert p == pytest.approx(1 / math.comb(12, 6))


def test_holm_known_values() -> None:
    assert stats.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm_adjust([0.5, 0.5]) == pytest.approx([1.0, 1.0])
    assert stats.holm_adjust([]) == []


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=20))
def test_holm_properties(p: list[float]) -> None:
    adj = stats.holm_adjust(p)
    assert all(a >= r - 1e-12 for a, r in zip(adj, p, strict=True))
    assert all(0.0 <= a <= 1.0 for a in adj)
    order = np.argsort(p, kind="stable")
    sorted_adj = [adj[i] for i in order]
    assert sorted_adj == sorted(sorted_adj)  # adjustment keeps the ranking
    assert min(adj) == pytest.approx(min(1.0, min(p) * len(p)))


def test_stability_warning() -> None:
    rng = np.random.default_rng(3)
    assert "only 10 samples" in (stats.stability_warning(rng.normal(10, 0.1, 10)) or "")
    noisy = stats.stability_warning(rng.normal(10, 3, 500))
    assert noisy is not None and "of the mean" in noisy
    assert stats.stability_warning(rng.normal(10, 0.1, 500)) is None


def test_percent_change() -> None:
    assert stats.percent_change(10.0, 12.0) == pytest.approx(20.0)
    assert stats.percent_change(-10.0, -12.0) == pytest.approx(-20.0)
    assert stats.percent_change(0.0, 1.0) is None


def test_fast_half_mean_ignores_the_slow_half() -> None:
    assert stats.fast_half_mean([]) is None
    assert stats.fast_half_mean([5.0]) == 5.0
    assert stats.fast_half_mean([4.0, 1.0, 3.0, 2.0]) == pytest.approx(1.5)
    # Blowing up the slow half (interference) leaves it unchanged; slowing every value moves it.
    base = np.arange(1.0, 11.0)
    slow_tail = np.concatenate([base[:5], base[5:] * 10])
    assert stats.fast_half_mean(slow_tail) == stats.fast_half_mean(base)
    assert stats.fast_half_mean(base * 1.1) == pytest.approx(stats.fast_half_mean(base) * 1.1)


# --- the worker's interleaved timing and the per-process budget ------------------------------------------
def test_interleaved_timing_meets_the_budget_with_reference_blocks_between_chunks() -> None:
    import time

    from pytest_edgeperf.worker.child import Reference, time_interleaved, time_plain

    calls: list[str] = []

    def model() -> None:
        calls.append("m")
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass

    reference = Reference(lambda: calls.append("r"), block_runs=3, every_s=0.02)
    starts, durations = time_interleaved(lambda *b: time_plain(model, *b), reference, 50, 0.1, 5.0, 10_000)
    assert len(starts) == len(durations) == calls.count("m") >= 50
    assert starts[-1] + durations[-1] - starts[0] >= 0.1
    assert starts == sorted(starts)
    # reference blocks of 3 between chunks of ~20 model runs, never inside a model sample
    assert len(reference.durations) == calls.count("r") and len(reference.durations) % 3 == 0
    assert 3 <= len(reference.durations) <= 3 * (len(starts) // 5)
    assert "mrm" not in "".join(calls) and "rrrr" not in "".join(calls)
    for t in reference.starts:  # every reference run lies between two model samples
        i = sum(1 for s in starts if s < t)
        assert i > 0 and starts[i - 1] + durations[i - 1] <= t


def test_interleaved_timing_respects_the_sample_cap() -> None:
    from pytest_edgeperf.worker.child import Reference, time_interleaved, time_plain

    reference = Reference(lambda: None, block_runs=2, every_s=0.001)
    starts, _ = time_interleaved(lambda *b: time_plain(lambda: None, *b), reference, 10, 10.0, 20.0, 37)
    assert len(starts) == 37


def test_per_process_budget_shares_samples_time_and_warm_up() -> None:
    from pytest_edgeperf.config import DEFAULT_BUDGET, QUICK_BUDGET
    from pytest_edgeperf.measure import MIN_WARMUP_S, per_process_budget

    assert per_process_budget(DEFAULT_BUDGET, 1) is DEFAULT_BUDGET
    five = per_process_budget(DEFAULT_BUDGET, 5)
    assert five.min_samples == 13  # ceil(64 / 5): the processes together still take >= 64
    assert five.min_time_s == pytest.approx(DEFAULT_BUDGET.min_time_s / 5)
    assert five.max_time_s == pytest.approx(DEFAULT_BUDGET.max_time_s / 5)
    assert five.warmup_s == pytest.approx(max(MIN_WARMUP_S, DEFAULT_BUDGET.warmup_s / 5))
    assert five.warmup_runs == DEFAULT_BUDGET.warmup_runs  # every process warms up its own runtime
    # a warm-up shorter than the floor stays as asked
    assert per_process_budget(QUICK_BUDGET, 3).warmup_s == QUICK_BUDGET.warmup_s < MIN_WARMUP_S
