"""Intel/AMD RAPL package power from a powercap zone's cumulative ``energy_uj`` counter (x86 hosts).

Power is the energy delta between two reads over their time delta. The counter wraps at
``max_energy_range_uj``; a read lower than the previous one is taken as one wrap. Since kernel 5.10
``energy_uj`` is readable by root only (CVE-2020-8694), which gets its own clear message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pytest_edgeperf.power.base import MeterError, PowerMeter, check_power_w, read_number


class RaplMeter(PowerMeter):
    """Package (or sub-zone) power; the first reading primes the counter and waits ``prime_s``."""

    def __init__(self, zone: Path, *, prime_s: float = 0.05,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.zone = Path(zone)
        self.prime_s = prime_s
        self.clock = clock
        self._last: tuple[float, float] | None = None  # (energy_uj, t_s)
        self._max_range_uj: float | None = None
        try:
            label = (self.zone / "name").read_text().strip()
        except OSError:
            label = self.zone.name
        self.label = label or self.zone.name
        self.name = f"rapl:{self.label}"

    def describe(self) -> str:
        return f"RAPL {self.label} ({self.zone}/energy_uj; CPU package only, not the wall)"

    def _read_energy_uj(self) -> float:
        path = self.zone / "energy_uj"
        try:
            return read_number(path, self.name)
        except MeterError as exc:
            if "permission denied" in str(exc):
                raise MeterError(
                    f"{self.name}: permission denied reading {path}: RAPL energy_uj needs root since "
                    "kernel 5.10 (run as root or grant read access to energy_uj)"
                ) from None
            raise

    def _max_range(self) -> float | None:
        if self._max_range_uj is None:
            try:
                self._max_range_uj = read_number(self.zone / "max_energy_range_uj", self.name)
            except MeterError:
                return None
        return self._max_range_uj

    def _delta_uj(self, prev_uj: float, now_uj: float) -> float:
        if now_uj >= prev_uj:
            return now_uj - prev_uj
        max_uj = self._max_range()
        if max_uj is None or max_uj <= 0:
            raise MeterError(f"{self.name}: energy_uj went backwards and max_energy_range_uj is unreadable")
        return now_uj + max_uj - prev_uj

    def read_power_w(self) -> float:
        energy_uj = self._read_energy_uj()
        now_s = self.clock()
        if self._last is None:
            self._last = (energy_uj, now_s)
            time.sleep(self.prime_s)
            energy_uj = self._read_energy_uj()
            now_s = self.clock()
        prev_uj, prev_s = self._last
        self._last = (energy_uj, now_s)
        dt_s = now_s - prev_s
        if dt_s <= 0:
            raise MeterError(f"{self.name}: two reads at the same instant")
        return check_power_w(self._delta_uj(prev_uj, energy_uj) / 1e6 / dt_s, self.name)
