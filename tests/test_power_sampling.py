"""Power sampling around the timed window, energy integration, energy per inference and the FoM."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from pytest_edgeperf.power import (
    PowerMeter,
    PowerSampler,
    PowerTrace,
    combine_power,
    measure_idle_w,
    parse_meter_spec,
    summarize_power,
)

DATA = Path(__file__).parent / "data" / "power"
SIM_YAML = DATA / "analyzer.yaml"
SIM_RESOURCE = "USB0::0x2A8D::0x0F02::MY00000001::INSTR"


def make_ina219(root: Path, power_uw: int) -> Path:
    hwmon = root / "sys" / "class" / "hwmon" / "hwmon0"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("ina219\n")
    (hwmon / "power1_input").write_text(f"{power_uw}\n")
    return hwmon


def trace_of(points: list[tuple[float, float]], error: str | None = None) -> PowerTrace:
    """A hand-made trace: (t_s, power_w) points; the unix clock is t_s + 1.7e9."""
    return PowerTrace("fake", [(t, t + 1.7e9, p) for t, p in points], error)


# --- integration against hand-computed answers ---------------------------------------------------------
def test_energy_interpolates_at_the_window_edges() -> None:
    # P(t) = 1 + t W, sampled at whole seconds; over [0.5, 2.5] the energy is [t + t^2/2] = 5.625 - 0.625.
    trace = trace_of([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)])
    power = summarize_power(trace, 0.5, 2.5, inferences=40, idle_w=1.3)
    assert power["energy_j"] == pytest.approx(5.0)
    assert power["power_mean_w"] == pytest.approx(2.5)
    assert (power["power_min_w"], power["power_max_w"]) == (2.0, 3.0)  # the samples inside the window
    assert power["samples"] == 2
    assert power["energy_per_inference_j"] == pytest.approx(5.0 / 40)
    assert power["idle_w"] == 1.3
    assert power["meter"] == "fake"
    assert not any(key.startswith("fom_") for key in power)  # no accuracy given: no FoM


def test_energy_is_the_trapezoid_of_a_peaked_trace() -> None:
    trace = trace_of([(10.0, 2.0), (11.0, 4.0), (12.0, 2.0)])
    power = summarize_power(trace, 10.0, 12.0, inferences=3, idle_w=None)
    assert power["energy_j"] == pytest.approx(6.0)  # (2+4)/2 + (4+2)/2
    assert power["power_mean_w"] == pytest.approx(3.0)
    assert power["idle_w"] is None


def test_fom_is_correct_inferences_per_joule() -> None:
    # 2.5 W for 4 s at 25 fps: 100 inferences, 10 J, 0.1 J each; top-1 70 % -> 7 correct per joule.
    trace = trace_of([(0.0, 2.5), (2.0, 2.5), (4.0, 2.5)])
    accuracy = {"top1_pct": 70.0, "top5_pct": 90.0, "map50_pct": 55.0}
    power = summarize_power(trace, 0.0, 4.0, inferences=100, idle_w=1.3, accuracy=accuracy)
    assert power["energy_per_inference_j"] == pytest.approx(0.1)
    assert power["fom_top1_per_j"] == pytest.approx(7.0)
    assert power["fom_top5_per_j"] == pytest.approx(9.0)
    assert power["fom_map50_per_j"] == pytest.approx(5.5)
    # the Pi 3 framework comparison's form: accuracy x throughput / power
    assert power["fom_top1_per_j"] == pytest.approx(0.70 * 25.0 / 2.5)


def test_windows_of_several_processes_add_up() -> None:
    """Two worker windows on one trace, a load phase between them: the load's energy counts nowhere."""
    # 2 W during [0, 2] (window 1, 40 inferences), 5 W while the next worker loads, 4 W during [4, 5] (20 more)
    trace = trace_of([(0.0, 2.0), (1.0, 2.0), (2.0, 2.0), (2.5, 5.0), (3.5, 5.0), (4.0, 4.0), (4.5, 4.0),
                      (5.0, 4.0)])
    parts = [summarize_power(trace, 0.0, 2.0, 40, 1.0), summarize_power(trace, 4.0, 5.0, 20, 1.0)]
    power = combine_power(parts, accuracy={"top1_pct": 90.0})
    assert power["energy_j"] == pytest.approx(4.0 + 4.0)
    assert power["window_s"] == pytest.approx(3.0) and power["inferences"] == 60
    assert power["power_mean_w"] == pytest.approx(8.0 / 3.0)
    assert power["energy_per_inference_j"] == pytest.approx(8.0 / 60)
    assert (power["power_min_w"], power["power_max_w"]) == (2.0, 4.0)
    assert power["fom_top1_per_j"] == pytest.approx(0.9 * 60 / 8.0)
    assert power["windows"] == 2 and power["idle_w"] == 1.0
    # a failed meter in one window makes the whole unavailable, naming the process
    broken = combine_power([parts[0], {"unavailable": "power meter failed during the run: gone"}])
    assert broken == {"unavailable": "process 2 of 2: power meter failed during the run: gone"}
    assert combine_power([parts[0]]) == {k: v for k, v in parts[0].items()}


def test_a_window_too_short_for_its_own_samples_borrows_the_others_mean_power() -> None:
    """10 Hz meter, 5 worker windows: the 0.05 s one holds no sample, so it gets the measured windows' mean."""
    # 3 W everywhere except 2 W during window 2; window 3 [6.02, 6.07] falls between two samples
    points = [(t / 10, 2.0 if 20 <= t <= 40 else 3.0) for t in range(0, 101)]
    trace = trace_of(points)
    spans = [(0.0, 1.0, 10), (2.0, 4.0, 20), (6.02, 6.07, 1), (7.0, 8.0, 10), (9.0, 10.0, 10)]
    parts = [summarize_power(trace, a, b, n, None) for a, b, n in spans]
    assert parts[2]["too_few_samples"] and "only 0 power sample(s)" in parts[2]["unavailable"]
    power = combine_power(parts)
    measured_j, measured_s = 3.0 + 4.0 + 3.0 + 3.0, 5.0
    assert power["energy_j"] == pytest.approx(measured_j + measured_j / measured_s * 0.05)
    assert power["window_s"] == pytest.approx(5.05) and power["inferences"] == 51
    assert (power["estimated_windows"], power["estimated_s"]) == (1, pytest.approx(0.05))
    assert power["samples"] == sum(p["samples"] for i, p in enumerate(parts) if i != 2)
    # too little measured time to borrow from: unavailable, naming how many windows fell short
    sparse = [summarize_power(trace, a, a + 0.05, 1, None) for a in (0.52, 1.52, 2.52)]
    mixed = combine_power([parts[0], *sparse])
    assert mixed["energy_j"] == pytest.approx(3.0 + 3.0 * 0.15) and mixed["estimated_windows"] == 3
    none_measured = combine_power(sparse)
    assert none_measured["unavailable"].startswith("only 0 power sample(s) inside the 0.050 s")  # same for all
    half = combine_power([summarize_power(trace, 0.0, 0.1, 1, None), *sparse])
    assert "unavailable" in half and "e.g. process 2 of 4" in half["unavailable"]


def test_the_unix_clock_window_gives_the_same_summary() -> None:
    trace = trace_of([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)])
    by_perf = summarize_power(trace, 0.5, 2.5, 10, None)
    by_unix = summarize_power(trace, 1.7e9 + 0.5, 1.7e9 + 2.5, 10, None, clock="unix")
    assert by_unix["energy_j"] == pytest.approx(by_perf["energy_j"], rel=1e-6)


@pytest.mark.parametrize(("points", "start", "end", "inferences", "why"), [
    ([(0.0, 2.0), (1.0, 2.0)], 0.2, 0.8, 10, "only 0 power sample"),
    ([(0.0, 2.0), (0.5, 2.0), (1.0, 2.0)], 0.2, 0.8, 10, "only 1 power sample"),
    ([(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], 0.0, 2.0, 0, "no valid timed inferences"),
    ([(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], 2.0, 2.0, 10, "invalid timed window"),
    ([(5.0, 2.0), (5.5, 2.0)], 0.0, 10.0, 10, "cover only 5%"),
    ([(0.0, 0.0), (1.0, 0.0)], 0.0, 1.0, 10, "non-positive energy"),
])
def test_unusable_traces_are_unavailable_never_invented(
    points: list[tuple[float, float]], start: float, end: float, inferences: int, why: str
) -> None:
    power = summarize_power(trace_of(points), start, end, inferences, 1.3, {"top1_pct": 70.0})
    assert why in power["unavailable"]
    assert not set(power) & {"power_mean_w", "power_min_w", "energy_j", "energy_per_inference_j", "fom_top1_per_j"}
    assert combine_power([power], {"top1_pct": 70.0}) == {"unavailable": power["unavailable"]}  # a lone window


def test_a_failed_trace_is_unavailable_with_the_meter_message() -> None:
    trace = trace_of([(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)], error="hwmon:ina219: /x/power1_input is missing")
    power = summarize_power(trace, 0.0, 2.0, 10, 1.3)
    assert power == {
        "unavailable": "power meter failed during the run: hwmon:ina219: /x/power1_input is missing"
    }


def test_trace_json_round_trip() -> None:
    trace = trace_of([(0.0, 2.0), (1.0, 3.0)], error="gone")
    assert PowerTrace.from_json(trace.to_json()) == trace


# --- the sampler against fake devices ------------------------------------------------------------------
def test_ina219_at_constant_2_5_w_gives_the_hand_computed_energy_and_fom(tmp_path: Path) -> None:
    """Acceptance: a fake INA219 reading 2.500 W and a model at a known fps."""
    make_ina219(tmp_path, 2_500_000)
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    sampler = PowerSampler(meter, rate_hz=50.0)
    sampler.start()
    time.sleep(0.2)
    trace = sampler.stop()
    assert trace.error is None and len(trace) >= 2
    assert sampler.start_s is not None and sampler.stop_s is not None
    window_start_s, window_end_s = sampler.start_s, sampler.stop_s
    window_s = window_end_s - window_start_s
    inferences = 8
    fps = inferences / window_s  # the model's known throughput over this window
    power = summarize_power(trace, window_start_s, window_end_s, inferences, idle_w=1.3,
                            accuracy={"top1_pct": 70.0, "top5_pct": 89.0})
    assert power["energy_j"] == pytest.approx(2.5 * window_s, rel=0.01)
    assert power["energy_per_inference_j"] == pytest.approx(2.5 / fps, rel=0.01)
    assert power["fom_top1_per_j"] == pytest.approx(0.70 * fps / 2.5, rel=0.01)
    assert power["fom_top5_per_j"] == pytest.approx(0.89 * fps / 2.5, rel=0.01)
    assert power["power_min_w"] == power["power_max_w"] == pytest.approx(2.5)
    assert power["samples"] == len(trace)
    assert "ina219" in power["meter"]


def test_samples_carry_both_clocks_in_order(tmp_path: Path) -> None:
    make_ina219(tmp_path, 1_000_000)
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    before_unix_s = time.time()
    with PowerSampler(meter, rate_hz=100.0) as sampler:
        time.sleep(0.05)
    after_unix_s = time.time()
    trace = sampler.stop()
    assert trace is sampler.trace  # stop() is idempotent
    perf = trace.times_s("perf")
    unix = trace.times_s("unix")
    assert list(perf) == sorted(perf) and list(unix) == sorted(unix)
    assert before_unix_s <= unix[0] and unix[-1] <= after_unix_s
    assert sampler.start_s <= perf[0] and perf[-1] <= sampler.stop_s


def test_meter_that_vanishes_half_way_leaves_power_unavailable(tmp_path: Path) -> None:
    hwmon = make_ina219(tmp_path, 2_500_000)
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    sampler = PowerSampler(meter, rate_hz=100.0)
    sampler.start()
    time.sleep(0.05)
    shutil.rmtree(hwmon)  # the USB-I2C adapter was unplugged
    time.sleep(0.05)
    trace = sampler.stop()  # never raises
    assert trace.error is not None and "missing" in trace.error
    assert len(trace) >= 1  # what was read before is kept
    assert all(p == pytest.approx(2.5) for p in trace.power_w())
    power = summarize_power(trace, sampler.start_s, sampler.stop_s, 10, 1.3, {"top1_pct": 70.0})
    assert list(power) == ["unavailable"] and "missing" in power["unavailable"]


class ExplodingMeter(PowerMeter):
    """A backend with a bug: the sampler must still not raise into the measurement."""

    name = "exploding"

    def read_power_w(self) -> float:
        raise ZeroDivisionError("bug")


def test_sampler_never_raises_even_for_a_buggy_backend() -> None:
    sampler = PowerSampler(ExplodingMeter(), rate_hz=10.0)
    sampler.start()
    trace = sampler.stop()
    assert trace.samples == [] and trace.error == "exploding: ZeroDivisionError: bug"


def test_sampler_rejects_a_non_positive_rate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate"):
        PowerSampler(ExplodingMeter(), rate_hz=0)


def test_stop_without_start_is_an_unavailable_trace() -> None:
    trace = PowerSampler(ExplodingMeter()).stop()
    assert trace.error == "power sampler was never started"


def test_idle_power_of_a_constant_meter(tmp_path: Path) -> None:
    make_ina219(tmp_path, 1_300_000)  # the Pi 3 framework comparison: a Pi 3 idles near 1.3 W
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    assert measure_idle_w(meter, duration_s=0.05, rate_hz=100.0) == pytest.approx(1.3)


def test_idle_power_is_none_when_the_meter_fails(tmp_path: Path) -> None:
    assert measure_idle_w(ExplodingMeter(), duration_s=0.0, rate_hz=10.0) is None


# --- SCPI end to end (pyvisa-sim) ----------------------------------------------------------------------
def test_scpi_spec_to_energy_per_inference_end_to_end() -> None:
    meter = parse_meter_spec(f"scpi:{SIM_RESOURCE};file={SIM_YAML};query=MEAS:POW? (@1)", root=Path("/"))
    assert meter is not None
    try:
        sampler = PowerSampler(meter, rate_hz=50.0)
        sampler.start()
        time.sleep(0.1)
        trace = sampler.stop()
    finally:
        meter.close()
    assert trace.error is None
    power = summarize_power(trace, sampler.start_s, sampler.stop_s, 20, None, {"top1_pct": 50.0})
    window_s = sampler.stop_s - sampler.start_s
    assert power["power_mean_w"] == pytest.approx(2.5)
    assert power["energy_per_inference_j"] == pytest.approx(2.5 * window_s / 20)
    assert power["fom_top1_per_j"] == pytest.approx(0.5 * 20 / (2.5 * window_s))


# --- CSV logs aligned by wall-clock time ---------------------------------------------------------------
def test_csv_log_summary_uses_only_the_window_rows(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    rows = [(t0 + k, 3.0 if 2 <= k <= 8 else 9.0) for k in range(-3, 14)]  # 9 W outside, 3 W inside
    log = tmp_path / "um34c.csv"
    log.write_text("timestamp,power_w\n" + "".join(f"{t:.3f},{p}\n" for t, p in rows))
    meter = parse_meter_spec(f"csv:{log}", root=tmp_path)
    assert meter is not None
    trace = meter.read_trace(t0 + 2, t0 + 8)  # type: ignore[attr-defined]
    assert trace.times_s("unix")[0] == t0 + 1 and trace.times_s("unix")[-1] == t0 + 9  # one neighbour a side
    power = summarize_power(trace, t0 + 2, t0 + 8, inferences=120, idle_w=None, clock="unix")
    assert power["energy_j"] == pytest.approx(18.0)  # 3 W for 6 s; the 9 W rows only bound the edges
    assert power["energy_per_inference_j"] == pytest.approx(0.15)
    assert power["samples"] == 7
    # half a second into the ramps: 9 -> 3 W between k=1 and k=2, so P(t0+1.5) = 6 W
    edge = summarize_power(trace, t0 + 1.5, t0 + 8, inferences=10, idle_w=None, clock="unix")
    assert edge["energy_j"] == pytest.approx(18.0 + 0.5 * (6.0 + 3.0) / 2)


def test_csv_meter_through_the_sampler_aligns_to_the_perf_window(tmp_path: Path) -> None:
    now_unix_s = time.time()
    log = tmp_path / "logger.csv"
    # the logger writes 4.0 W rows every 20 ms around the run (written ahead here: it is read after the run)
    log.write_text("t_unix,volts,amps\n" + "".join(
        f"{now_unix_s - 1.0 + 0.02 * k:.4f},5.0,0.8\n" for k in range(200)))
    meter = parse_meter_spec(f"csv:{log}", root=tmp_path)
    assert meter is not None and meter.reads_after_run
    sampler = PowerSampler(meter)
    sampler.start()
    time.sleep(0.1)
    trace = sampler.stop()
    assert trace.error is None
    power = summarize_power(trace, sampler.start_s, sampler.stop_s, 10, None)
    assert power["power_mean_w"] == pytest.approx(4.0)
    assert power["energy_j"] == pytest.approx(4.0 * (sampler.stop_s - sampler.start_s))


def test_csv_log_deleted_before_the_read_is_unavailable(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(f"{time.time():.3f},2.0\n")
    meter = parse_meter_spec(f"csv:{log}", root=tmp_path)
    assert meter is not None
    sampler = PowerSampler(meter)
    sampler.start()
    log.unlink()
    trace = sampler.stop()
    assert trace.error is not None and "log.csv" in trace.error
    assert "unavailable" in summarize_power(trace, sampler.start_s, sampler.stop_s, 10, None)
