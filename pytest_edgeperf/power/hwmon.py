"""INA2xx current/power monitors through the kernel hwmon interface (``ina2xx`` driver): discovery and reads.

The driver exposes ``power1_input`` in microwatts; when it is absent (or unreadable) the meter falls back to
bus voltage ``in1_input`` (mV) x current ``curr1_input`` (mA). Older kernels put the attributes under
``hwmonN/device/``, so both places are looked at.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_edgeperf.power.base import (
    MeterError,
    PowerMeter,
    check_power_w,
    missing_error,
    probed,
    read_number,
    spec_error,
)

INA_NAME_RE = re.compile(r"^ina(2xx|2\d\d)$")


def _natural_key(path: Path) -> tuple:
    return tuple(int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name))


def _attr_dir(hwmon_dir: Path) -> Path:
    """Where the sensor attributes live: the hwmon dir itself, or its ``device/`` (pre-3.x layout)."""
    for candidate in (hwmon_dir, hwmon_dir / "device"):
        if (candidate / "power1_input").exists() or (candidate / "curr1_input").exists():
            return candidate
    return hwmon_dir


def _read_name(hwmon_dir: Path) -> str:
    for candidate in (hwmon_dir / "name", hwmon_dir / "device" / "name"):
        try:
            return candidate.read_text().strip()
        except OSError:
            continue
    return ""


class HwmonMeter(PowerMeter):
    """One INA2xx hwmon device; reads power1_input (uW) or bus mV x mA."""

    def __init__(self, hwmon_dir: Path) -> None:
        self.hwmon_dir = Path(hwmon_dir)
        self.attr_dir = _attr_dir(self.hwmon_dir)
        self.chip = _read_name(self.hwmon_dir) or "hwmon"
        self.name = f"hwmon:{self.chip}"
        self.update_interval_s = self._update_interval_s()
        # Fixed when opened, so a device that vanishes mid-run is reported by the file it was read from
        # (power1_input), not by the fallback files it never had.
        self._power_input = (self.attr_dir / "power1_input").exists()

    def _update_interval_s(self) -> float | None:
        """The chip's conversion interval (INA226): sampling faster only repeats the same value."""
        try:
            return read_number(self.attr_dir / "update_interval", self.name) / 1000.0
        except MeterError:
            return None

    @property
    def uses_power_input(self) -> bool:
        return self._power_input

    def describe(self) -> str:
        source = "power1_input" if self.uses_power_input else "in1_input x curr1_input"
        return f"{self.chip} via hwmon ({self.hwmon_dir}, {source})"

    def read_power_w(self) -> float:
        power_file = self.attr_dir / "power1_input"
        if self._power_input or power_file.exists():
            try:
                return check_power_w(read_number(power_file, self.name) / 1e6, self.name)
            except MeterError:
                if not (self.attr_dir / "curr1_input").exists():
                    raise
        bus_mv = read_number(self.attr_dir / "in1_input", self.name)
        curr_ma = read_number(self.attr_dir / "curr1_input", self.name)
        return check_power_w(bus_mv * curr_ma / 1e6, self.name)


def _candidates(root: Path) -> list[Path]:
    base = root / "sys/class/hwmon"
    try:
        return sorted((p for p in base.iterdir() if p.is_dir()), key=_natural_key)
    except OSError:
        return []


def find_hwmon_meter(spec: str, arg: str, root: Path) -> HwmonMeter:
    """Resolve ``hwmon``, ``hwmon:NAME`` or ``hwmon:/abs/path`` to a meter, or raise a PowerSpecError."""
    base = root / "sys/class/hwmon"
    if "/" in arg:
        path = Path(arg)
        if not path.is_absolute():
            raise spec_error(spec, "hwmon path must be absolute")
        meter = HwmonMeter(path)
        if not ((meter.attr_dir / "power1_input").exists() or (meter.attr_dir / "curr1_input").exists()):
            raise missing_error(spec, f"{path} has no power1_input or in1_input/curr1_input")
        return probed(spec, meter)
    for hwmon_dir in _candidates(root):
        name = _read_name(hwmon_dir)
        if (arg and arg in (name, hwmon_dir.name)) or (not arg and INA_NAME_RE.match(name)):
            return probed(spec, HwmonMeter(hwmon_dir))
    wanted = f"hwmon named {arg!r}" if arg else "ina2xx/ina219/ina226/ina260 hwmon"
    raise missing_error(spec, f"found no {wanted} under {base}")
