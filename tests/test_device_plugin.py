"""Issue 3 acceptance through the real plugin (pytester): device detection, the guard, throttle-aware sampling.

Every inner run measures a small ONNX model in a real worker process against a fake device (``FakeDevice``: a
fake filesystem root and a fake ``vcgencmd`` with a schedule). To put a throttle window *inside* the timed
window, the inner test's input function re-arms the fake's schedule clock (writes its t0 file) when the worker
prepares its inputs, a moment before warm-up and timing; the schedule then runs relative to that moment.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakedevice import FakeDevice
from realtiming import REAL_TIMING
from tinymodel import MODEL_BUILDER

from pytest_edgeperf.device import UNDER_VOLTAGE_MESSAGE, UNDER_VOLTAGE_SINCE_BOOT_MESSAGE, ThrottleState
from pytest_edgeperf.device.guard import GuardSettings, ThermalGuard
from pytest_edgeperf.device.timeline import achieved_rate_hz, effective_period_s
from pytest_edgeperf.report.progress import Progress
from pytest_edgeperf.result import TimelinePoint

# record once: these tests count outcomes and entries of one pass (update passes: test_noise_plugin.py)
UPDATE_ONCE = ("--edgeperf-update-baselines", "--edgeperf-update-passes=1")

# min-time 1 s is the brief's budget; one thread leaves a core for the sampler and the fake vcgencmd.
# --edgeperf-sensor-budget=1: the fake vcgencmd is a Python start-up (tens of ms); these scenarios check the
# exclusion rule on dense readings (test_default_sensor_budget_still_excludes_a_long_drop checks the default).
# One worker process: the fake device's timed events (a throttle 2 s into the window) are armed when a worker
# prepares its inputs, so one continuous window keeps their timing plain. Several processes are tested elsewhere.
FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=20", "--edgeperf-min-time=1", "--edgeperf-max-time=10",
        "--edgeperf-idle-time=0", "--edgeperf-guard-hold=0.3", "--edgeperf-threads=1", "--edgeperf-sensor-budget=1",
        "--edgeperf-processes=1"]

MEASURE_TEST = """
import pytest

@pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.1{extra})
def test_model(edgeperf):
    edgeperf.measure()
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(modelbuilder=MODEL_BUILDER)
    pytester.makeconftest("""
        import modelbuilder
        modelbuilder.build("tiny.onnx", convs=20)
    """)
    return pytester


def _rearming_inputs(project: pytest.Pytester, dev: FakeDevice, schedule: list[dict] | None = None) -> str:
    """An inputs callable that restarts ``dev``'s schedule (optionally a new one) when the worker prepares its
    inputs, i.e. just before warm-up and timing, in every attempt; returns its ``module:function`` ref."""
    state = json.dumps({"schedule": schedule, "hang": False}) if schedule is not None else None
    project.makepyfile(rearm=f"""
        import os
        import time

        import numpy as np


        def _replace(path, text):
            with open(path + ".rearm", "w") as f:
                f.write(text)
            os.replace(path + ".rearm", path)


        STATE = {state!r}


        def frames(shape, dtype):
            if STATE is not None:
                _replace({str(dev.state_path)!r}, STATE)
            _replace({str(dev.t0_path)!r}, repr(time.monotonic()))  # the fake times its schedule from here
            return [np.zeros(shape, dtype=dtype)]
    """)
    return "rearm:frames"


def _run(project: pytest.Pytester, *args: str, json_name: str | None = "r.json") -> tuple[Any, dict | None, float]:
    out = project.path / json_name if json_name else None
    extra = [f"--edgeperf-json={out}"] if out else []
    t0 = time.monotonic()
    result = project.runpytest(*FAST, *extra, *args)
    elapsed = time.monotonic() - t0
    data = json.loads(out.read_text()) if out is not None and out.exists() else None
    return result, data, elapsed


# ---- 1. detection, usage errors, pi_device, device snapshots ---------------------------------------------------


def test_auto_is_host_on_this_machine(project: pytest.Pytester) -> None:
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, data, _ = _run(project, "--edgeperf-device=auto")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= edgeperf: host =*"])
    assert data is not None and data["device"]["profile"] == "host"
    assert data["results"][0]["device"] == "host"


def test_named_device_on_wrong_machine_is_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--edgeperf-device=pi3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.strip()]
    assert len(errors) == 1, result.stderr.lines
    assert errors[0].startswith("ERROR: --edgeperf-device=pi3 but this machine is 'host'")
    assert "--edgeperf-allow-device-mismatch" in errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_mismatch_override_runs_with_the_named_profile(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dev="""
        def test_pi_device(pi_device):
            assert (pi_device.name, pi_device.floor_ghz) == ("pi3", 1.1)
            # nothing is readable here, so the pi3 floor cannot be checked: said, not silently skipped
            assert any(u.startswith("clock: no cpufreq under") for u in pi_device.unavailable)
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--edgeperf-device=pi3",
                                "--edgeperf-allow-device-mismatch")
    result.assert_outcomes(passed=1)


def test_fake_pi3_is_detected_and_pi_device_shows_profile_and_readings(project: pytest.Pytester,
                                                                        tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev")
    project.makepyfile(test_dev="""
        import pytest

        def test_pi_device(pi_device):
            assert pi_device.name == "pi3"
            assert pi_device.profile.max_freq_ghz == 1.2
            assert pi_device.floor_ghz == 1.1
            assert pi_device.clock_ghz() == pytest.approx(1.2)
            assert pi_device.temperature_c() == pytest.approx(45.0)
            assert pi_device.throttled().raw == 0 and not pi_device.throttled().active_now()
            snap = pi_device.snapshot()
            assert snap["model"].startswith("Raspberry Pi 3 Model B")
            assert snap["governor"] == "ondemand"
            print("PI_DEVICE", pi_device.name, pi_device.floor_ghz, snap["clock_ghz"], snap["temp_c"])

        def test_guard_callable_by_a_test(thermal_guard):
            outcome = thermal_guard.wait_until_ready()
            assert outcome.ready, outcome.reason
            assert outcome.last_readings["clock_ghz"] == pytest.approx(1.2)

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.1)
        def test_model(edgeperf):
            edgeperf.measure()
    """)
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-device=auto", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*PI_DEVICE pi3 1.1 1.2 45.0*", "*= edgeperf: pi3 =*"])
    assert data is not None and data["device"]["profile"] == "pi3"
    r = data["results"][0]
    assert r["device"] == "pi3" and r["status"] == "ok"
    for snap in (r["device_start"], r["device_end"]):
        assert snap["model"] == "Raspberry Pi 3 Model B Rev 1.2"
        assert snap["governor"] == "ondemand"
        assert snap["temp_c"] == pytest.approx(45.0)
        assert snap["clock_ghz"] == pytest.approx(1.2)
        assert snap["throttled_raw"] == 0 and snap["throttled"]["now"] == []
    # the sampler recorded a timeline at full clock, and nothing was excluded
    assert len(r["timeline"]) >= 3
    assert all(p["freq_ghz"] == pytest.approx(1.2) for p in r["timeline"])
    assert r["invalid_count"] == 0 and all(r["samples"]["valid"])




# ---- 2. throttling during the timed window ----------------------------------------------------------------------

GOOD = {"freq_ghz": 1.2, "temp_c": 60.0, "throttled": 0}
THROTTLED = {"freq_ghz": 0.6, "temp_c": 82.0, "throttled": 0x60006}


def _expected_validity(r: dict, floor_ghz: float) -> tuple[list[bool], dict[str, int]]:
    """The exclusion rule recomputed plainly from the JSON timeline.

    A bad reading (clock below the floor, or a throttle bit set now) covers the open interval from the previous
    to the next reading of the same quantity (the device may have turned bad just after the previous reading and
    stayed bad until the next one); a sample is invalid when it overlaps such an interval. The plugin judges by
    the longest gap actually seen between a quantity's readings, which makes its +-period rule this one exactly.
    """
    timeline = sorted(r["timeline"], key=lambda p: p["t_s"])
    rules = {"clock below floor": lambda p: p["freq_ghz"] is not None and p["freq_ghz"] < floor_ghz,
             "throttled": lambda p: p["throttled"] is not None and bool(p["throttled"] & 0xF)}
    samples = r["samples"]
    spans = [(s, s + lat) for s, lat in zip(samples["start_s"], samples["latency_s"], strict=True)]
    valid = [True] * len(spans)
    counts = {}
    known = {"clock below floor": lambda p: p["freq_ghz"] is not None,
             "throttled": lambda p: p["throttled"] is not None}
    for reason, is_bad in rules.items():
        # neighbours among the readings of the same quantity (the command budget may leave ticks empty)
        kt = [(p["t_s"], is_bad(p)) for p in timeline if known[reason](p)]
        intervals = [(kt[i - 1][0] if i > 0 else float("-inf"), kt[i + 1][0] if i + 1 < len(kt) else float("inf"))
                     for i, (_, bad) in enumerate(kt) if bad]
        hit = [any(lo < end and hi > start for lo, hi in intervals) for start, end in spans]
        counts[reason] = sum(hit)
        valid = [v and not h for v, h in zip(valid, hit, strict=True)]
    return valid, counts


@REAL_TIMING
def test_throttled_window_is_excluded_and_counted(project: pytest.Pytester, tmp_path: Path) -> None:
    # 0.3 s at 0.6 GHz, 2 s into an 8 s timed window: a minority of samples, so one attempt stays OK
    dev = FakeDevice.pi3_throttles_midway(tmp_path / "dev", after_s=2.0, for_s=0.3)
    ref = _rearming_inputs(project, dev, dev.schedule)
    dev.set_schedule([GOOD])  # cool (no sticky bits) until the worker prepares its inputs
    project.makepyfile(test_m=MEASURE_TEST.format(extra=f", inputs={ref!r}, min_time_s=8"))
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-max-attempts=1")
    result.assert_outcomes(passed=1)
    assert data is not None
    r = data["results"][0]
    assert r["status"] == "ok", r["status_reason"]
    valid, counts = _expected_validity(r, floor_ghz=1.1)
    n, n_valid = len(valid), sum(valid)
    assert 0 < n_valid < n, "the throttle window must fall inside the timed window"
    assert r["samples"]["valid"] == valid
    assert r["invalid_reasons"] == counts and counts["clock below floor"] > 0
    assert (r["valid_count"], r["invalid_count"]) == (n_valid, n - n_valid)
    # the statistics only see the valid samples
    lat_valid = sorted(lat for lat, v in zip(r["samples"]["latency_s"], valid, strict=True) if v)
    # the JSON keeps latencies to the nanosecond (1e-6 ms)
    assert r["summary"]["latency_p50_ms"] == pytest.approx(1e3 * statistics.median(lat_valid), abs=2e-6)
    # the report says how many: the table's valid column, and a note (also in the JSON)
    row = next(ln for ln in result.stdout.lines if ln.startswith("test_model[onnxruntime]") and " pi3 " in ln)
    assert f" {n_valid}/{n} " in row
    excluded = f"{n - n_valid} of {n} samples excluded: taken while throttled or below the clock floor"
    assert any(note.startswith(excluded) for note in r["notes"])
    result.stdout.fnmatch_lines([f"note (test_model[[]onnxruntime[]]): {excluded} (clock below floor: *"])
    # the sticky bits the window left behind are reported
    assert "throttled occurred during the run" in r["notes"]


@REAL_TIMING
def test_default_sensor_budget_still_excludes_a_long_drop(project: pytest.Pytester, tmp_path: Path) -> None:
    """At the default budget the slow fake vcgencmd is read every few seconds; a 5 s drop is still seen and the
    samples around it excluded, by the same rule, from the readings actually taken."""
    # a process start costs the fake ~50-100 ms, so at 3% it is read every ~2-3 s: a 5 s drop is seen
    dev = FakeDevice.pi3_throttles_midway(tmp_path / "dev", after_s=2.0, for_s=5.0)
    ref = _rearming_inputs(project, dev, dev.schedule)
    dev.set_schedule([GOOD])
    project.makepyfile(test_m=MEASURE_TEST.format(extra=f", inputs={ref!r}, min_time_s=10"))
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-max-attempts=1", "--edgeperf-sensor-budget=0.03")
    result.assert_outcomes(passed=1)
    assert data is not None
    r = data["results"][0]
    clocks = [p["freq_ghz"] for p in r["timeline"]]
    assert any(c is None for c in clocks)  # the budget skipped vcgencmd on some ticks...
    assert any(c is not None and c < 1.1 for c in clocks)  # ...but the drop was read
    valid, counts = _expected_validity(r, floor_ghz=1.1)
    assert r["samples"]["valid"] == valid and counts["clock below floor"] > 0
    assert r["invalid_reasons"]["clock below floor"] == counts["clock below floor"]


def test_throttled_every_attempt_is_inconclusive_not_a_regression(project: pytest.Pytester,
                                                                   tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev")
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    first, _, _ = _run(project, *dev.plugin_args(), *UPDATE_ONCE, json_name=None)
    first.assert_outcomes(passed=1)  # a baseline for pi3 now exists
    # every attempt: 0.3 s at full clock, then throttled for 1.2 s (covering most of the 1 s timed window)
    schedule = [{**GOOD, "for_s": 0.3}, {**THROTTLED, "for_s": 1.2}, {**GOOD, "throttled": 0x60000}]
    ref = _rearming_inputs(project, dev, schedule)
    project.makepyfile(test_m=MEASURE_TEST.format(extra=f", inputs={ref!r}"))
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-max-attempts=2", "-rA")
    result.assert_outcomes(passed=1)  # never failed as a regression
    assert result.ret == 0
    assert data is not None
    r = data["results"][0]
    assert r["status"] == "inconclusive" and r["attempts"] == 2
    assert r["overall_verdict"] == "INCONCLUSIVE"
    assert r["invalid_count"] > 0.2 * len(r["samples"]["latency_s"])
    assert r["status_reason"].endswith("after 2 attempts")
    assert any(n.startswith("attempt 1: ") and n.endswith("; cooling down and measuring again") for n in r["notes"])
    result.stdout.fnmatch_lines([
        "*test_model[[]onnxruntime[]]*pi3*inconclusive*",
        "INCONCLUSIVE test_m.py::test_model[[]onnxruntime[]]: * samples were taken while throttled or below the "
        "clock floor (clock below floor: *) after 2 attempts",
        "note (test_model[[]onnxruntime[]]): attempt 1: *; cooling down and measuring again",
    ])


def test_device_that_does_not_cool_for_the_retry_is_inconclusive(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev")
    schedule = [{**GOOD, "for_s": 0.3}, THROTTLED]  # throttles during attempt 1 and never recovers
    ref = _rearming_inputs(project, dev, schedule)
    project.makepyfile(test_m=MEASURE_TEST.format(extra=f", inputs={ref!r}"))
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-guard-timeout=2")
    result.assert_outcomes(passed=1)
    assert data is not None
    r = data["results"][0]
    assert r["status"] == "inconclusive" and r["attempts"] == 1 and r["invalid_count"] > 0
    assert "the device did not cool down for attempt 2: device not ready after 2 s" in r["status_reason"]
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_m.py::test_model[[]onnxruntime[]]: *did not cool down*"])


# ---- 3. a device that never becomes ready -----------------------------------------------------------------------


def test_device_that_never_cools_is_skipped_on_time_with_last_readings(project: pytest.Pytester,
                                                                       tmp_path: Path) -> None:
    dev = FakeDevice.pi3_never_cools(tmp_path / "dev")
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, _, elapsed = _run(project, *dev.plugin_args(), "--edgeperf-guard-timeout=2", "-rs")
    result.assert_outcomes(skipped=1)
    assert elapsed < 20, f"a guard with a 2 s timeout held the run for {elapsed:.0f} s"  # never hangs
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] *device not ready after 2 s (too hot (84.0 C >= 75.0 C); throttled now (*)*); "
        "last readings: 0.60 GHz, 84.0 C, throttled=0x60006",
    ])
    assert "waiting for CPU" not in result.stdout.str()  # not a terminal: no progress line


def test_guard_fail_option_fails_with_one_line(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_never_cools(tmp_path / "dev")
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, _, elapsed = _run(project, *dev.plugin_args(), "--edgeperf-guard-timeout=2", "--edgeperf-guard-fail")
    result.assert_outcomes(failed=1)
    assert elapsed < 20
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    reasons = [ln for ln in result.stdout.lines if ln.startswith("[edgeperf] ")]
    assert len(reasons) == 1
    assert reasons[0].startswith("[edgeperf] device not ready after 2 s (too hot")
    assert reasons[0].endswith("last readings: 0.60 GHz, 84.0 C, throttled=0x60006")
    assert "Traceback" not in result.stdout.str()


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _config_writing_to(stream: _Stream) -> Any:
    """Just what ``Progress`` reads of a pytest config: the terminal reporter's stream and --capture."""
    reporter = SimpleNamespace(_tw=SimpleNamespace(_file=stream))
    return SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter),
                           getoption=lambda name, default=None: "fd")


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_guard_progress_line_on_a_terminal_only(tmp_path: Path, tty: bool) -> None:
    dev = FakeDevice.pi3_never_cools(tmp_path)
    stream = _Stream(tty)
    progress = Progress(_config_writing_to(stream))
    guard = ThermalGuard(dev.readers(), GuardSettings(floor_ghz=1.1, max_temp_c=75.0, hold_s=0.2, timeout_s=1.6,
                                                      poll_s=0.1), progress=progress)
    assert not guard.wait_until_ready().ready
    progress.clear()
    text = stream.getvalue()
    if tty:
        assert ("\r\x1b[K[edgeperf] waiting for CPU >= 1.10 GHz and < 75.0 C: 0.60 GHz, 84.0 C, throttled=0x60006, "
                "1 s of 1.6 s (too hot (84.0 C >= 75.0 C)") in text
        assert text.endswith("\r\x1b[K")  # the line is cleared afterwards
    else:
        assert text == ""


# ---- 4. under-voltage ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["before the run", "during the run"])
def test_under_voltage_says_the_power_supply_is_inadequate(project: pytest.Pytester, tmp_path: Path,
                                                           when: str) -> None:
    if when == "before the run":
        # the preset: under-voltage from the first reading for 1 s (the guard waits it out), then sticky only
        dev = FakeDevice.pi3_under_voltage(tmp_path / "dev")
        project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
        expected = UNDER_VOLTAGE_SINCE_BOOT_MESSAGE
    else:
        dev = FakeDevice.pi3_under_voltage(tmp_path / "dev", after_s=0.5, for_s=0.3)
        ref = _rearming_inputs(project, dev, dev.schedule)
        dev.set_schedule([GOOD])  # a clean start: the under-voltage happens while timing
        project.makepyfile(test_m=MEASURE_TEST.format(extra=f", inputs={ref!r}"))
        expected = UNDER_VOLTAGE_MESSAGE
    result, data, _ = _run(project, *dev.plugin_args(), "--edgeperf-max-attempts=1")
    result.assert_outcomes(passed=1)
    assert data is not None
    r = data["results"][0]
    assert expected in r["notes"]
    assert "under-voltage" in r["device_end"]["throttled"]["since_boot"]
    assert "power supply is inadequate" in expected
    result.stdout.fnmatch_lines([f"note (test_model[[]onnxruntime[]]): {expected}"])


# ---- 5./6. sensors that hang or do not exist --------------------------------------------------------------------


def test_hanging_vcgencmd_does_not_hang_the_run(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev", hang=True)
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, data, elapsed = _run(project, *dev.plugin_args(), "-v")  # -v: the reasons of what was not measured
    result.assert_outcomes(passed=1)
    assert elapsed < 30, f"a hanging vcgencmd held the run for {elapsed:.0f} s"
    assert data is not None
    unavailable = data["device"]["unavailable"]
    assert any(u.startswith("throttle state: ") and "hung" in u for u in unavailable), unavailable
    assert any(u.startswith("actual ARM clock: ") and "hung" in u for u in unavailable), unavailable
    result.stdout.fnmatch_lines(["not measured on this device:", "  throttle state: * hung*"])
    r = data["results"][0]
    assert r["status"] == "ok"
    # what is still readable is still used: the clock from cpufreq, the temperature from the thermal zone
    assert r["device_start"]["clock_ghz"] == pytest.approx(1.2) and r["device_start"]["temp_c"] == 45.0
    assert r["device_start"]["throttled_raw"] is None
    assert all(p["freq_ghz"] == pytest.approx(1.2) and p["throttled"] is None for p in r["timeline"])


def test_host_without_sensors_runs_and_lists_what_was_not_measured(project: pytest.Pytester,
                                                                  tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path / "dev")
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, data, _ = _run(project, *dev.plugin_args())
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= edgeperf: host =*"])
    assert data is not None
    kinds = [u.split(":", 1)[0] for u in data["device"]["unavailable"]]
    for kind in ("model", "clock", "temperature", "throttle state", "governor"):
        assert kind in kinds
    line = next(ln for ln in result.stdout.lines if ln.startswith("not measured on this device: "))
    for kind in ("model", "clock", "temperature", "throttle state", "governor"):  # the reasons: -v and the JSON
        assert kind in line
    r = data["results"][0]
    assert r["status"] == "ok" and r["invalid_count"] == 0
    assert r["timeline"] and all(p["freq_ghz"] is None and p["temp_c"] is None for p in r["timeline"])
    assert any(p["cpu_percent"] is not None for p in r["timeline"])  # the worker's CPU use is still sampled


# ---- the helpers the integration uses --------------------------------------------------------------------------


def test_validity_period_follows_a_slow_sampler() -> None:
    slow = [TimelinePoint(t_s=t) for t in (0.0, 0.1, 0.45, 0.55)]  # one 0.35 s gap (a slow vcgencmd)
    assert effective_period_s(slow, 0.1) == pytest.approx(0.35)
    assert effective_period_s(slow[:1], 0.1) == 0.1 and effective_period_s([], 0.1) == 0.1
    assert achieved_rate_hz(slow) == pytest.approx(3 / 0.55)
    assert achieved_rate_hz(slow[:1]) is None


def test_run_notes_report_under_voltage_whenever_it_is_set() -> None:
    clean, sticky_uv, now_uv = ThrottleState(0), ThrottleState(0x50000), ThrottleState(0x50005)
    assert sticky_uv.run_notes(clean)[0] == UNDER_VOLTAGE_MESSAGE  # new during the run
    assert sticky_uv.run_notes(sticky_uv) == [UNDER_VOLTAGE_SINCE_BOOT_MESSAGE]  # set before the run
    assert now_uv.run_notes(None) == [UNDER_VOLTAGE_SINCE_BOOT_MESSAGE]  # no start reading: not "during"
    assert ThrottleState(0x60000).run_notes(clean) == ["arm frequency capped occurred during the run",
                                                       "throttled occurred during the run"]
    assert ThrottleState(0x60000).run_notes(ThrottleState(0x60000)) == []


# ---- integration bugs found by the device tests, fixed in plugin.py / config.py / fixture.py ----------------


def test_thermal_guard_fixture_with_no_guard(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_g="""
        def test_guard(thermal_guard):
            assert thermal_guard.wait_until_ready().ready
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--edgeperf-no-guard")
    result.assert_outcomes(passed=1)


def test_zero_guard_timeout_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_g="""
        def test_guard(thermal_guard):
            thermal_guard.wait_until_ready()
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--edgeperf-guard-timeout=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any("--edgeperf-guard-timeout" in ln for ln in result.stderr.lines)


def test_guard_skip_is_reported_at_the_test(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_never_cools(tmp_path / "dev")
    project.makepyfile(test_m=MEASURE_TEST.format(extra=""))
    result, _, _ = _run(project, *dev.plugin_args(), "--edgeperf-guard-timeout=0.5", "-rs", json_name=None)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_m.py:*device not ready*"])
