"""The instrument protocol, the kernel's memory figures and the power join, on fake objects and fake /proc trees."""

from __future__ import annotations

from pathlib import Path

from pytest_edgeperf.device.memory import cgroup_memory_mb, memory_pressure, oom_kill_count, status_kb
from pytest_edgeperf.instruments import Instrument, Running
from pytest_edgeperf.power.join import join_power
from pytest_edgeperf.power.trace import PowerTrace
from pytest_edgeperf.result import TimelinePoint


class _Fake:
    """An instrument that records what was asked of it; ``fail`` makes start() raise."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def start(self) -> None:
        if self.fail:
            raise OSError("no such device")
        self.log.append(f"start {self.name}")

    def stop(self) -> str:
        self.log.append(f"stop {self.name}")
        return f"{self.name} measured"


def test_an_instrument_that_cannot_start_is_a_note_and_the_others_stop_in_start_order() -> None:
    notes: list[str] = []
    log: list[str] = []
    running = Running(notes)
    wanted: list[tuple[str, Instrument[object]]] = [
        ("the sensor sampler", _Fake("sensors", log)), ("perf stat", _Fake("perf", log, fail=True)),
        ("perf record", _Fake("record", log))]
    for what, instrument in wanted:
        running.start(what, lambda instrument=instrument: instrument)
    assert notes == ["perf stat could not start: no such device"]
    assert running.get("perf stat") is None
    assert running.stop_all() == {"the sensor sampler": "sensors measured", "perf record": "record measured"}
    assert log == ["start sensors", "start record", "stop sensors", "stop record"]
    running.abandon()  # nothing left running: nothing is stopped twice
    assert log[-1] == "stop record" and len(log) == 4


def test_abandon_stops_what_still_runs_and_swallows_its_failure() -> None:
    log: list[str] = []

    class _Broken(_Fake):
        def stop(self) -> str:
            raise RuntimeError("perf vanished")

    running = Running([])
    running.start("perf stat", lambda: _Broken("perf", log))
    running.start("perf record", lambda: _Fake("record", log))
    running.abandon()
    assert log == ["start perf", "start record", "stop record"]
    assert running.stop_all() == {}


def _proc(root: Path, pid: int, status: str, limits: str = "", cgroup: str = "0::/job\n") -> None:
    d = root / "proc" / str(pid)
    d.mkdir(parents=True)
    (d / "status").write_text(status)
    (d / "limits").write_text(limits)
    (d / "cgroup").write_text(cgroup)


def test_memory_figures_are_read_under_the_configured_root(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "vmstat").write_text("pgfault 10\noom_kill 3\n")
    (tmp_path / "proc" / "meminfo").write_text("MemTotal: 4000000 kB\nMemAvailable: 2000000 kB\n")
    _proc(tmp_path, 42, "Name: python\nVmRSS:\t  102400 kB\nVmHWM:\t  204800 kB\nVmSize:\t 512000 kB\n")
    cg = tmp_path / "sys" / "fs" / "cgroup" / "job"
    cg.mkdir(parents=True)
    (cg / "memory.current").write_text(str(95 * 2**20))
    (cg / "memory.max").write_text(str(100 * 2**20))
    assert oom_kill_count(tmp_path) == 3
    assert status_kb(42, tmp_path) == {"VmRSS": 102400, "VmHWM": 204800, "VmSize": 512000}
    assert cgroup_memory_mb(42, tmp_path) == (95.0, 100.0)
    assert memory_pressure(42, tmp_path) == "its memory cgroup at 95 of 100 MB"
    (cg / "memory.max").write_text("max\n")  # no limit: the machine is fine, nothing swapped: not memory
    assert memory_pressure(42, tmp_path) is None
    assert memory_pressure(43, tmp_path) is None  # gone
    assert oom_kill_count(tmp_path / "elsewhere") is None


def test_power_readings_join_the_nearest_timeline_point_within_one_period() -> None:
    trace = PowerTrace("fake", [(0.0, 100.0, 2.0), (0.1, 100.1, 3.0), (0.2, 100.2, 4.0)], rate_hz=10.0)
    timeline = [TimelinePoint(t_s=0.04), TimelinePoint(t_s=0.16), TimelinePoint(t_s=0.9)]
    joined = join_power(timeline, trace)
    assert joined is timeline
    assert [p.power_w for p in joined] == [2.0, 4.0, None]  # 0.9 s is farther than a period from any reading
    alone = join_power([], trace)
    assert [(p.t_s, p.power_w) for p in alone] == [(0.0, 2.0), (0.1, 3.0), (0.2, 4.0)]
