"""Run-wide state: the resolved device, its readers and instruments, the baseline store, and every result so far.

Built once in ``pytest_configure``; fixtures and report hooks read it. Devices are resolved here so a wrong
``--edgeperf-device`` stops the session before anything is measured.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .config import Settings
from .result import Result


@dataclass
class Breach:
    """A reason for the current test to fail after it ran: a limit, a regression or a comparison."""

    title: str
    table: str = ""


class NullPowerMeter:
    """What ``power_meter`` gives when no meter is configured or found: power is unavailable, never invented."""

    name = "none"
    available = False

    def describe(self) -> str:
        return "no power meter (power is not measured)"

    def read_power_w(self) -> float:
        raise RuntimeError("no power meter configured (--edgeperf-power-meter)")


class EdgeperfSession:
    """Everything the fixtures and reports share during one pytest run."""

    def __init__(self, settings: Settings) -> None:
        from .device.profiles import DeviceMismatchError, UnknownDeviceError, resolve_device
        from .device.readers import DeviceReaders
        from .device.runner import CommandRunner

        self.settings = settings
        self.runner = CommandRunner(timeout_s=2.0)
        self.readers = DeviceReaders(root=settings.root, vcgencmd=settings.vcgencmd, runner=self.runner)
        try:
            self.profile = resolve_device(settings.device, self.readers.model(),
                                          allow_mismatch=settings.allow_device_mismatch)
        except (UnknownDeviceError, DeviceMismatchError) as exc:  # one line naming --edgeperf-device
            raise pytest.UsageError(str(exc)) from None
        self.device_notes: list[str] = []
        detected = self.readers.model()
        from .device.profiles import detect_profile

        if (settings.allow_device_mismatch and settings.device not in ("", "auto")
                and detect_profile(detected).name != self.profile.name):
            self.device_notes.append(
                f"device profile {self.profile.name} forced by --edgeperf-allow-device-mismatch "
                f"(this machine reports {detected or 'no device-tree model'}); its baselines are stored as "
                f"{self.profile.name}'s")
        self.floor_ghz = settings.min_freq_ghz if settings.min_freq_ghz is not None else self.profile.floor_freq_ghz
        self.unavailable: list[str] = self.readers.unavailable()
        self.results: list[Result] = []
        self.breaches: dict[str, list[Breach]] = {}
        self.baseline_changes: list[Any] = []
        self.worker_change_lines: list[str] = []  # baseline changes described by xdist workers
        self.baseline_errors: list[str] = []
        self.baseline_skipped: list[str] = []
        self.baseline_warnings: dict[str, str] = {}  # test id -> why its new baseline is not judged on timing
        self.recorded_nodeids: set[str] = set()  # tests that recorded a baseline: the ones a next update pass repeats
        self.update_pass = 1
        self.power_meter: Any = self._open_power_meter()
        self.lock_path = Path(tempfile.gettempdir()) / f"pytest-edgeperf-{self.profile.name}.lock"
        from .device.environment import host_environment

        self.environment = host_environment(settings.rootdir, settings.root)
        self.device_start = self.readers.snapshot()
        self._store: Any = None
        self._guard: Any = None

    # ---- instruments ---------------------------------------------------------------------------------------
    def _open_power_meter(self) -> Any:
        from .power import PowerSpecError, parse_meter_spec

        spec = self.settings.power_meter
        explicit = spec not in ("", "auto")
        if not explicit:
            spec = self.profile.default_power_meter or "none"
        try:
            meter = parse_meter_spec(spec, root=self.settings.root, runner=self.runner,
                                     vcgencmd=self.settings.vcgencmd)
        except PowerSpecError as exc:
            if explicit:
                raise pytest.UsageError(f"--edgeperf-power-meter: {exc}") from None
            self.unavailable.append(f"power: the {self.profile.name} default meter {spec!r} was not found ({exc})")
            return None
        if meter is None:
            self.unavailable.append("power: no power meter configured (--edgeperf-power-meter)")
        return meter

    def guard_for(self, floor_ghz: float | None, progress: Any = None) -> Any:
        """The thermal guard with this test's floor (the marker may override the device's); None when disabled."""
        if not self.settings.guard_enabled:
            return None
        from .guard import GuardSettings, ThermalGuard

        gs = GuardSettings.from_profile(self.profile, floor_ghz=floor_ghz, max_temp_c=self.settings.max_temp_c,
                                        hold_s=self.settings.guard_hold_s, timeout_s=self.settings.guard_timeout_s)
        return ThermalGuard(self.readers, gs, progress=progress)

    @property
    def store(self) -> Any:
        if self._store is None:
            from .baseline import BaselineStore

            self._store = BaselineStore(self.settings.baselines_dir, self.profile.name,
                                        updating=self.settings.update_baselines)
        return self._store

    def record_baselines(self, results: list[Result]) -> None:
        """Store valid, complete, non-quick results as the new baselines; remember what changed for the summary.

        A result from a busy machine is stored with a warning (in the file and in the summary): timing will not be
        judged against it, accuracy and memory will. One the baseline reader would refuse is not stored
        (BaselineError: the test fails); a quick or inconclusive one is skipped with a note.
        """
        from .baseline import BaselineEntry, BaselineError, busy_warning, recordable_reason

        entries = {}
        for result in results:
            why_not = recordable_reason(result)
            if why_not is None:
                entry = BaselineEntry.from_result(result)
                if busy := busy_warning(result, self.settings.max_cpu_wait_pct):
                    entry.warnings.append(busy)
                    self.baseline_warnings[result.test_id] = busy
                else:
                    self.baseline_warnings.pop(result.test_id, None)  # a later pass on an idle machine
                entries[result.test_id] = entry
            else:
                self.baseline_skipped.append(f"{result.test_id}: {why_not}")
        if not entries:
            return
        try:
            self._add_changes(self.store.update(entries))
        except BaselineError as exc:
            self.baseline_errors.append(str(exc))
            raise

    def _add_changes(self, changes: list[Any]) -> None:
        """One line per test however many update passes recorded it: from before the first to after the last."""
        from dataclasses import replace

        index = {(c.file, c.test): i for i, c in enumerate(self.baseline_changes)}
        for change in changes:
            i = index.get((change.file, change.test))
            if i is None:
                index[(change.file, change.test)] = len(self.baseline_changes)
                self.baseline_changes.append(change)
                continue
            first = self.baseline_changes[i]
            kind = "added" if first.kind == "added" else (
                "unchanged" if first.kind == change.kind == "unchanged" else "updated")
            self.baseline_changes[i] = replace(change, kind=kind, old_metrics=first.old_metrics)

    def handoff(self) -> dict[str, Any]:
        """What an xdist worker passes to the controller (plain JSON): its results and baseline changes."""
        from .baseline import describe_changes

        return {"results": [r.to_json() for r in self.results],
                "baseline_changes": describe_changes(self.baseline_changes) if self.baseline_changes else "",
                "baseline_skipped": self.baseline_skipped, "baseline_errors": self.baseline_errors,
                "baseline_warnings": self.baseline_warnings}

    def take_handoff(self, data: dict[str, Any]) -> None:
        self.results.extend(Result.from_json(r) for r in data.get("results", []))
        if data.get("baseline_changes"):
            self.worker_change_lines.append(data["baseline_changes"])
        self.baseline_skipped.extend(data.get("baseline_skipped", []))
        self.baseline_errors.extend(data.get("baseline_errors", []))
        self.baseline_warnings.update(data.get("baseline_warnings", {}))

    def add_breach(self, nodeid: str, breach: Breach) -> None:
        self.breaches.setdefault(nodeid, []).append(breach)

    def close(self) -> None:
        if self.power_meter is not None:
            with contextlib.suppress(Exception):
                self.power_meter.close()


@dataclass
class DeviceInfo:
    """What the ``pi_device`` fixture gives a test: the profile, live readings, and what could not be read."""

    profile: Any
    readers: Any
    floor_ghz: float | None
    unavailable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.profile.name

    def snapshot(self) -> dict[str, Any]:
        return self.readers.snapshot()

    def clock_ghz(self) -> float | None:
        return self.readers.clock_ghz()

    def temperature_c(self) -> float | None:
        return self.readers.temperature_c()

    def throttled(self) -> Any:
        return self.readers.throttled()
