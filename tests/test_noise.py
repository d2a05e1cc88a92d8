"""Run-to-run noise learnt from a baseline's recordings (noise.py), kept in its history (baseline.py) and applied by
the verdict as a minimum effect (issue 4: an unchanged suite must pass on a machine that drifts between runs).

Recordings are built from known per-process times, so every expected figure is computed by hand here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_verdict_processes import STEADY, multi_process_result

from pytest_edgeperf.baseline import BaselineEntry, BaselineError, BaselineStore
from pytest_edgeperf.baseline.entry import BUSY_WARNING
from pytest_edgeperf.verdict import noise
from pytest_edgeperf.verdict.judge import judge
from pytest_edgeperf.verdict.outcome import PASS, REGRESSION
from pytest_edgeperf.verdict.table import format_verdict_table

NODE = "suites/test_x.py::test_x[onnxruntime]"


def recording(speed: float, seed: int) -> BaselineEntry:
    """One run of the model at ``speed`` (machine steady): what one update pass stores."""
    entry = BaselineEntry.from_result(multi_process_result([speed] * 5, STEADY, seed=seed))
    return BaselineEntry.from_json(json.loads(json.dumps(entry.to_json())))


def with_history(speeds: list[float]) -> BaselineEntry:
    """The entry after one update per speed (oldest first), each continuing the one before it."""
    entry = None
    for i, speed in enumerate(speeds):
        entry = recording(speed, seed=100 + i).continued_from(entry)
    assert entry is not None
    return entry


def test_run_location_is_the_trimmed_mean_of_log_times() -> None:
    pairs = [(2.0, 0.1), (2.2, 0.1), (2.0, 0.2), (9.0, 0.1), (2.1, 0.1)]
    # 20% trimmed of five: the middle three of the sorted logs
    by_ref = sorted(math.log(a / b) for a, b in pairs)[1:4]
    assert noise.run_location(pairs, True) == pytest.approx(sum(by_ref) / 3)
    raw = sorted(math.log(a) for a, _ in pairs)[1:4]
    assert noise.run_location(pairs, False) == pytest.approx(sum(raw) / 3)
    assert noise.run_location([(2.0, None)], True) is None  # a reference was asked for and is missing
    assert noise.run_location([], False) is None


def test_learn_uses_the_recordings_spread_and_the_floor_is_three_sds_of_a_difference() -> None:
    recordings = [[(2.0 * s, 0.1)] * 5 for s in (1.0, 1.1, 0.95)]
    rn = noise.learn(recordings, True, None)
    assert rn is not None and rn.recordings == 3
    logs = [math.log(20.0 * s) for s in (1.0, 1.1, 0.95)]
    sd = float(np.std(logs, ddof=1))
    assert rn.sd_log == pytest.approx(sd)
    assert rn.floor_pct == pytest.approx(math.expm1(3.0 * math.sqrt(2) * sd) * 100)
    assert "3 recordings" in rn.describe() and f"{rn.floor_pct:.1f}%" in rn.describe()
    assert noise.learn(recordings[:1], True, None) is None  # one run alone says nothing about the noise


def test_the_device_prior_raises_a_quiet_estimate_and_never_lowers_a_noisy_one() -> None:
    prior = noise.NoisePrior.pool([(0.04**2, 10), (0.02**2, 10), None])
    assert prior is not None and prior.df == 20 and prior.tests == 2
    # the median of two is their mean; each is scaled by chi2.median(10)/10 = 0.9342 (a variance's median bias)
    assert prior.variance == pytest.approx((0.04**2 + 0.02**2) / 2 / 0.93418, rel=1e-4)
    quiet = [[(2.0, 0.1)] * 5, [(2.0 * 1.001, 0.1)] * 5]  # 2 runs 0.1% apart
    own = math.log(1.001) / math.sqrt(2)
    rn = noise.learn(quiet, True, prior)
    assert rn is not None and rn.own_sd_log == pytest.approx(own)
    d0 = noise.PRIOR_DF
    assert rn.sd_log == pytest.approx(math.sqrt((1 * own**2 + d0 * prior.variance) / (1 + d0)))
    assert "raised toward 2 test(s)" in rn.describe()
    noisy = [[(2.0, 0.1)] * 5, [(2.0 * 1.3, 0.1)] * 5]
    rn = noise.learn(noisy, True, prior)
    assert rn is not None and rn.sd_log == pytest.approx(math.log(1.3) / math.sqrt(2))  # its own, not lowered
    alone = noise.learn(quiet[:1], True, prior)  # one recording: the device's noise
    assert alone is not None and alone.sd_log == pytest.approx(math.sqrt(prior.variance))
    assert "pooled from 2 other test(s)" in alone.describe()
    assert noise.NoisePrior.pool([None, (0.1, 0)]) is None


def test_one_wild_test_does_not_set_the_noise_every_other_test_borrows() -> None:
    """Twenty tests that move 2% between runs and one recorded beside a burst of load (7x apart): the pool is the
    typical test's noise, not the wild one's (the mean of the variances was 3.6x the typical sd here)."""
    rng = np.random.default_rng(5)
    typical = [(float(np.var(rng.normal(0.0, 0.02, 4), ddof=1)), 3) for _ in range(20)]
    wild = (math.log(7.0) ** 2 / 2, 3)
    prior = noise.NoisePrior.pool([*typical, wild])
    assert prior is not None and prior.tests == 21 and prior.df == 63
    assert 0.012 < math.sqrt(prior.variance) < 0.03  # the 2% tests' sd (21 draws of 3 degrees of freedom)
    mean = sum(v * d for v, d in [*typical, wild]) / 63
    assert math.sqrt(mean) > 0.25  # what the mean gave: one test's burst made every test's noise 25%+
    # all alike: the scaled median estimates their common variance (20,000 tests of 1 degree of freedom)
    ones = [(float(v), 1) for v in rng.chisquare(1, 20_000) * 0.01**2]
    alike = noise.NoisePrior.pool(ones)
    assert alike is not None and alike.variance == pytest.approx(0.01**2, rel=0.05)


def test_a_busy_recording_stays_out_of_the_history_and_the_device_pool(tmp_path: Path) -> None:
    """A baseline recorded on a busy machine measured the other load: the next recording does not count it as one
    of the test's runs (its own history is kept), and the device's pool leaves it out."""
    entry = with_history([1.0, 1.01])
    busy = recording(7.0, seed=3).continued_from(entry)
    busy.warnings.append(f"{BUSY_WARNING} (the worker waited for a CPU 60% of its runnable time)")
    busy = BaselineEntry.from_json(json.loads(json.dumps(busy.to_json())))  # the warning survives the file
    assert busy.recorded_busy and len(busy.history) == 2
    after = recording(1.02, seed=4).continued_from(busy)
    assert [h["recorded_at"] for h in after.history] == [h["recorded_at"] for h in busy.history]
    assert max(np.median(r, axis=0)[0] for r in after.recordings()) < 2 * min(
        np.median(r, axis=0)[0] for r in after.recordings())  # no 7x recording among them
    store = BaselineStore(tmp_path, "host")
    store.update({NODE: busy, "suites/test_x.py::test_y": with_history([1.0, 1.01, 0.99])})
    prior = BaselineStore(tmp_path, "host").noise_prior(True)
    assert prior is not None and prior.tests == 1  # only the idle test
    assert not with_history([1.0, 1.01]).recorded_busy


def test_history_grows_per_comparable_update_is_bounded_and_restarts_on_a_new_setup() -> None:
    entry = with_history([1.0] * (noise.HISTORY_LIMIT + 3))
    assert len(entry.history) == noise.HISTORY_LIMIT
    assert len(entry.recordings()) == noise.HISTORY_LIMIT + 1
    # newest first: the entry's predecessor leads its history
    times = [h["recorded_at"] for h in entry.history]
    assert times == sorted(times, reverse=True)

    other_model = recording(1.0, seed=7)
    other_model.environment["model_sha256"] = "b" * 64
    assert other_model.continued_from(entry).history == []  # a new model: its noise starts afresh
    short = recording(1.0, seed=8)
    short.environment["min_time_s"], entry.environment["min_time_s"] = 1.0, 10.0
    assert short.continued_from(entry).history == []  # budgets 10x apart are not one test's repeated runs
    assert recording(1.0, seed=9).continued_from(None).history == []


def test_a_history_survives_the_file_and_a_bad_one_is_a_one_line_error() -> None:
    entry = with_history([1.0, 1.02, 0.99])
    again = BaselineEntry.from_json(json.loads(json.dumps(entry.to_json())))
    assert again.history == entry.history and len(again.recordings()) == 3
    for bad in ([{"recorded_at": "t"}], [{"recorded_at": "t", "process_latency_ms": [-1.0]}], {"x": 1},
                [{"recorded_at": 5, "process_latency_ms": [1.0]}]):
        data = entry.to_json() | {"history": bad}
        with pytest.raises(BaselineError, match=r"^'history'") as info:
            BaselineEntry.from_json(data)
        assert "\n" not in str(info.value)


def test_store_update_carries_the_old_entry_into_the_history(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: recording(1.0, seed=1)})
    store.update({NODE: recording(1.05, seed=2)})
    stored = BaselineStore(tmp_path, "pi4").lookup(NODE)
    assert stored is not None and len(stored.history) == 1
    first = recording(1.0, seed=1)
    assert stored.history[0]["process_latency_ms"] == first.samples["process_latency_ms"]
    # the very same recording stored again is unchanged and does not count twice
    assert [c.kind for c in store.update({NODE: recording(1.05, seed=2)})] == ["unchanged"]
    assert len(BaselineStore(tmp_path, "pi4").lookup(NODE).history) == 1  # type: ignore[union-attr]


def test_store_pools_the_noise_of_every_module_and_skips_a_corrupt_file(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({"suites/test_a.py::test_a": with_history([1.0, 1.1])})
    store.update({"suites/test_b.py::test_b": with_history([1.0, 1.02, 0.98])})
    store.update({"suites/test_c.py::test_c": recording(1.0, seed=3)})  # one recording: adds nothing
    (tmp_path / "pi4" / "suites__test_broken.json").write_text("{not json")
    prior = BaselineStore(tmp_path, "pi4").noise_prior(True)
    assert prior is not None and prior.tests == 2 and prior.df == 1 + 2
    var_a = noise.own_variance(with_history([1.0, 1.1]).recordings(), True)
    var_b = noise.own_variance(with_history([1.0, 1.02, 0.98]).recordings(), True)
    assert var_a is not None and var_b is not None
    # the median of the two tests' variances, each scaled by its chi-square median over its degrees of freedom
    scaled = [var_a[0] / 0.454936, var_b[0] / (1.386294 / 2)]
    assert prior.variance == pytest.approx(sum(scaled) / 2, rel=1e-5)


def test_a_slowdown_inside_the_learnt_noise_passes_and_the_same_slowdown_on_a_quiet_test_fails() -> None:
    now = multi_process_result([1.12] * 5, STEADY, seed=50)  # 12% slower
    noisy = with_history([1.0, 1.15, 0.9, 1.05])  # this test's runs moved ~10% (sd) between updates
    v = judge(now, noisy, {})
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.verdict == PASS and "within the run-to-run noise" in fps.note
    assert fps.noise_floor_pct is not None and fps.noise_floor_pct > 12
    assert any("run-to-run noise sd" in f for f in v.flags)
    assert "(noise " in format_verdict_table(v)

    quiet = with_history([1.0, 1.005, 0.995, 1.0])
    v = judge(now, quiet, {})
    assert v.overall == REGRESSION and "fps" in {m.metric for m in v.regressed()}

    twice = multi_process_result([2.0] * 5, STEADY, seed=51)  # twice the layers: far beyond that noise
    v = judge(twice, noisy, {})
    assert v.overall == REGRESSION and "fps" in {m.metric for m in v.regressed()}


def test_a_single_recording_borrows_the_devices_noise() -> None:
    now = multi_process_result([1.12] * 5, STEADY, seed=60)
    base = recording(1.0, seed=61)
    assert judge(now, base, {}).overall == REGRESSION  # nothing known about the noise: as before
    drifty = noise.NoisePrior(variance=math.log(1.08) ** 2, df=30, tests=12)
    v = judge(now, base, {}, noise_prior=lambda by_reference: drifty)
    fps = next(m for m in v.metrics if m.metric == "fps")
    assert fps.verdict == PASS and "within the run-to-run noise" in fps.note
    assert any("pooled from 12 other test(s)" in f for f in v.flags)
