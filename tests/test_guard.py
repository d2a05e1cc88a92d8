"""Tests for the thermal guard: ready at once, waits for a cool-down, times out on time, never hangs."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from fakedevice import FakeDevice

from pytest_edgeperf.device import PROFILES
from pytest_edgeperf.device.guard import CpuLoad, GuardSettings, GuardSettingsError, ThermalGuard

FAST = {"hold_s": 0.2, "poll_s": 0.05, "apply_load": False}


def _load_children() -> int:
    """Live busy-load children (``python -S -c ...``) of this process."""
    n = 0
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "-S" in p.cmdline():
                n += 1
        except psutil.Error:  # ended while we looked
            continue
    return n


def test_ready_at_once_on_a_cool_pi3(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    lines: list[str] = []
    settings = GuardSettings(floor_ghz=1.1, max_temp_c=75.0, timeout_s=20.0, **FAST)
    out = ThermalGuard(dev.readers(), settings, progress=lines.append).wait_until_ready()
    assert out.ready, out.reason
    assert out.last_readings["clock_ghz"] == pytest.approx(1.2)
    assert out.notes == []
    assert lines == []  # nothing to wait for: no progress line


def test_load_is_applied_and_cleaned_up(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    seen_children: list[int] = []
    readers = dev.readers()
    real_clock = readers.clock_ghz

    def clock_ghz() -> float | None:
        seen_children.append(_load_children())
        return real_clock()

    readers.clock_ghz = clock_ghz  # type: ignore[method-assign]
    settings = GuardSettings(floor_ghz=1.1, max_temp_c=75.0, hold_s=0.2, timeout_s=20.0, poll_s=0.05)
    out = ThermalGuard(readers, settings).wait_until_ready()
    assert out.ready, out.reason
    assert max(seen_children) >= 1  # the clock was read while busy children ran
    assert seen_children[0] == 0  # ...but not before the first reading
    time.sleep(0.1)
    assert _load_children() == 0


def test_waits_then_proceeds_when_the_device_cools(tmp_path: Path) -> None:
    dev = FakeDevice(
        tmp_path,
        schedule=[
            {"for_s": 2.5, "freq_ghz": 0.6, "temp_c": 79.8, "throttled": 0x60006},
            {"freq_ghz": 1.2, "temp_c": 60.0, "throttled": 0x60000},
        ],
    )
    lines: list[str] = []
    t0 = time.monotonic()
    settings = GuardSettings(floor_ghz=1.1, max_temp_c=75.0, timeout_s=20.0, **FAST)
    out = ThermalGuard(dev.readers(), settings, progress=lines.append).wait_until_ready()
    assert out.ready, out.reason
    assert time.monotonic() - t0 >= 2.5  # the schedule was hot for the first 2.5 s
    assert out.waited_s >= 2.4
    assert lines and lines[0].startswith("waiting for CPU >= 1.10 GHz and < 75.0 C: 0.60 GHz, 79.8 C")
    assert "of 20 s" in lines[0] and "too hot" in lines[0] and "throttled now" in lines[0]


def test_times_out_on_time_with_last_readings(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_never_cools(tmp_path)
    t0 = time.monotonic()
    out = ThermalGuard(
        dev.readers(), GuardSettings(floor_ghz=1.1, max_temp_c=75.0, timeout_s=1.5, **FAST)
    ).wait_until_ready()
    elapsed = time.monotonic() - t0
    assert not out.ready
    assert 1.5 <= elapsed < 1.5 + 5.0  # ends on time (generous slack for a shared machine)
    assert out.reason.startswith("device not ready after 1.5 s")
    assert "0.60 GHz" in out.reason and "84.0 C" in out.reason and "throttled=0x60006" in out.reason
    assert "\n" not in out.reason
    assert out.last_readings["temp_c"] == pytest.approx(84.0)


def test_clock_below_floor_under_load_times_out(tmp_path: Path) -> None:
    """Cool and unthrottled, but the clock never reaches the floor (e.g. powersave governor)."""
    dev = FakeDevice(tmp_path, schedule=[{"freq_ghz": 0.6, "temp_c": 50.0, "throttled": 0}])
    out = ThermalGuard(
        dev.readers(), GuardSettings(floor_ghz=1.1, max_temp_c=75.0, timeout_s=1.0, **FAST)
    ).wait_until_ready()
    assert not out.ready
    assert "clock 0.60 GHz < 1.10 GHz" in out.reason


def test_hanging_vcgencmd_does_not_hang_the_guard(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, hang=True)
    t0 = time.monotonic()
    out = ThermalGuard(
        dev.readers(timeout_s=0.3), GuardSettings(floor_ghz=1.1, max_temp_c=75.0, timeout_s=2.0, **FAST)
    ).wait_until_ready()
    assert time.monotonic() - t0 < 10.0
    # vcgencmd is dropped after one timeout; cpufreq and the thermal zone still answer.
    assert out.ready, out.reason
    assert any("hung" in n for n in out.notes)
    assert out.last_readings["throttled"] is None


def test_host_without_sensors_is_ready_at_once_with_notes(tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path)
    settings = GuardSettings.from_profile(PROFILES["pi3"], timeout_s=60.0)
    out = ThermalGuard(dev.readers(), settings, sleep=_no_sleep).wait_until_ready()
    assert out.ready
    assert out.reason == "nothing to check on this device"
    text = " ".join(out.notes)
    assert "clock" in text and "temperature" in text and "throttle" in text


def test_under_voltage_now_blocks(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_under_voltage(tmp_path, after_s=0.0, for_s=60.0)
    out = ThermalGuard(
        dev.readers(), GuardSettings(floor_ghz=None, max_temp_c=None, timeout_s=0.5, **FAST)
    ).wait_until_ready()
    assert not out.ready
    assert "under-voltage" in out.reason


def test_fake_clock_timeout_without_real_waiting(tmp_path: Path) -> None:
    """With an injected clock and sleep the guard's logic runs without wall time passing."""
    dev = FakeDevice.pi3_cool(tmp_path, with_vcgencmd=False, cpufreq_ghz=0.6, thermal_c=90.0)
    now = [0.0]
    lines: list[str] = []
    guard = ThermalGuard(
        dev.readers(),
        GuardSettings(floor_ghz=1.1, max_temp_c=80.0, timeout_s=120.0, poll_s=5.0),
        progress=lines.append,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    out = guard.wait_until_ready()
    assert not out.ready and out.waited_s == pytest.approx(120.0)
    assert len(lines) == 120 // 5 - 1  # one line per poll from 5 s on (none at 0 s: quiet for a second)
    assert lines[1] == (
        "waiting for CPU >= 1.10 GHz and < 80.0 C: 0.60 GHz, 90.0 C, 10 s of 120 s"
        " (too hot (90.0 C >= 80.0 C))"
    )


def test_settings_validation_and_profile_defaults() -> None:
    with pytest.raises(GuardSettingsError, match="--edgeperf-guard-timeout"):
        GuardSettings(floor_ghz=1.1, max_temp_c=None, timeout_s=0)
    with pytest.raises(GuardSettingsError, match="--edgeperf-min-freq"):
        GuardSettings(floor_ghz=-1, max_temp_c=None)
    s = GuardSettings.from_profile(PROFILES["pi3"])
    assert (s.floor_ghz, s.max_temp_c) == (1.1, 75.0)
    assert GuardSettings.from_profile(PROFILES["pi3"], floor_ghz=1.0).floor_ghz == 1.0
    host = GuardSettings.from_profile(PROFILES["host"])
    assert (host.floor_ghz, host.max_temp_c) == (None, None)


def test_cpu_load_children_end(tmp_path: Path) -> None:
    with CpuLoad(max_s=30.0, n=2) as load:
        load.start()
        pids = [p.pid for p in load.procs]
        assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _no_sleep(_s: float) -> None:
    raise AssertionError("the guard must not wait on a host without sensors")
