"""Tests for the timeline sampler and for invalidating timed samples that overlap throttled periods."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from fakedevice import FakeDevice

from pytest_edgeperf.device import DeviceReaders
from pytest_edgeperf.device.timeline import REASON_CLOCK, REASON_THROTTLED, TimelineSampler, invalidate_samples
from pytest_edgeperf.result import Samples, TimelinePoint

# --- sampler --------------------------------------------------------------------------------------------


def _wait_for_points(sampler: TimelineSampler, n: int, limit_s: float = 20.0) -> None:
    end = time.monotonic() + limit_s
    while len(sampler.points) < n and time.monotonic() < end:
        time.sleep(0.02)


def test_sampler_records_points_with_readings(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    # command_budget=1: every tick may start vcgencmd, so every point carries every reading
    sampler = TimelineSampler(dev.readers(), rate_hz=20.0, pid=os.getpid(), temp_period_s=0.0, command_budget=1.0)
    before = time.perf_counter()
    sampler.start()
    _wait_for_points(sampler, 4)
    points = sampler.stop()
    after = time.perf_counter()
    assert len(points) >= 5  # start point, >= 3 from the thread, closing point
    ts = [p.t_s for p in points]
    assert ts == sorted(ts) and before <= ts[0] and ts[-1] <= after
    assert all(p.freq_ghz == pytest.approx(1.2) and p.temp_c == pytest.approx(45.0) for p in points)
    assert all(p.throttled == 0 for p in points)
    assert points[0].cpu_percent is None and all(p.cpu_percent is not None for p in points[1:])
    assert sampler.errors == []


def test_sampler_survives_a_vanishing_sensor(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    sampler = TimelineSampler(dev.readers(), rate_hz=20.0, temp_period_s=0.0, command_budget=1.0)
    sampler.start()
    _wait_for_points(sampler, 3)
    dev.remove_vcgencmd()
    dev.remove("sys/class/thermal/thermal_zone0/temp")
    for cpu in range(4):
        dev.remove(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")
    n_gone = len(sampler.points) + 1
    _wait_for_points(sampler, n_gone + 3)
    points = sampler.stop()
    assert points[0].freq_ghz == pytest.approx(1.2)
    last = points[-1]
    assert (last.freq_ghz, last.temp_c, last.throttled, last.cpu_percent) == (None, None, None, None)
    assert len(points) >= n_gone + 3  # kept sampling after the sensors vanished


def test_sampler_survives_a_reader_that_raises(tmp_path: Path) -> None:
    class Broken(DeviceReaders):
        def temperature_c(self) -> float | None:
            raise RuntimeError("sensor on fire")

    dev = FakeDevice.pi3_cool(tmp_path, with_vcgencmd=False)
    sampler = TimelineSampler(
        Broken(dev.root, str(dev.vcgencmd)), rate_hz=50.0, power_reader=lambda: 2.5, temp_period_s=0.0
    )
    sampler.start()
    _wait_for_points(sampler, 3)
    points = sampler.stop()
    assert all(p.temp_c is None and p.freq_ghz == pytest.approx(1.2) and p.power_w == 2.5 for p in points)
    assert sampler.errors and "sensor on fire" in sampler.errors[0]


def test_sampler_sees_a_throttle_window(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_throttles_midway(tmp_path, after_s=0.5, for_s=0.8)
    sampler = TimelineSampler(dev.readers(), rate_hz=20.0, command_budget=1.0)
    sampler.start()
    end = time.monotonic() + 20.0
    while time.monotonic() < end and not (sampler.points and sampler.points[-1].throttled == 0x60000):
        time.sleep(0.05)
    points = sampler.stop()
    bits = [p.throttled for p in points if p.throttled is not None]
    assert bits[0] == 0 and 0x60006 in bits and bits[-1] == 0x60000
    assert min(p.freq_ghz for p in points if p.freq_ghz is not None) == pytest.approx(0.6)


def test_temperature_is_read_at_its_own_slower_rate(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, with_vcgencmd=False)
    sampler = TimelineSampler(dev.readers(), rate_hz=50.0, temp_period_s=3600.0, command_budget=1.0)
    sampler.start()
    _wait_for_points(sampler, 5)
    points = sampler.stop()
    assert points[0].temp_c == pytest.approx(45.0)
    assert all(p.temp_c is None for p in points[1:]) and all(p.freq_ghz is not None for p in points)


def test_sampler_rejects_bad_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample-rate"):
        TimelineSampler(DeviceReaders(tmp_path), rate_hz=0)


# --- invalidate_samples ---------------------------------------------------------------------------------


def _samples(starts: list[float], latency_s: float) -> Samples:
    return Samples(start_s=starts, latency_s=[latency_s] * len(starts), preprocess_s=[0.0] * len(starts))


def _timeline(values: list[tuple[float, float | None, int | None]]) -> list[TimelinePoint]:
    return [TimelinePoint(t_s=t, freq_ghz=f, throttled=b) for t, f, b in values]


def test_clock_dip_invalidates_overlapping_samples() -> None:
    # Readings every 1 s; the clock is low at t=3 only. Bad period: (2, 4) (t +- 1 s, clipped to neighbours).
    timeline = _timeline([(float(t), 0.6 if t == 3 else 1.2, 0) for t in range(7)])
    samples = _samples([0.5 * i for i in range(12)], 0.4)  # [0,0.4], [0.5,0.9], ... [5.5,5.9]
    counts = invalidate_samples(samples, timeline, floor_ghz=1.1, sample_period_s=1.0)
    invalid = [s for s, ok in zip(samples.start_s, samples.valid, strict=True) if not ok]
    # [1.5,1.9] ends before 2; [2.0,2.4] ends after 2 -> overlaps (2,4); [4.0,4.4] starts at 4: kept.
    assert invalid == [2.0, 2.5, 3.0, 3.5]
    assert counts == {REASON_CLOCK: 4, REASON_THROTTLED: 0}


def test_throttle_bits_now_invalidate_but_sticky_bits_do_not() -> None:
    timeline = _timeline([(0.0, None, 0), (0.1, None, 0x50000), (0.2, None, 0x50005), (0.3, None, 0x50000)])
    samples = _samples([0.0, 0.05, 0.12, 0.19, 0.25, 0.31], 0.02)
    counts = invalidate_samples(samples, timeline, floor_ghz=1.1, sample_period_s=0.1)
    # Bad reading at 0.2 covers (0.1, 0.3): the readings either side are not throttled now.
    assert samples.valid == [True, True, False, False, False, True]
    assert counts == {REASON_CLOCK: 0, REASON_THROTTLED: 3}


def test_missing_readings_never_invalidate_and_do_not_clip() -> None:
    # A None reading between a bad and a good one says nothing; the bad one still covers +- one period.
    timeline = _timeline([(0.0, 1.2, None), (1.0, 0.5, None), (1.5, None, None), (2.0, 1.2, None)])
    samples = _samples([0.95, 1.55, 2.1], 0.01)
    counts = invalidate_samples(samples, timeline, floor_ghz=1.1, sample_period_s=1.0)
    assert samples.valid == [False, False, True]  # (0, 2): the None at 1.5 does not clip the bad period
    assert counts[REASON_CLOCK] == 2 and counts[REASON_THROTTLED] == 0


def test_sample_hit_by_both_reasons_counts_in_both_and_keeps_earlier_invalid() -> None:
    timeline = _timeline([(0.0, 1.2, 0), (1.0, 0.6, 0x4), (2.0, 1.2, 0)])
    samples = _samples([1.0, 5.0], 0.1)
    samples.valid = [True, False]
    counts = invalidate_samples(samples, timeline, floor_ghz=1.1, sample_period_s=1.0)
    assert counts == {REASON_CLOCK: 1, REASON_THROTTLED: 1}
    assert samples.valid == [False, False]


def test_no_floor_means_no_clock_rule_and_empty_inputs_are_fine() -> None:
    timeline = _timeline([(0.0, 0.1, 0), (1.0, 0.1, 0)])
    samples = _samples([0.0, 0.5], 0.1)
    assert invalidate_samples(samples, timeline, floor_ghz=None, sample_period_s=1.0) == {
        REASON_CLOCK: 0, REASON_THROTTLED: 0
    }
    assert samples.valid == [True, True]
    empty = Samples()
    assert invalidate_samples(empty, timeline, 1.1, 1.0) == {REASON_CLOCK: 0, REASON_THROTTLED: 0}
    assert invalidate_samples(samples, [], 1.1, 1.0)[REASON_CLOCK] == 0


def test_unsorted_timeline_is_handled() -> None:
    timeline = _timeline([(2.0, 1.2, 0), (0.0, 1.2, 0), (1.0, 0.6, 0)])
    samples = _samples([0.5, 1.5, 2.5], 0.1)
    invalidate_samples(samples, timeline, floor_ghz=1.1, sample_period_s=1.0)
    assert samples.valid == [False, False, True]


def test_matches_brute_force_on_random_inputs() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n_t = int(rng.integers(1, 30))
        t = np.sort(rng.uniform(0, 10, n_t))
        freq = rng.choice([0.6, 1.2, np.nan], n_t)
        timeline = [
            TimelinePoint(float(a), None if np.isnan(f) else float(f), 0)
            for a, f in zip(t, freq, strict=True)
        ]
        starts = np.sort(rng.uniform(0, 10, 200))
        lat = rng.uniform(0.001, 0.3, 200)
        samples = Samples(start_s=starts.tolist(), latency_s=lat.tolist())
        period = float(rng.uniform(0.05, 1.0))
        invalidate_samples(samples, timeline, 1.1, period)
        known = [(a, f) for a, f in zip(t, freq, strict=True) if not np.isnan(f)]
        # sparse readings: a bad one covers up to the longest gap between that quantity's readings
        gaps = np.diff([a for a, _ in known])
        period = max(period, float(gaps.max()) if gaps.size else 0.0)
        expected = []
        for s, dur in zip(starts, lat, strict=True):
            hit = False
            for i, (a, f) in enumerate(known):
                if f >= 1.1:
                    continue
                lo = max(a - period, known[i - 1][0] if i > 0 else -np.inf)
                hi = min(a + period, known[i + 1][0] if i + 1 < len(known) else np.inf)
                hit |= s < hi and s + dur > lo
            expected.append(not hit)
        assert samples.valid == expected


def test_hundred_thousand_samples_vectorised() -> None:
    n = 100_000
    starts = np.arange(n) * 0.01
    samples = Samples(start_s=starts.tolist(), latency_s=[0.009] * n)
    timeline = [
        TimelinePoint(t_s=t * 0.1, freq_ghz=0.6 if 300 <= t < 400 else 1.2, throttled=0)
        for t in range(10_001)
    ]
    counts = invalidate_samples(samples, timeline, 1.1, 0.1)
    # Bad readings at 30.0 .. 39.9 s cover (29.9, 40.0): samples starting 29.90 .. 39.99 overlap.
    assert counts[REASON_CLOCK] == sum(1 for s in starts if s + 0.009 > 29.9 and s < 40.0)
    assert samples.valid_count == n - counts[REASON_CLOCK]


def test_command_budget_spaces_out_vcgencmd_and_leaves_the_clock_empty_between(tmp_path: Path) -> None:
    """The fake vcgencmd is a Python start-up (tens of ms): at a 3% budget most ticks must skip it."""
    dev = FakeDevice.pi3_cool(tmp_path)
    sampler = TimelineSampler(dev.readers(), rate_hz=50.0, temp_period_s=0.0, command_budget=0.03)
    start = time.perf_counter()
    sampler.start()
    time.sleep(2.0)
    points = sampler.stop()
    wall_s = time.perf_counter() - start
    with_clock = [p for p in points if p.freq_ghz is not None]
    assert points[0].freq_ghz == pytest.approx(1.2) and points[-1].freq_ghz == pytest.approx(1.2)  # forced
    assert len(with_clock) < len(points)  # skipped ticks carry no clock: never a cpufreq stand-in
    assert all(p.freq_ghz == pytest.approx(1.2) for p in with_clock)
    # by construction: after a full tick of cost c the next may start only c / budget later, so full ticks took
    # at most budget x wall + the last one (the forced first and closing points come on top)
    assert sampler.command_s <= 0.03 * wall_s + sampler.command_max_s * 3
