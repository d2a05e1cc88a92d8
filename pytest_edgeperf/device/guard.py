"""Owns the thermal guard: before a measurement, wait until the device is cool, unthrottled and at full clock.

An idle Pi on the ``ondemand`` governor sits at its minimum clock (600 MHz), so the clock is judged while a
short busy load runs on every core; the load only runs once the device is cool enough and nothing throttles,
so that the guard never heats a device it is waiting to cool down. The guard is bounded by ``timeout_s`` (plus
at most one command timeout of a hanging ``vcgencmd``, after which the readers stop asking it).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_edgeperf.device.profiles import DeviceProfile
from pytest_edgeperf.device.readers import DeviceReaders
from pytest_edgeperf.errors import EdgeperfError

PROGRESS_INTERVAL_S = 1.0  # at most one progress line per second
TEMP_MARGIN_C = 5.0  # default: start measuring this far below the profile's throttle temperature


class DeviceNotReady(EdgeperfError):
    """The thermal guard gave up; carries the guard's reason (with the last readings)."""


class GuardSettingsError(EdgeperfError, ValueError):
    """Invalid guard settings (from options, ini or a marker)."""


@dataclass(frozen=True)
class GuardSettings:
    """What "ready" means: clock >= floor under load for ``hold_s``, below ``max_temp_c``, no throttling."""

    floor_ghz: float | None
    max_temp_c: float | None
    hold_s: float = 2.0
    timeout_s: float = 120.0
    poll_s: float = 0.25
    apply_load: bool = True

    def __post_init__(self) -> None:
        if self.floor_ghz is not None and self.floor_ghz <= 0:
            raise GuardSettingsError(f"--edgeperf-min-freq must be > 0 GHz, got {self.floor_ghz}")
        if self.hold_s < 0:
            raise GuardSettingsError(f"thermal guard hold time must be >= 0 s, got {self.hold_s}")
        if self.timeout_s <= 0:
            raise GuardSettingsError(f"--edgeperf-guard-timeout must be > 0 s, got {self.timeout_s}")
        if self.poll_s <= 0:
            raise GuardSettingsError(f"thermal guard poll interval must be > 0 s, got {self.poll_s}")

    @classmethod
    def from_profile(
        cls,
        profile: DeviceProfile,
        *,
        floor_ghz: float | None = None,
        max_temp_c: float | None = None,
        temp_margin_c: float = TEMP_MARGIN_C,
        **kwargs: Any,
    ) -> GuardSettings:
        """Profile defaults (floor, throttle temperature - margin), each overridable (--edgeperf-min-freq)."""
        floor = floor_ghz if floor_ghz is not None else profile.floor_freq_ghz
        if max_temp_c is None and profile.throttle_temp_c is not None:
            max_temp_c = profile.throttle_temp_c - temp_margin_c
        return cls(floor_ghz=floor, max_temp_c=max_temp_c, **kwargs)


@dataclass
class GuardOutcome:
    """The guard's answer; ``reason`` is one line fit for a skip/failure message."""

    ready: bool
    waited_s: float
    reason: str
    last_readings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class CpuLoad:
    """One short-lived busy child process per usable core, so ``ondemand`` raises the clock; cleaned up.

    Each child also ends itself after ``max_s`` so that even a killed parent cannot leave a core spinning.
    """

    def __init__(self, max_s: float, n: int | None = None) -> None:
        self.max_s = max(1.0, float(max_s))
        self.n = n if n is not None else len(os.sched_getaffinity(0))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        code = f"import time\nend = time.monotonic() + {self.max_s:.1f}\nwhile time.monotonic() < end: pass\n"
        for _ in range(self.n):
            try:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-S", "-c", code],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                )
            except OSError:
                break

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL did not land in 2 s
                p.wait(timeout=2.0)
        self.procs = []

    @property
    def running(self) -> bool:
        return bool(self.procs)

    def __enter__(self) -> CpuLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThermalGuard:
    """Waits (with a progress line) until the device may be measured, or gives up after ``timeout_s``."""

    def __init__(
        self,
        readers: DeviceReaders,
        settings: GuardSettings,
        progress: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.readers = readers
        self.settings = settings
        self.progress = progress
        self.clock = clock
        self.sleep = sleep

    def _read(self) -> dict[str, Any]:
        thr = self.readers.throttled()
        return {
            "clock_ghz": self.readers.clock_ghz(),
            "temp_c": self.readers.temperature_c(),
            "throttled": None if thr is None else thr.raw,
            "throttled_now": [] if thr is None else thr.now_flags(),
        }

    def _problems(self, r: dict[str, Any], loaded: bool) -> tuple[list[str], list[str]]:
        """(reasons to cool down first, reasons the clock is not there yet); ``loaded``: read under load."""
        s = self.settings
        cool: list[str] = []
        if s.max_temp_c is not None and r["temp_c"] is not None and r["temp_c"] >= s.max_temp_c:
            cool.append(f"too hot ({r['temp_c']:.1f} C >= {s.max_temp_c:.1f} C)")
        if r["throttled_now"]:
            cool.append("throttled now (" + ", ".join(r["throttled_now"]) + ")")
        clock: list[str] = []
        if s.floor_ghz is not None and r["clock_ghz"] is not None:
            if r["clock_ghz"] < s.floor_ghz:
                clock.append(f"clock {r['clock_ghz']:.2f} GHz < {s.floor_ghz:.2f} GHz")
            elif not loaded:
                clock.append("clock not yet checked under load")
        return cool, clock

    def _summary(self, r: dict[str, Any]) -> str:
        parts = []
        parts.append("clock n/a" if r["clock_ghz"] is None else f"{r['clock_ghz']:.2f} GHz")
        parts.append("temperature n/a" if r["temp_c"] is None else f"{r['temp_c']:.1f} C")
        if r["throttled"] is not None:
            parts.append(f"throttled={r['throttled']:#x}")
        return ", ".join(parts)

    def _target(self) -> str:
        s = self.settings
        targets = []
        if s.floor_ghz is not None:
            targets.append(f"CPU >= {s.floor_ghz:.2f} GHz")
        if s.max_temp_c is not None:
            targets.append(f"< {s.max_temp_c:.1f} C")
        return " and ".join(targets) or "no throttling"

    def wait_until_ready(self) -> GuardOutcome:
        """Poll until ready for ``hold_s`` in a row, or until ``timeout_s``; sensor trouble never raises."""
        s = self.settings
        start = self.clock()
        r = self._read()
        notes: list[str] = []
        if r["clock_ghz"] is None or r["temp_c"] is None or r["throttled"] is None:
            for line in self.readers.unavailable():
                if line.startswith(("clock", "temperature", "throttle")):
                    notes.append(f"not checked: {line}")
        problem = self.readers.vcgencmd_problem()
        if problem and "hung" in problem and not any(problem in n for n in notes):
            notes.append(problem)
        if r["clock_ghz"] is None and r["temp_c"] is None and r["throttled"] is None:
            return GuardOutcome(True, self.clock() - start, "nothing to check on this device", r, notes)
        if r["clock_ghz"] is None and s.floor_ghz is not None:
            notes.append(f"clock floor {s.floor_ghz:.2f} GHz not enforced: no clock reading")

        load: CpuLoad | None = None
        held_since: float | None = None
        last_progress: float | None = None
        try:
            while True:
                loaded = load is not None  # r was read while the load ran
                need_load = s.apply_load and s.floor_ghz is not None and r["clock_ghz"] is not None
                cool, clock = self._problems(r, loaded or not need_load)
                now = self.clock()
                waited = now - start
                if cool:
                    if load is not None:
                        load.stop()  # never heat a device we are waiting to cool down
                        load = None
                    held_since = None
                elif need_load and load is None:
                    load = CpuLoad(max_s=s.timeout_s + s.hold_s + 5.0)
                    load.start()
                    held_since = None
                elif clock:
                    held_since = None
                else:
                    if held_since is None:
                        held_since = now
                    if now - held_since >= s.hold_s:
                        return GuardOutcome(True, waited, f"ready: {self._summary(r)}", r, notes)
                if waited >= s.timeout_s:
                    why = "; ".join(cool + clock) or f"readings did not hold for {s.hold_s:g} s"
                    reason = (
                        f"device not ready after {s.timeout_s:g} s ({why}); last readings: {self._summary(r)}"
                    )
                    return GuardOutcome(False, waited, reason, r, notes)
                if (
                    self.progress is not None
                    and (cool or clock)
                    and waited >= PROGRESS_INTERVAL_S  # quiet when ready within a second
                    and (last_progress is None or now - last_progress >= PROGRESS_INTERVAL_S)
                ):
                    last_progress = now
                    line = (
                        f"waiting for {self._target()}: {self._summary(r)}, "
                        f"{waited:.0f} s of {s.timeout_s:g} s"
                    )
                    if cool:
                        line += " (" + "; ".join(cool) + ")"
                    self.progress(line)
                self.sleep(max(0.0, min(s.poll_s, s.timeout_s - waited)))
                r = self._read()
        finally:
            if load is not None:
                load.stop()
