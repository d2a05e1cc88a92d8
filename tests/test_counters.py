"""Tests for counters per inference, hot spots and the power/counter correlation (issue 8, the hardware-metrics
correlation study)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pytest_edgeperf.counters import (
    DEFAULT_EVENTS,
    STATUS_COUNTED,
    STATUS_NOT_COUNTED,
    STATUS_NOT_SUPPORTED,
    CounterReading,
    CountersConfigError,
    CounterSession,
    mean_readings,
    metric_name,
    parse_perf_stat_csv,
    parse_perf_stat_intervals,
    pearson_power_counters,
    per_inference,
)
from pytest_edgeperf.counters.hotspots import HotspotRecorder
from pytest_edgeperf.counters.parse import parse_perf_report

DATA = Path(__file__).parent / "data" / "perf"


def read(name: str) -> str:
    return (DATA / name).read_text()


# --- parsing --------------------------------------------------------------------------------------
def test_parse_plain_pi3_output_with_multiplexing_and_unsupported():
    readings = parse_perf_stat_csv(read("pi3_whole_run.csv"))
    assert set(readings) == set(DEFAULT_EVENTS)
    assert readings["instructions"] == CounterReading("instructions", 61_250_000_000, STATUS_COUNTED, 100.0)
    assert readings["L1-dcache-loads"].running_pct == pytest.approx(74.98)
    assert readings["cache-misses"].status == STATUS_NOT_COUNTED
    assert readings["cache-misses"].value is None
    assert readings["branches"].status == STATUS_NOT_SUPPORTED
    assert readings["branches"].value is None


def test_parse_real_capture_from_this_vm_lists_every_hardware_event_unsupported():
    readings = parse_perf_stat_csv(read("x86_vm_plain_true.csv"))
    assert [e for e, r in readings.items() if r.status == STATUS_NOT_SUPPORTED] == list(DEFAULT_EVENTS)
    clock = readings["task-clock"]
    assert (clock.status, clock.unit, clock.value) == (STATUS_COUNTED, "msec", 0.66)


def test_parse_real_interval_capture_sums_intervals():
    text = read("x86_vm_interval_pid.csv")
    readings = parse_perf_stat_csv(text)
    assert readings["instructions"].status == STATUS_NOT_SUPPORTED
    assert readings["task-clock"].value == pytest.approx(100.04 + 100.36 + 100.30 + 45.31)
    assert readings["context-switches"].value == 10
    intervals = parse_perf_stat_intervals(text, t0_s=1000.0)
    assert len(intervals) == 4
    assert intervals[0]["t_s"] == pytest.approx(1000.100158560)
    assert intervals[0]["dt_s"] == pytest.approx(0.100158560)
    assert intervals[-1]["dt_s"] == pytest.approx(0.346122523 - 0.300815969)
    assert intervals[0]["context-switches"] == pytest.approx(10 / 0.100158560)
    assert all("instructions" not in p for p in intervals)  # unsupported: no rate, not a zero rate


def test_parse_interval_with_modifiers_not_counted_and_blank_lines():
    text = read("pi4_interval_user.csv")
    readings = parse_perf_stat_csv(text)
    assert set(readings) == {"instructions:u", "cycles:u", "L1-dcache-loads:u", "task-clock:u"}
    assert readings["instructions:u"].value == 800_000_000  # the <not counted> interval adds nothing
    assert readings["instructions:u"].status == STATUS_COUNTED
    assert readings["L1-dcache-loads:u"].running_pct == 50.0  # the most multiplexed interval
    assert readings["task-clock:u"].value == pytest.approx(150.0)
    intervals = parse_perf_stat_intervals(text)
    assert [set(p) - {"t_s", "dt_s"} for p in intervals][1] == set()  # nothing counted in the 2nd interval
    assert intervals[2]["instructions:u"] == pytest.approx(500_000_000 / 0.1)


def test_parse_ignores_comments_blank_lines_and_junk():
    text = "# started on x\n\n   \nsome chatter from perf\n5,,instructions,10,100.00,,\n#,,cycles,1,1,,\n"
    expected = {"instructions": CounterReading("instructions", 5.0, STATUS_COUNTED, 100.0)}
    assert parse_perf_stat_csv(text) == expected
    assert parse_perf_stat_csv("") == {}


def test_not_supported_in_one_interval_and_not_counted_in_another_stays_unsupported():
    text = "0.1,<not counted>,,branches,0,0.00,,\n0.2,<not supported>,,branches,0,100.00,,\n"
    assert parse_perf_stat_csv(text)["branches"].status == STATUS_NOT_SUPPORTED


# --- arithmetic -----------------------------------------------------------------------------------
def test_idle_subtraction_per_image_on_known_numbers_as_the_correlation_study():
    whole = parse_perf_stat_csv(read("pi3_whole_run.csv"))
    load = parse_perf_stat_csv(read("pi3_load_only.csv"))
    figures = per_inference(whole, 50, load_only=load)
    # hand-computed: (s1 - s2) / 50
    assert figures == pytest.approx({
        "instructions": (61_250_000_000 - 1_250_000_000) / 50,  # 1.2e9
        "cycles": (80_500_000_000 - 500_000_000) / 50,  # 1.6e9
        "l1_dcache_loads": 5.0e8,
        "l1_dcache_load_misses": 2.0e7,
        "cache_references": 5.0e7,
        "branch_misses": 3.0e6,
        "ipc": 0.75,  # 60e9 / 80e9, the window's own ratio (not the whole run's 0.76)
    })
    assert "cache_misses" not in figures and "branches" not in figures


def test_per_inference_of_a_timed_window_and_units_in_names():
    window = parse_perf_stat_csv(read("pi4_interval_user.csv"))
    figures = per_inference(window, 40)
    assert figures["instructions_u"] == pytest.approx(800_000_000 / 40)
    assert figures["cycles_u"] == pytest.approx(600_000_000 / 40)
    assert figures["task_clock_u_ms"] == pytest.approx(150.0 / 40)
    assert figures["ipc"] == pytest.approx(800 / 600)


def test_ipc_pairs_pmu_qualified_events():
    window = {e: CounterReading(e, v, STATUS_COUNTED, 100.0)
              for e, v in [("cpu_core/instructions/", 300.0), ("cpu_core/cycles/", 200.0)]}
    assert per_inference(window, 2) == {"cpu_core_instructions": 150.0, "cpu_core_cycles": 100.0, "ipc": 1.5}


def test_per_inference_leaves_out_negative_and_missing_differences():
    window = {"instructions": CounterReading("instructions", 100.0, STATUS_COUNTED, 100.0),
              "cycles": CounterReading("cycles", 50.0, STATUS_COUNTED, 100.0)}
    load = {"instructions": CounterReading("instructions", 200.0, STATUS_COUNTED, 100.0)}
    assert per_inference(window, 10, load_only=load) == {}


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_per_inference_rejects_a_bad_count(bad):
    with pytest.raises(CountersConfigError, match="inference count"):
        per_inference({}, bad)


def test_metric_name():
    assert metric_name("L1-dcache-load-misses") == "l1_dcache_load_misses"
    assert metric_name("task-clock", "msec") == "task_clock_ms"
    assert metric_name("armv8_pmuv3_0/l2d_cache/") == "armv8_pmuv3_0_l2d_cache"


def test_mean_of_five_repetitions_as_the_correlation_study():
    runs = [{"instructions": CounterReading("instructions", v, STATUS_COUNTED, p),
             "branches": CounterReading("branches", None, STATUS_NOT_SUPPORTED, None)}
            for v, p in [(10, 100.0), (12, 80.0), (14, 100.0), (16, 90.0), (18, 100.0)]]
    mean = mean_readings(runs)
    assert mean["instructions"].value == 14
    assert mean["instructions"].running_pct == 80.0
    assert mean["branches"].status == STATUS_NOT_SUPPORTED


# --- correlation ----------------------------------------------------------------------------------
def _intervals(rates: dict[str, list[float]], dt_s: float = 0.1, t0_s: float = 50.0) -> list[dict]:
    n = len(next(iter(rates.values())))
    return [{"t_s": t0_s + (i + 1) * dt_s, "dt_s": dt_s, **{k: v[i] for k, v in rates.items()}}
            for i in range(n)]


def _power_steps(levels_w: list[float], dt_s: float = 0.1, t0_s: float = 50.0, per: int = 10):
    """Power sampled every dt/per, constant within each counter interval."""
    return [(t0_s + i * dt_s + (j + 0.5) * dt_s / per, level)
            for i, level in enumerate(levels_w) for j in range(per)]


def test_pearson_known_r():
    # x = 1..5, y = 2,1,4,3,5: sum dx*dy = 8, sum dx^2 = sum dy^2 = 10 -> r = 0.8 exactly
    intervals = _intervals({"instructions": [1e9, 2e9, 3e9, 4e9, 5e9], "L1-dcache-loads": [5, 4, 3, 2, 1],
                            "cycles": [7, 7, 7, 7, 7]})
    r = pearson_power_counters(_power_steps([2.0, 1.0, 4.0, 3.0, 5.0]), intervals)
    assert r["instructions"] == pytest.approx(0.8)
    assert r["L1-dcache-loads"] == pytest.approx(-0.8)
    assert "cycles" not in r  # constant series: r undefined


def test_pearson_aligns_by_time_and_interpolates_sparse_power():
    rng = np.random.default_rng(4)
    rates = rng.uniform(1e8, 5e8, size=30)
    intervals = _intervals({"instructions": list(rates)}, dt_s=0.01)
    # one power reading every 3 intervals at interval edges (never inside most intervals), linear in time
    power = [(50.0 + k * 0.03, 1.3 + 0.01 * k) for k in range(11)]
    expected_power = [float(np.interp(p["t_s"] - 0.005, [t for t, _ in power], [w for _, w in power]))
                      if not any(p["t_s"] - 0.01 < t <= p["t_s"] for t, _ in power)
                      else next(w for t, w in power if p["t_s"] - 0.01 < t <= p["t_s"]) for p in intervals]
    r = pearson_power_counters(power, intervals)
    assert r["instructions"] == pytest.approx(float(np.corrcoef(expected_power, rates)[0, 1]))


def test_pearson_needs_three_aligned_points():
    intervals = _intervals({"instructions": [1.0, 2.0, 3.0]})
    assert pearson_power_counters(_power_steps([1.0, 2.0]), intervals) == {}
    assert pearson_power_counters([], intervals) == {}
    # power entirely after the counters: nothing aligns
    assert pearson_power_counters([(90.0, 1.0), (91.0, 2.0)], intervals) == {}


# --- hot spot report parsing ----------------------------------------------------------------------
def test_parse_perf_report_top_symbols():
    top = parse_perf_report(read("report_gemm.txt"), top=3)
    assert top == [{"symbol": "gemm_nn", "percent": 87.12, "space": "user"},
                   {"symbol": "im2col_cpu", "percent": 4.31, "space": "user"},
                   {"symbol": "add_bias", "percent": 2.05, "space": "user"}]
    every = parse_perf_report(read("report_gemm.txt"), top=50)
    assert len(every) == 8
    assert {"symbol": "el0_svc_common.constprop.0", "percent": 1.77, "space": "kernel"} in every
    assert every[5]["symbol"] == ("std::vector<float, std::allocator<float> >"
                                  "::_M_default_append(unsigned long)")


# --- sessions with a fake perf --------------------------------------------------------------------
@pytest.fixture
def fake_perf(tmp_path: Path) -> Path:
    script = tmp_path / "bin" / "perf"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n" + read("fake_perf.py"))
    script.chmod(0o755)
    return script


@pytest.fixture
def target() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "5"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(autouse=True)
def _fresh_probe_cache():
    CounterSession._probe_cache.clear()
    yield
    CounterSession._probe_cache.clear()


def test_session_plain_end_to_end(fake_perf, target, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "count")
    session = CounterSession(perf=str(fake_perf), interval_ms=None)
    assert session.available() == (True, "perf works; not supported here: L1-dcache-load-misses, "
                                          "cache-references, branch-misses, branches")
    session.start(target.pid)
    report = session.stop(40)
    json.dumps(report)  # JSON-able
    assert report["per_inference"] == pytest.approx({
        "instructions": 12_000_000 / 40, "cycles": 8_000_000 / 40, "l1_dcache_loads": 3_000_000 / 40,
        "task_clock_ms": 150.5 / 40})
    assert report["ipc"] == pytest.approx(1.5)
    assert report["unsupported"] == ["L1-dcache-load-misses", "cache-references", "branch-misses", "branches"]
    assert report["not_counted"] == ["cache-misses"]
    assert report["events"]["L1-dcache-loads"] == {"value": 3e6, "status": "counted", "running_pct": 50.0,
                                                   "unit": ""}
    assert report["intervals"] == []
    assert any("multiplexed" in n and "L1-dcache-loads 50%" in n for n in report["notes"])
    assert any(n.startswith("not supported on this machine: L1-dcache-load-misses") for n in report["notes"])
    assert not any("confirm" in n for n in report["notes"])  # attach seen (fd or data line)


def test_session_interval_end_to_end(fake_perf, target, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "count")
    session = CounterSession(perf=str(fake_perf), events=["instructions", "cycles", "branches"],
                             interval_ms=20)
    session.start(target.pid)
    assert session.attached_at_s is not None
    time.sleep(0.15)
    # power on the same clock, rising linearly over (and beyond) the window: r with instructions/s is 1
    t0 = session.attached_at_s - 1.0
    power = [(t0 + i * 0.005, 1.0 + i * 0.005) for i in range(int((time.perf_counter() + 2.0 - t0) / 0.005))]
    report = session.stop(10, power=power)
    n = len(report["intervals"])
    assert n >= 3
    instructions = 1_000_000 * n * (n + 1) / 2  # the fake counts k * 1e6 in interval k
    assert report["events"]["instructions"]["value"] == instructions
    assert report["per_inference"]["instructions"] == pytest.approx(instructions / 10)
    assert report["per_inference"]["task_clock_ms"] == pytest.approx(50.0 * n / 10)  # sentinel added
    assert report["ipc"] == pytest.approx(instructions / (500_000 * n))
    assert report["unsupported"] == ["branches"]
    first = report["intervals"][0]
    assert first["instructions"] == pytest.approx(1_000_000 / 0.02)
    assert report["intervals"][1]["instructions"] == pytest.approx(2_000_000 / 0.02)
    assert first["t_s"] > session.attached_at_s  # on the caller's perf_counter clock
    assert report["pearson_power"]["instructions"] == pytest.approx(1.0, abs=0.01)  # interval edges jitter
    assert "cycles" not in report["pearson_power"]  # a constant rate has no correlation


def test_session_perf_missing(tmp_path, target):
    session = CounterSession(perf=str(tmp_path / "no-such-perf"))
    assert session.available() == (False, "perf not found")
    session.start(target.pid)
    report = session.stop(10)
    assert report["per_inference"] == {}
    assert report["notes"] == ["perf not found: no counters"]


def test_session_perf_exits_at_once(fake_perf, target, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "exit_now")
    session = CounterSession(perf=str(fake_perf))
    ok, why = session.available()
    assert not ok and "perf stat failed" in why
    session.start(target.pid)
    report = session.stop(10)
    assert report["events"] == {}
    expected = "perf exited at once (code 255): Error: Access to performance"
    assert any(n.startswith(expected) for n in report["notes"])


def test_session_target_gone(fake_perf, monkeypatch):
    proc = subprocess.Popen(["true"])
    proc.wait()
    session = CounterSession(perf=str(fake_perf))
    session.start(proc.pid)
    report = session.stop(10)
    assert any("No such process" in n for n in report["notes"])


def test_session_perf_dies_midway(fake_perf, target, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "die_midway")
    session = CounterSession(perf=str(fake_perf), interval_ms=None)
    session.start(target.pid)
    time.sleep(0.4)
    report = session.stop(10)
    assert any("perf stopped before the window ended (code 1): fake perf: lost the target" in n
               for n in report["notes"])
    assert report["per_inference"] == {}


def test_session_perf_ignoring_sigint_is_terminated(fake_perf, target, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "hang")
    session = CounterSession(perf=str(fake_perf), interval_ms=None, stop_timeout_s=0.3)
    session.start(target.pid)
    report = session.stop(10)
    assert any("ignored SIGINT" in n for n in report["notes"])


def test_probe_rejecting_events_and_stop_without_start(fake_perf, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_MODE", "probe_fail")
    session = CounterSession(perf=str(fake_perf))
    ok, why = session.available()
    assert not ok
    assert why.startswith("perf stat failed here: ") and "129" in why
    assert session.stop(5)["notes"] == ["counter session was never started"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"events": []}, "event list is empty"),
    ({"events": ["instructions", "bad event"]}, "'bad event' is not a perf event name"),
    ({"interval_ms": 5}, "counter interval: 5 ms is invalid"),
])
def test_session_rejects_bad_settings(kwargs, message):
    with pytest.raises(CountersConfigError, match=message):
        CounterSession(**kwargs)


def test_hotspots_with_fake_perf(fake_perf, target, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_PERF_REPORT", str(DATA / "report_gemm.txt"))
    rec = HotspotRecorder(perf=str(fake_perf))
    rec.start(target.pid)
    out = rec.stop(tmp_path / "artifacts", top=2)
    assert out["top"] == [{"symbol": "gemm_nn", "percent": 87.12, "space": "user"},
                          {"symbol": "im2col_cpu", "percent": 4.31, "space": "user"}]
    assert Path(out["perf_data"]).read_bytes().startswith(b"PERFILE2")
    assert Path(out["hotspots_txt"]).read_text() == read("report_gemm.txt")
    assert out["notes"] == []
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == ["hotspots.txt", "perf.data"]


def test_hotspots_graceful_paths(fake_perf, target, tmp_path, monkeypatch):
    missing = HotspotRecorder(perf=str(tmp_path / "nope"))
    missing.start(target.pid)
    assert missing.stop(tmp_path / "a")["notes"] == ["perf not found: no hot spots"]
    monkeypatch.setenv("FAKE_PERF_MODE", "record_empty")
    empty = HotspotRecorder(perf=str(fake_perf))
    empty.start(target.pid)
    result = empty.stop(tmp_path / "b")
    assert result["top"] == [] and result["notes"] == ["perf record wrote no data"]
    assert not (tmp_path / "b").exists()
    monkeypatch.setenv("FAKE_PERF_MODE", "count")
    monkeypatch.delenv("FAKE_PERF_REPORT", raising=False)
    no_report = HotspotRecorder(perf=str(fake_perf))
    no_report.start(target.pid)
    result = no_report.stop(tmp_path / "c")
    assert result["notes"] == ["perf report failed; perf.data kept for `perf report -i`"]
    assert (tmp_path / "c" / "perf.data").exists()


def test_lead_import_path_for_hotspots():
    from pytest_edgeperf.counters import HotspotRecorder as Recorder

    assert Recorder is HotspotRecorder


# --- the real perf, where installed ---------------------------------------------------------------
BUSY = "import time\nt = time.time()\nwhile time.time() - t < 5:\n    sum(range(1000))\n"


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_real_perf_session_reports_unsupported_and_carries_on():
    session = CounterSession()
    ok, why = session.available()
    if not ok:
        pytest.skip(f"perf cannot count here: {why}")
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        session.start(proc.pid)
        time.sleep(0.3)
        report = session.stop(100)
    finally:
        proc.kill()
        proc.wait()
    assert set(DEFAULT_EVENTS) <= set(report["events"])
    for event in DEFAULT_EVENTS:
        status = report["events"][event]["status"]
        assert (event in report["unsupported"]) == (status == STATUS_NOT_SUPPORTED)
        assert (metric_name(event) in report["per_inference"]) == (status == STATUS_COUNTED)
    assert report["events"]["task-clock"]["status"] == STATUS_COUNTED
    assert report["per_inference"]["task_clock_ms"] > 0
    assert report["intervals"]


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_real_perf_hotspots(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        rec = HotspotRecorder()
        rec.start(proc.pid)
        time.sleep(0.3)
        out = rec.stop(tmp_path, top=5)
    finally:
        proc.kill()
        proc.wait()
    if not out["top"]:
        assert out["notes"], "no symbols and no reason given"
        return
    assert len(out["top"]) <= 5
    assert all(0 < row["percent"] <= 100 for row in out["top"])
    assert (tmp_path / "perf.data").exists() and (tmp_path / "hotspots.txt").exists()
