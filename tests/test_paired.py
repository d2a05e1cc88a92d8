"""paired.py's turn plan and core rotation: pure functions, no timing."""

from __future__ import annotations

import os

import pytest

from pytest_edgeperf.config import Budget
from pytest_edgeperf.worker.paired import MAX_TURN_S, MIN_RUN_PAIRS, MIN_TURN_RUNS, _pair_cores, plan_turns


def test_a_fast_model_gets_short_turns_and_about_twelve_pairs() -> None:
    pairs, turn_s = plan_turns(Budget(min_time_s=3.0), per_inference_s=0.0001)
    assert turn_s == pytest.approx(3.0 / 24)
    assert pairs == 12


def test_a_slow_model_gets_turns_of_ten_inferences_and_fewer_pairs() -> None:
    """squeezenet1_1 at ~20 ms: 0.125 s turns held 6 inferences; now a turn holds 10 and the pairs adapt."""
    pairs, turn_s = plan_turns(Budget(min_time_s=3.0), per_inference_s=0.02)
    assert turn_s == pytest.approx(MIN_TURN_RUNS * 0.02)
    assert pairs == round(3.0 / (2 * turn_s))
    pairs, turn_s = plan_turns(Budget(min_time_s=10.0), per_inference_s=0.1)  # slower than MAX_TURN_S allows
    assert turn_s == pytest.approx(1.0) and turn_s > MAX_TURN_S
    assert pairs == MIN_RUN_PAIRS  # never fewer, whatever the budget


def test_a_long_budget_buys_more_pairs_not_longer_turns() -> None:
    pairs, turn_s = plan_turns(Budget(min_time_s=20.0), per_inference_s=0.001)
    assert turn_s == MAX_TURN_S
    assert pairs == 40


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this platform")
def test_both_arms_share_cores_that_move_on_each_pair() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("one CPU: nothing to rotate")
    seen = [_pair_cores(i, 1) for i in range(len(allowed))]
    assert all(cores is not None and len(cores) == 1 for cores in seen)
    assert set().union(*seen) == set(allowed)  # every core in turn
    assert _pair_cores(0, len(allowed)) is None  # as many threads as cores: left to the scheduler
