"""Tests for device truth: profiles and detection, the command runner, throttle decoding and the readers."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import pytest
from fakedevice import FakeDevice

from pytest_edgeperf.device import (
    PROFILES,
    UNDER_VOLTAGE_MESSAGE,
    CommandRunner,
    DeviceMismatchError,
    DeviceReaders,
    ThrottleState,
    UnknownDeviceError,
    detect_profile,
    get_profile,
    read_model_string,
    resolve_device,
)

# --- profiles and detection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Raspberry Pi 3 Model B Rev 1.2", "pi3"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "pi3b+"),
        ("Raspberry Pi 4 Model B Rev 1.4", "pi4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "pi5"),
        ("Raspberry Pi Zero 2 W Rev 1.0", "pi-zero-2w"),
        ("NVIDIA Jetson Nano Developer Kit", "jetson-nano"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3\0", "pi3b+"),  # NUL-terminated as in /proc/device-tree
        ("Raspberry Pi 2 Model B Rev 1.1", "host"),
        ("QEMU Virtual Machine", "host"),
        ("", "host"),
        (None, "host"),
    ],
)
def test_detect_profile_by_longest_prefix(model: str | None, expected: str) -> None:
    assert detect_profile(model).name == expected


def test_profiles_are_consistent() -> None:
    for p in PROFILES.values():
        if p.floor_freq_ghz is not None:
            assert p.min_freq_ghz < p.floor_freq_ghz <= p.max_freq_ghz, p.name
    assert PROFILES["pi3"].floor_freq_ghz == pytest.approx(1.1)
    assert PROFILES["host"].floor_freq_ghz is None


def test_read_model_string_strips_nul(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, model="Raspberry Pi 4 Model B Rev 1.4")
    assert read_model_string(dev.root) == "Raspberry Pi 4 Model B Rev 1.4"
    assert read_model_string(tmp_path / "nowhere") is None


def test_get_profile_unknown_lists_names_in_one_line() -> None:
    assert get_profile("PI3").name == "pi3"
    with pytest.raises(UnknownDeviceError) as info:
        get_profile("pi9")
    msg = str(info.value)
    assert "\n" not in msg and "'pi9'" in msg and "--edgeperf-device" in msg
    for name in PROFILES:
        assert name in msg
    assert isinstance(info.value, ValueError)


def test_resolve_device_auto_and_mismatch() -> None:
    assert resolve_device("auto", None).name == "host"
    assert resolve_device("auto", "Raspberry Pi 3 Model B Rev 1.2").name == "pi3"
    assert resolve_device("pi3", "Raspberry Pi 3 Model B Rev 1.2").name == "pi3"
    with pytest.raises(DeviceMismatchError) as info:
        resolve_device("pi3", None)
    assert "\n" not in str(info.value) and "pi3" in str(info.value) and "host" in str(info.value)
    assert resolve_device("pi3", None, allow_mismatch=True).name == "pi3"
    with pytest.raises(UnknownDeviceError):
        resolve_device("pi9", None, allow_mismatch=True)


# --- command runner -------------------------------------------------------------------------------------


def _script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    path.chmod(0o755)
    return path


def test_runner_returns_stdout_or_none(tmp_path: Path) -> None:
    ok = _script(tmp_path, "ok", "print('hello', sys.argv[1:])")
    bad = _script(tmp_path, "bad", "print('oops'); sys.exit(3)")
    runner = CommandRunner(timeout_s=5.0)
    assert runner.run([str(ok), "a", "b; rm -rf /"]) == "hello ['a', 'b; rm -rf /']\n"  # no shell
    assert runner.run([str(bad)]) is None
    assert runner.run_detailed([str(bad)]).error == "failed"
    assert runner.run([str(tmp_path / "missing")]) is None
    assert runner.run_detailed([str(tmp_path / "missing")]).error == "missing"
    assert runner.run([str(tmp_path)]) is None  # a directory is not a command


def test_runner_kills_a_hanging_command_and_its_children(tmp_path: Path) -> None:
    hang = _script(
        tmp_path,
        "hang",
        "import subprocess\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "time.sleep(600)",
    )
    t0 = time.monotonic()
    outcome = CommandRunner(timeout_s=0.5).run_detailed([str(hang)])
    assert outcome.stdout is None and outcome.error == "timeout"
    assert time.monotonic() - t0 < 10  # bounded by the timeout, not by the 600 s sleep
    time.sleep(0.2)
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any("time.sleep(600)" in a or a == str(hang) for a in (p.info["cmdline"] or []))
    ]
    assert [p for p in leftovers if p.status() != psutil.STATUS_ZOMBIE] == []


# --- throttle decoding ----------------------------------------------------------------------------------


def test_throttle_every_bit_decoded() -> None:
    names = ["under-voltage", "arm frequency capped", "throttled", "soft temperature limit"]
    for i, name in enumerate(names):
        now = ThrottleState(1 << i)
        assert now.now_flags() == [name] and now.since_boot_flags() == [] and now.active_now()
        sticky = ThrottleState(1 << (16 + i))
        assert sticky.since_boot_flags() == [name] and sticky.now_flags() == [] and not sticky.active_now()
        assert sticky.occurred_since_boot()
    assert ThrottleState(0).describe() == "0x0: no throttling now or since boot"
    desc = ThrottleState(0x50005).describe()
    assert desc == "0x50005: now under-voltage, throttled; since boot under-voltage, throttled"
    assert "unknown bits 0x100" in ThrottleState(0x100).describe()


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("throttled=0x50005\n", 0x50005),
        ("throttled=0x0", 0),
        ("80008", 0x80008),  # the sysfs form, without 0x
        ("", None),
        ("nonsense", None),
    ],
)
def test_throttle_parse(text: str, raw: int | None) -> None:
    state = ThrottleState.parse(text)
    assert (state.raw if state else None) == raw


def test_newly_occurred_reports_only_changed_sticky_bits() -> None:
    before = ThrottleState(0x20000)
    after = ThrottleState(0x70005)
    msgs = after.newly_occurred(before)
    assert msgs == [UNDER_VOLTAGE_MESSAGE, "throttled occurred during the run"]
    assert "the power supply is inadequate" in msgs[0]
    assert ThrottleState(0x20002).newly_occurred(before) == []
    assert ThrottleState(0x80000).newly_occurred(None) == ["soft temperature limit occurred during the run"]
    assert json.loads(json.dumps(after.to_json()))["hex"] == "0x70005"


# --- readers --------------------------------------------------------------------------------------------


def test_readers_on_cool_pi3(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    r = dev.readers()
    assert r.model() == "Raspberry Pi 3 Model B Rev 1.2"
    assert r.cpu_freqs_ghz() == {0: 1.2, 1: 1.2, 2: 1.2, 3: 1.2}
    assert r.arm_clock_ghz() == pytest.approx(1.2)
    assert r.clock_ghz() == pytest.approx(1.2)
    assert r.temperature_c() == pytest.approx(45.0)
    assert r.throttled() == ThrottleState(0)
    assert r.governor() == "ondemand"
    assert r.memory_mb() == pytest.approx((926.0, 700.0))
    snap = r.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["unavailable"] == []
    assert snap["throttled"]["description"].startswith("0x0")


def test_arm_clock_wins_over_cpufreq_while_throttled(tmp_path: Path) -> None:
    """cpufreq shows the kernel's request (1.2 GHz) while the firmware runs the ARM at 0.6 GHz."""
    dev = FakeDevice.pi3_never_cools(tmp_path, cpufreq_ghz=1.2)
    r = dev.readers()
    assert r.cpu_freqs_ghz()[0] == pytest.approx(1.2)
    assert r.clock_ghz() == pytest.approx(0.6)
    assert r.temperature_c() == pytest.approx(84.0)
    assert r.throttled().active_now()


def test_readers_follow_the_schedule(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_throttles_midway(tmp_path, after_s=30.0, for_s=30.0)
    r = dev.readers()
    dev.jump_to(0.0)
    assert (r.clock_ghz(), r.throttled().raw) == (pytest.approx(1.2), 0)
    dev.jump_to(45.0)
    assert (r.clock_ghz(), r.temperature_c(), r.throttled().raw) == (pytest.approx(0.6), 82.0, 0x60006)
    dev.jump_to(75.0)
    state = r.throttled()
    assert not state.active_now() and state.newly_occurred(ThrottleState(0))


def test_under_voltage_preset_says_power_supply(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_under_voltage(tmp_path, after_s=0.0, for_s=30.0)
    r = dev.readers()
    start = r.throttled()
    assert start.now_flags() == ["under-voltage", "throttled"]
    dev.jump_to(40.0)
    end = r.throttled()
    assert not end.active_now()
    assert any("power supply is inadequate" in m for m in end.newly_occurred(ThrottleState(0)))


def test_readers_without_vcgencmd_fall_back_to_files(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, with_vcgencmd=False, cpufreq_ghz=0.6, thermal_c=51.5)
    r = dev.readers()
    assert r.clock_ghz() == pytest.approx(0.6)
    assert r.temperature_c() == pytest.approx(51.5)
    assert r.throttled() is None
    missing = r.unavailable()
    assert any(m.startswith("throttle state: no ") for m in missing)
    assert any(m.startswith("actual ARM clock") for m in missing)
    assert not any(m.startswith("clock:") for m in missing)


def test_clock_aggregate_is_highest_core(tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path)
    dev.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "800000\n")
    dev.write("sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", "3400000\n")
    dev.write("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "schedutil\n")
    dev.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "powersave\n")
    r = dev.readers()
    assert r.cpu_freqs_ghz() == {0: 0.8, 1: 3.4}
    assert r.clock_ghz() == pytest.approx(3.4)
    assert r.governor() == "powersave,schedutil"


def test_host_without_sensors_says_what_is_unavailable(tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path)
    r = dev.readers()
    assert (r.model(), r.clock_ghz(), r.temperature_c(), r.throttled(), r.governor()) == (None,) * 5
    assert r.memory_mb() is not None
    missing = r.unavailable()
    kinds = {m.split(":", 1)[0] for m in missing}
    assert kinds == {"model", "clock", "temperature", "throttle state", "governor"}
    clock = next(m for m in missing if m.startswith("clock:"))
    assert "no cpufreq under" in clock and "no " + str(dev.vcgencmd) in clock
    assert r.vcgencmd_problem() is not None


def test_empty_root_never_raises(tmp_path: Path) -> None:
    r = DeviceReaders(tmp_path / "empty", vcgencmd=str(tmp_path / "no-vcgencmd"))
    assert r.snapshot()["memory_total_mb"] is None
    assert any(m.startswith("memory:") for m in r.unavailable())
    assert r.cpu_freqs_ghz() == {}


def test_garbage_files_give_none(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, with_vcgencmd=False)
    dev.write("sys/class/thermal/thermal_zone0/temp", "not a number\n")
    dev.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "\n")
    dev.write("proc/meminfo", "garbage\n")
    r = dev.readers()
    assert r.temperature_c() is None
    assert 0 not in r.cpu_freqs_ghz() and r.cpu_freqs_ghz()[1] == pytest.approx(1.2)
    assert r.memory_mb() is None


def test_missing_vcgencmd_is_not_asked_again(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    r = dev.readers()
    assert r.arm_clock_ghz() == pytest.approx(1.2)
    dev.remove_vcgencmd()
    assert r.arm_clock_ghz() is None
    assert r.vcgencmd_problem() is not None and "no " in r.vcgencmd_problem()
    # Even if it comes back, a command found missing is not spawned again: readings stay cheap.
    FakeDevice.pi3_cool(tmp_path)
    assert r.arm_clock_ghz() is None
    assert r.clock_ghz() == pytest.approx(1.2)  # cpufreq still answers


def test_failing_subcommand_only_disables_itself(tmp_path: Path) -> None:
    no_temp = [{"freq_ghz": 1.2, "temp_c": None, "throttled": 0}]
    dev = FakeDevice(tmp_path, schedule=no_temp, with_thermal=False)
    r = dev.readers()
    for _ in range(4):
        assert r.temperature_c() is None
    assert r.clock_ghz() == pytest.approx(1.2) and r.throttled() == ThrottleState(0)
    assert any(m.startswith("temperature:") and "temperature unavailable" in m for m in r.unavailable())


def test_hanging_vcgencmd_costs_one_timeout(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path, hang=True)
    r = dev.readers(timeout_s=0.3)
    t0 = time.monotonic()
    snaps = [r.snapshot() for _ in range(3)]
    assert time.monotonic() - t0 < 10
    assert snaps[-1]["arm_clock_ghz"] is None and snaps[-1]["clock_ghz"] == pytest.approx(1.2)
    assert "hung" in r.vcgencmd_problem()


def test_pmic_hook_for_the_power_helper(tmp_path: Path) -> None:
    dev = FakeDevice(tmp_path, model="Raspberry Pi 5 Model B Rev 1.0")
    r = dev.readers()
    assert r.vcgencmd_output("pmic_read_adc") is None  # like a Pi 3: "Command not registered"
    dev.set_command_output("pmic_read_adc", "VDD_CORE_A current(7)=1.50A\nVDD_CORE_V volt(15)=0.80V\n")
    assert r.vcgencmd_output("pmic_read_adc") == "VDD_CORE_A current(7)=1.50A\nVDD_CORE_V volt(15)=0.80V\n"


def test_plugin_args(tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path)
    assert dev.plugin_args() == [f"--edgeperf-root={dev.root}", f"--edgeperf-vcgencmd={dev.vcgencmd}"]
