"""Owns the fake devices tests run against: a fake filesystem root and a fake ``vcgencmd`` with a schedule.

``FakeDevice(tmp_path)`` writes ``<tmp>/root`` (device-tree model, meminfo, cpufreq, thermal zone) and an
executable ``<tmp>/bin/vcgencmd`` (a small Python script). The script answers ``measure_clock arm``,
``measure_temp`` and ``get_throttled`` from a schedule of phases (``{"for_s": 3.0, "freq_ghz": 1.2, "temp_c":
50, "throttled": 0}``) timed from its first call (recorded in a file; the last phase lasts forever). A phase
value of None makes that sub-command fail, like a sensor that vanished. Any other sub-command (e.g.
``pmic_read_adc``) prints ``<root>/fake_vcgencmd/<name>.txt`` if it exists, else fails like the real tool.

    dev = FakeDevice.pi3_throttles_midway(tmp_path, after_s=1.0, for_s=1.0)
    readers = dev.readers()
    pytester.runpytest(*dev.plugin_args())
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pytest_edgeperf.device.readers import DeviceReaders
from pytest_edgeperf.device.runner import CommandRunner

PI3_MODEL = "Raspberry Pi 3 Model B Rev 1.2"

_SCRIPT = '''#!{python} -SE
"""Fake vcgencmd written by tests/fakedevice.py."""
import json, os, sys, time

STATE = {state!r}
T0 = {t0!r}
EXTRA = {extra!r}


def elapsed_s():
    try:
        with open(T0) as f:
            return time.monotonic() - float(f.read())
    except FileNotFoundError:
        tmp = "%s.%d" % (T0, os.getpid())
        with open(tmp, "w") as f:
            f.write(repr(time.monotonic()))
        try:
            os.link(tmp, T0)  # atomic: the first caller wins
        except FileExistsError:
            pass
        os.unlink(tmp)
        with open(T0) as f:
            return time.monotonic() - float(f.read())


def fail(msg):
    sys.stderr.write('error=2 error_msg="%s"\\n' % msg)
    sys.exit(255)


with open(STATE) as f:
    state = json.load(f)
if state.get("hang"):
    time.sleep(1e6)
args = sys.argv[1:]
cmd = " ".join(args)
phases = state["schedule"]
t = elapsed_s()
phase = phases[-1]
for p in phases[:-1]:
    if t < p.get("for_s", 0.0):
        phase = p
        break
    t -= p.get("for_s", 0.0)
if cmd == "measure_clock arm":
    v = phase.get("freq_ghz")
    if v is None:
        fail("clock unavailable")
    print("frequency(48)=%d" % round(v * 1e9))
elif cmd == "measure_temp":
    v = phase.get("temp_c")
    if v is None:
        fail("temperature unavailable")
    print("temp=%.1f'C" % v)
elif cmd == "get_throttled":
    v = phase.get("throttled")
    if v is None:
        fail("throttle state unavailable")
    print("throttled=%#x" % v)
else:
    path = os.path.join(EXTRA, (args[0] if args else "") + ".txt")
    if args and os.path.exists(path):
        with open(path) as f:
            sys.stdout.write(f.read())
    else:
        fail("Command not registered")
'''


def _phase(for_s: float | None, freq_ghz: float | None, temp_c: float | None, throttled: int | None) -> dict:
    p: dict[str, Any] = {"freq_ghz": freq_ghz, "temp_c": temp_c, "throttled": throttled}
    if for_s is not None:
        p["for_s"] = for_s
    return p


class FakeDevice:
    """A fake board rooted in ``tmp_path``; ``root`` and ``vcgencmd`` are what the plugin options take."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        model: str | None = PI3_MODEL,
        schedule: list[dict[str, Any]] | None = None,
        cpus: int = 4,
        governor: str = "ondemand",
        cpufreq_ghz: float | None = None,
        with_cpufreq: bool = True,
        thermal_c: float | None = None,
        with_thermal: bool = True,
        mem_total_mb: float = 926.0,
        mem_available_mb: float = 700.0,
        with_vcgencmd: bool = True,
        hang: bool = False,
    ) -> None:
        self.base = Path(tmp_path)
        self.root = self.base / "root"
        self.vcgencmd = self.base / "bin" / "vcgencmd"
        self.state_path = self.base / "vcgencmd_state.json"
        self.t0_path = self.base / "vcgencmd_t0"
        self.extra_dir = self.root / "fake_vcgencmd"
        self.cpus = cpus
        self.schedule = schedule if schedule is not None else [_phase(None, 1.2, 45.0, 0)]
        first = self.schedule[0]
        self.root.mkdir(parents=True, exist_ok=True)
        self.extra_dir.mkdir(exist_ok=True)
        if model is not None:
            self.write("proc/device-tree/model", model + "\0")
        self.write(
            "proc/meminfo",
            f"MemTotal:       {int(mem_total_mb * 1024)} kB\n"
            f"MemFree:        {int(mem_available_mb * 512)} kB\n"
            f"MemAvailable:   {int(mem_available_mb * 1024)} kB\nBuffers:           1024 kB\n",
        )
        if with_cpufreq:
            freq = cpufreq_ghz if cpufreq_ghz is not None else (first.get("freq_ghz") or 0.6)
            for cpu in range(cpus):
                self.write(f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", governor + "\n")
            self.set_cpufreq_ghz(freq)
        if with_thermal:
            temp = thermal_c if thermal_c is not None else (first.get("temp_c") or 45.0)
            self.set_thermal_c(temp)
        self._hang = hang
        self._write_state()
        if with_vcgencmd:
            self.vcgencmd.parent.mkdir(parents=True, exist_ok=True)
            self.vcgencmd.write_text(
                _SCRIPT.format(
                    python=sys.executable, state=str(self.state_path), t0=str(self.t0_path),
                    extra=str(self.extra_dir),
                )
            )
            self.vcgencmd.chmod(0o755)

    # --- presets -------------------------------------------------------------------------------------------
    @classmethod
    def pi3_cool(cls, tmp_path: Path, **kw: Any) -> FakeDevice:
        """A Pi 3 at full clock, 45 C, never throttled."""
        return cls(tmp_path, schedule=[_phase(None, 1.2, 45.0, 0)], **kw)

    @classmethod
    def pi3_throttles_midway(
        cls, tmp_path: Path, after_s: float = 1.0, for_s: float = 1.0, **kw: Any
    ) -> FakeDevice:
        """Full clock for ``after_s``, then 0.6 GHz / 82 C / throttled for ``for_s``, then full clock again
        (the sticky "since boot" bits stay set, as on a real Pi)."""
        return cls(
            tmp_path,
            schedule=[
                _phase(after_s, 1.2, 60.0, 0),
                _phase(for_s, 0.6, 82.0, 0x60006),
                _phase(None, 1.2, 70.0, 0x60000),
            ],
            **kw,
        )

    @classmethod
    def pi3_never_cools(cls, tmp_path: Path, **kw: Any) -> FakeDevice:
        """Stuck at 84 C, throttled to 0.6 GHz for ever."""
        return cls(tmp_path, schedule=[_phase(None, 0.6, 84.0, 0x60006)], **kw)

    @classmethod
    def pi3_under_voltage(
        cls, tmp_path: Path, after_s: float = 0.0, for_s: float = 1.0, **kw: Any
    ) -> FakeDevice:
        """Under-voltage (0x50005, 0.6 GHz) after ``after_s`` for ``for_s``; then only the sticky bits."""
        phases = [_phase(for_s, 0.6, 50.0, 0x50005), _phase(None, 1.2, 50.0, 0x50000)]
        if after_s > 0:
            phases.insert(0, _phase(after_s, 1.2, 50.0, 0))
        return cls(tmp_path, schedule=phases, **kw)

    @classmethod
    def host_without_sensors(cls, tmp_path: Path, **kw: Any) -> FakeDevice:
        """Like this machine: no device-tree model, no cpufreq, no thermal zone, no vcgencmd."""
        kw.setdefault("model", None)
        return cls(tmp_path, with_cpufreq=False, with_thermal=False, with_vcgencmd=False, **kw)

    # --- changing the device -------------------------------------------------------------------------------
    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def set_cpufreq_ghz(self, freq_ghz: float) -> None:
        for cpu in range(self.cpus):
            rel = f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"
            self.write(rel, f"{round(freq_ghz * 1e6)}\n")

    def set_thermal_c(self, temp_c: float) -> None:
        self.write("sys/class/thermal/thermal_zone0/temp", f"{round(temp_c * 1000)}\n")

    def set_schedule(self, phases: list[dict[str, Any]]) -> None:
        self.schedule = phases
        self._write_state()

    def set_hang(self, hang: bool) -> None:
        self._hang = hang
        self._write_state()

    def set_command_output(self, name: str, text: str) -> None:
        """What ``vcgencmd <name>`` prints (e.g. ``pmic_read_adc`` for the power helper)."""
        (self.extra_dir / f"{name}.txt").write_text(text)

    def jump_to(self, elapsed_s: float) -> None:
        """Make the schedule clock read ``elapsed_s`` now (as if the first call was that long ago)."""
        tmp = self.t0_path.with_name("t0.tmp")
        tmp.write_text(repr(time.monotonic() - elapsed_s))
        os.replace(tmp, self.t0_path)

    def remove_vcgencmd(self) -> None:
        self.vcgencmd.unlink(missing_ok=True)

    def _write_state(self) -> None:
        tmp = self.state_path.with_name("state.tmp")
        tmp.write_text(json.dumps({"schedule": self.schedule, "hang": self._hang}))
        os.replace(tmp, self.state_path)

    # --- using it ------------------------------------------------------------------------------------------
    def readers(self, timeout_s: float = 2.0) -> DeviceReaders:
        return DeviceReaders(self.root, str(self.vcgencmd), CommandRunner(timeout_s=timeout_s))

    def plugin_args(self) -> list[str]:
        return [f"--edgeperf-root={self.root}", f"--edgeperf-vcgencmd={self.vcgencmd}"]


pi3_cool = FakeDevice.pi3_cool
pi3_throttles_midway = FakeDevice.pi3_throttles_midway
pi3_never_cools = FakeDevice.pi3_never_cools
pi3_under_voltage = FakeDevice.pi3_under_voltage
host_without_sensors = FakeDevice.host_without_sensors
