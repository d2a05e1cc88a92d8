"""Owns the sensor readers (model, clocks, temperature, throttle bits, governor, memory) and throttle bits.

Everything is read below a configurable filesystem root and through a ``CommandRunner``, so tests can point
the readers at a fake device tree and a fake ``vcgencmd``. A reader never raises: a missing or unreadable
source gives None, and ``unavailable()`` says which readings are missing and why. Readers are called at
10-100 Hz from the sampler thread, so each one is a small direct file read or one ``vcgencmd`` call, and a
command that was found missing (or hung once) is not asked again.
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_edgeperf.device.profiles import read_model_string
from pytest_edgeperf.device.runner import ERROR_FAILED, ERROR_MISSING, ERROR_TIMEOUT, CommandRunner

# --- throttle bits (vcgencmd get_throttled) -------------------------------------------------------------
THROTTLE_NOW_BITS: dict[int, str] = {
    0x1: "under-voltage",
    0x2: "arm frequency capped",
    0x4: "throttled",
    0x8: "soft temperature limit",
}
THROTTLE_STICKY_SHIFT = 16  # 0x10000.. are the same four as "has occurred since boot"
THROTTLE_NOW_MASK = 0xF
THROTTLE_STICKY_MASK = THROTTLE_NOW_MASK << THROTTLE_STICKY_SHIFT
_SUPPLY_ADVICE = "(use a supply that holds 5.1 V under load, and a short, thick cable)"
UNDER_VOLTAGE_MESSAGE = f"under-voltage occurred during the run: the power supply is inadequate {_SUPPLY_ADVICE}"
UNDER_VOLTAGE_SINCE_BOOT_MESSAGE = (
    f"under-voltage has occurred since boot: the power supply is inadequate {_SUPPLY_ADVICE}"
)


@dataclass(frozen=True)
class ThrottleState:
    """The decoded ``get_throttled`` word: what limits the clock now, and what has happened since boot."""

    raw: int

    @classmethod
    def parse(cls, text: str | None) -> ThrottleState | None:
        """From ``throttled=0x50005`` (vcgencmd) or ``50005`` (sysfs); None when it cannot be parsed."""
        if not text:
            return None
        value = text.strip().rsplit("=", 1)[-1].strip()
        try:
            return cls(int(value, 16))
        except ValueError:
            return None

    def now_flags(self) -> list[str]:
        return [name for bit, name in THROTTLE_NOW_BITS.items() if self.raw & bit]

    def since_boot_flags(self) -> list[str]:
        return [name for bit, name in THROTTLE_NOW_BITS.items() if self.raw & (bit << THROTTLE_STICKY_SHIFT)]

    def unknown_bits(self) -> int:
        return self.raw & ~(THROTTLE_NOW_MASK | THROTTLE_STICKY_MASK)

    def active_now(self) -> bool:
        """True when anything (under-voltage, capping, throttling, soft limit) limits the clock right now."""
        return bool(self.raw & THROTTLE_NOW_MASK)

    def occurred_since_boot(self) -> bool:
        return bool(self.raw & THROTTLE_STICKY_MASK)

    def describe(self) -> str:
        """One line, e.g. ``0x50005: now under-voltage, throttled; since boot under-voltage, throttled``."""
        parts = []
        now, since = self.now_flags(), self.since_boot_flags()
        if now:
            parts.append("now " + ", ".join(now))
        if since:
            parts.append("since boot " + ", ".join(since))
        if self.unknown_bits():
            parts.append(f"unknown bits {self.unknown_bits():#x}")
        if not parts:
            return f"{self.raw:#x}: no throttling now or since boot"
        return f"{self.raw:#x}: " + "; ".join(parts)

    def newly_occurred(self, since: ThrottleState | None) -> list[str]:
        """Sticky conditions set now but not in ``since`` (the state before the run), one message each."""
        before = since.raw if since is not None else 0
        new = (self.raw & THROTTLE_STICKY_MASK) & ~(before & THROTTLE_STICKY_MASK)
        out = []
        for bit, name in THROTTLE_NOW_BITS.items():
            if new & (bit << THROTTLE_STICKY_SHIFT):
                out.append(UNDER_VOLTAGE_MESSAGE if bit == 0x1 else f"{name} occurred during the run")
        return out

    def run_notes(self, before: ThrottleState | None) -> list[str]:
        """Notes for a run that ended in this state: sticky bits new since ``before`` (unknown: none), and
        under-voltage whenever it is set now or since boot, even if it dipped before the run: a supply that
        cannot hold 5 V will dip again, and every figure measured on it is suspect."""
        notes = self.newly_occurred(before) if before is not None else []
        if self.raw & (0x1 | 0x1 << THROTTLE_STICKY_SHIFT) and UNDER_VOLTAGE_MESSAGE not in notes:
            notes.append(UNDER_VOLTAGE_SINCE_BOOT_MESSAGE)
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "hex": f"{self.raw:#x}",
            "now": self.now_flags(),
            "since_boot": self.since_boot_flags(),
            "description": self.describe(),
        }


# --- readers --------------------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_CPU_DIR = re.compile(r"cpu(\d+)$")
# Newer Raspberry Pi kernels expose the firmware's throttle word here: reading it costs no process spawn.
_SYSFS_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
_FAILURES_BEFORE_GIVING_UP = 3  # a vcgencmd sub-command failing this many times in a row is not asked again


class DeviceReaders:
    """Cheap, never-raising readers of one device, rooted at ``root``, asking ``vcgencmd`` via ``runner``."""

    def __init__(
        self, root: Path | str = Path("/"), vcgencmd: str = "vcgencmd", runner: CommandRunner | None = None
    ) -> None:
        self.root = Path(root)
        self.vcgencmd = str(vcgencmd)
        self.runner = runner if runner is not None else CommandRunner()
        self._lock = threading.Lock()
        self._model: str | None = None
        self._model_read = False
        self._cpufreq_paths: list[tuple[int, Path]] | None = None
        self._vc_disabled: str | None = None  # why vcgencmd is not asked any more
        self._vc_failures: dict[str, int] = {}  # sub-command -> consecutive failures
        self._vc_last_error: dict[str, str] = {}

    # --- plumbing -------------------------------------------------------------------------------------------
    def _path(self, rel: str) -> Path:
        return self.root / rel

    @staticmethod
    def _read_text(path: Path) -> str | None:
        try:
            with open(path, "rb") as f:
                return f.read(4096).decode(errors="replace").strip()
        except OSError:
            return None

    def _vc(self, *args: str) -> str | None:
        """Output of ``vcgencmd args``; None (and remembered) when the command is missing, hangs or fails."""
        key = " ".join(args)
        if self._vc_disabled is not None or self._vc_failures.get(key, 0) >= _FAILURES_BEFORE_GIVING_UP:
            return None
        outcome = self.runner.run_detailed([self.vcgencmd, *args])
        if outcome.stdout is not None:
            self._vc_failures[key] = 0
            return outcome.stdout
        with self._lock:
            if outcome.error == ERROR_MISSING:
                why = outcome.detail.removeprefix(f"{self.vcgencmd}: ")
                self._vc_disabled = f"no {self.vcgencmd} ({why})"
            elif outcome.error == ERROR_TIMEOUT:
                # One hang is enough: at 10 Hz a hanging command would stall every reading by the timeout.
                self._vc_disabled = f"{self.vcgencmd} hung ({outcome.detail}); not asked again"
            elif outcome.error == ERROR_FAILED:
                self._vc_failures[key] = self._vc_failures.get(key, 0) + 1
                self._vc_last_error[key] = outcome.detail
        return None

    def vcgencmd_problem(self) -> str | None:
        """Why vcgencmd is not used (missing, hung), or None while it answers."""
        return self._vc_disabled

    def vcgencmd_output(self, *args: str) -> str | None:
        """Raw output of any vcgencmd sub-command (e.g. ``pmic_read_adc`` for the power helper), or None."""
        return self._vc(*args)

    # --- readings -------------------------------------------------------------------------------------------
    def model(self) -> str | None:
        """The device-tree model string, read once (it never changes while we run)."""
        if not self._model_read:
            self._model = read_model_string(self.root)
            self._model_read = True
        return self._model

    def _cpufreq_files(self) -> list[tuple[int, Path]]:
        if self._cpufreq_paths is None:
            found: list[tuple[int, Path]] = []
            cpu_root = self._path("sys/devices/system/cpu")
            try:
                entries = list(cpu_root.iterdir())
            except OSError:
                entries = []
            for entry in entries:
                m = _CPU_DIR.match(entry.name)
                f = entry / "cpufreq" / "scaling_cur_freq"
                if m and f.exists():
                    found.append((int(m.group(1)), f))
            self._cpufreq_paths = sorted(found)
        return self._cpufreq_paths

    def cpu_freqs_ghz(self) -> dict[int, float]:
        """Per-core requested clock from cpufreq (``scaling_cur_freq``, kHz); cores that fail are left out."""
        out: dict[int, float] = {}
        for cpu, path in self._cpufreq_files():
            text = self._read_text(path)
            if text:
                try:
                    out[cpu] = int(text) / 1e6
                except ValueError:
                    continue
        return out

    def arm_clock_ghz(self) -> float | None:
        """The actual ARM clock from ``vcgencmd measure_clock arm`` (``frequency(48)=1200000000``)."""
        out = self._vc("measure_clock", "arm")
        if not out or "=" not in out:
            return None
        try:
            hz = float(out.strip().rsplit("=", 1)[1])
        except ValueError:
            return None
        return hz / 1e9 if hz > 0 else None

    def clock_ghz(self) -> float | None:
        """The clock to judge the floor by.

        The actual ARM clock when vcgencmd gives it (cpufreq shows the kernel's request, which stays high
        while the firmware throttles); else the *highest* cpufreq core: all cores of a Pi / Jetson cluster
        share one clock, and on hosts with per-core clocks the busy core running our work is the fastest one,
        while idle cores parked at the minimum say nothing about the measurement.
        """
        arm = self.arm_clock_ghz()
        if arm is not None:
            return arm
        freqs = self.cpu_freqs_ghz()
        return max(freqs.values()) if freqs else None

    def temperature_c(self) -> float | None:
        """SoC temperature: ``vcgencmd measure_temp`` (``temp=45.0'C``), else thermal_zone0 (milli-C)."""
        out = self._vc("measure_temp")
        if out:
            m = _NUMBER.search(out.split("=", 1)[-1])
            if m:
                return float(m.group(0))
        text = self._read_text(self._path("sys/class/thermal/thermal_zone0/temp"))
        if text:
            try:
                return int(text) / 1000.0
            except ValueError:
                return None
        return None

    def throttled(self) -> ThrottleState | None:
        """Throttle word from the firmware's sysfs file (newer kernels), else ``vcgencmd get_throttled``."""
        state = self.throttled_sysfs()
        if state is not None:
            return state
        return self.throttled_vcgencmd()

    def throttled_sysfs(self) -> ThrottleState | None:
        """The throttle word from sysfs only: a file read, cheap enough for every sampler tick."""
        return ThrottleState.parse(self._read_text(self._path(_SYSFS_THROTTLED)))

    def throttled_vcgencmd(self) -> ThrottleState | None:
        """The throttle word from ``vcgencmd get_throttled``: a process start each time."""
        return ThrottleState.parse(self._vc("get_throttled"))

    def governor(self) -> str | None:
        """The cpufreq governor (``ondemand`` keeps an idle Pi at 600 MHz); several are joined with ','."""
        seen: list[str] = []
        for _cpu, path in self._cpufreq_files():
            gov = self._read_text(path.with_name("scaling_governor"))
            if gov and gov not in seen:
                seen.append(gov)
        return ",".join(seen) if seen else None

    def memory_mb(self) -> tuple[float, float] | None:
        """(total, available) MB from ``<root>/proc/meminfo``; None when unreadable."""
        text = self._read_text_full(self._path("proc/meminfo"))
        if not text:
            return None
        values: dict[str, float] = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                parts = rest.split()
                if parts:
                    with contextlib.suppress(ValueError):
                        values[key] = int(parts[0]) / 1024.0
        if "MemTotal" not in values:
            return None
        return values["MemTotal"], values.get("MemAvailable", values["MemTotal"])

    @staticmethod
    def _read_text_full(path: Path) -> str | None:
        try:
            with open(path, "rb") as f:
                return f.read(65536).decode(errors="replace")
        except OSError:
            return None

    # --- reports --------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """All readings now, JSON-able (cores keyed by str), plus what is unavailable and why."""
        freqs = self.cpu_freqs_ghz()
        arm = self.arm_clock_ghz()
        clock = arm if arm is not None else (max(freqs.values()) if freqs else None)
        temp = self.temperature_c()
        thr = self.throttled()
        mem = self.memory_mb()
        snap: dict[str, Any] = {
            "model": self.model(),
            "governor": self.governor(),
            "clock_ghz": clock,
            "arm_clock_ghz": arm,
            "cpu_freqs_ghz": {str(k): v for k, v in freqs.items()},
            "temp_c": temp,
            "throttled_raw": None if thr is None else thr.raw,
            "throttled": None if thr is None else thr.to_json(),
            "memory_total_mb": None if mem is None else round(mem[0], 1),
            "memory_available_mb": None if mem is None else round(mem[1], 1),
        }
        snap["unavailable"] = self._unavailable_from(snap)
        return snap

    def unavailable(self) -> list[str]:
        """Human-readable list of readings that cannot be taken here, each with the reason."""
        return self.snapshot()["unavailable"]

    def _vc_reason(self, sub: str) -> str:
        if self._vc_disabled:
            return self._vc_disabled
        if sub in self._vc_last_error:
            return self._vc_last_error[sub]
        return f"{self.vcgencmd} {sub} gave no usable answer"

    def _unavailable_from(self, snap: dict[str, Any]) -> list[str]:
        out = []
        cpu_dir = self._path("sys/devices/system/cpu")
        if snap["model"] is None:
            out.append(f"model: no {self._path('proc/device-tree/model')} (not a device-tree board)")
        if snap["clock_ghz"] is None:
            out.append(f"clock: no cpufreq under {cpu_dir} and {self._vc_reason('measure_clock arm')}")
        elif snap["arm_clock_ghz"] is None and self.model() and self.model().startswith("Raspberry Pi"):
            out.append(
                f"actual ARM clock: {self._vc_reason('measure_clock arm')}; using cpufreq (the kernel's "
                "request, which reads high while the firmware throttles)"
            )
        if snap["temp_c"] is None:
            out.append(
                f"temperature: no {self._path('sys/class/thermal/thermal_zone0/temp')} and "
                f"{self._vc_reason('measure_temp')}"
            )
        if snap["throttled_raw"] is None:
            out.append(f"throttle state: {self._vc_reason('get_throttled')}")
        if snap["governor"] is None:
            out.append(f"governor: no cpufreq scaling_governor under {cpu_dir}")
        if snap["memory_total_mb"] is None:
            out.append(f"memory: cannot read {self._path('proc/meminfo')}")
        return out
