"""Run-wide state: the resolved device, its readers and instruments, the baseline store, and every result so far.

Built once in ``pytest_configure``; fixtures and report hooks read it. Devices are resolved here so a wrong
``--edgeperf-device`` stops the session before anything is measured. The instruments every measurement runs with
are built here once from ``Settings`` (``instruments_from``), which holds their defaults.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .config.precedence import clock_floor_ghz
from .config.settings import Settings
from .errors import EdgeperfError
from .measure import Instruments
from .result import Result

if TYPE_CHECKING:
    from .baseline import BaselineStore, Change
    from .device.guard import ThermalGuard
    from .device.profiles import DeviceProfile
    from .device.readers import DeviceReaders, ThrottleState
    from .power.base import PowerMeter
    from .power.factory import MeterFactory

#: a live progress line (report/progress.py): called with a message
ProgressLine = Callable[[str], None]


class EdgeperfFailure(EdgeperfError):
    """Fails the test with a one-line reason (worker crash, missing model): no traceback from our code."""


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
    """Everything the fixtures and reports share during one pytest run.

    ``profiles``, ``meter_kinds`` and ``update_machine_info`` are what plugins added through the hooks
    (``hookspec.py``): every device profile (built-in ones included), the added power meter kinds, and a call
    that lets them add keys to the machine info.
    """

    def __init__(self, settings: Settings, *, profiles: Mapping[str, DeviceProfile] | None = None,
                 meter_kinds: Mapping[str, MeterFactory] | None = None,
                 update_machine_info: Callable[[dict[str, Any]], None] | None = None) -> None:
        from .device.profiles import DeviceMismatchError, UnknownDeviceError, resolve_device
        from .device.readers import DeviceReaders
        from .device.runner import CommandRunner

        self.settings = settings
        self.meter_kinds = dict(meter_kinds or {})
        self.runner = CommandRunner(timeout_s=2.0)
        self.readers = DeviceReaders(root=settings.root, vcgencmd=settings.vcgencmd, runner=self.runner)
        try:
            self.profile = resolve_device(settings.device, self.readers.model(),
                                          allow_mismatch=settings.allow_device_mismatch, profiles=profiles)
        except (UnknownDeviceError, DeviceMismatchError) as exc:  # one line naming --edgeperf-device
            raise pytest.UsageError(str(exc)) from None
        self.device_notes: list[str] = []
        detected = self.readers.model()
        from .device.profiles import detect_profile

        if (settings.allow_device_mismatch and settings.device not in ("", "auto")
                and detect_profile(detected, profiles).name != self.profile.name):
            self.device_notes.append(
                f"device profile {self.profile.name} forced by --edgeperf-allow-device-mismatch "
                f"(this machine reports {detected or 'no device-tree model'}); its baselines are stored as "
                f"{self.profile.name}'s")
        self.floor_ghz = clock_floor_ghz(None, settings, self.profile.floor_freq_ghz)
        self.unavailable: list[str] = self.readers.unavailable()
        self.results: list[Result] = []
        self.breaches: dict[str, list[Breach]] = {}
        self.baseline_changes: list[Change] = []
        self.worker_change_lines: list[str] = []  # baseline changes described by xdist workers
        self.baseline_errors: list[str] = []
        self.baseline_skipped: list[str] = []
        self.baseline_warnings: dict[str, str] = {}  # test id -> why its new baseline is not judged on timing
        self.recorded_nodeids: set[str] = set()  # tests that recorded a baseline: the ones a next update pass repeats
        self.update_pass = 1
        self.tests_ran = False  # the run loop started (not --collect-only / --fixtures): result files are written
        self.report_error = ""  # a result file that could not be written, said in the summary
        self.history_line = ""  # what --edgeperf-history did with this run (recorded, or why not), said in the summary
        self.silent_pass = False  # an update pass that a later pass repeats: its tests are not reported
        self._result_pass: dict[int, int] = {}  # id(result) -> the update pass that measured it
        self.power_meter = self._open_power_meter()
        from .device.environment import host_environment
        from .device.lock import device_lock_path

        self.lock_path = device_lock_path(self.profile.name)

        self.environment = host_environment(settings.rootdir, settings.root)
        if update_machine_info is not None:
            update_machine_info(self.environment)
            _check_machine_info(self.environment)
        self.device_start = self.readers.snapshot()
        self._store: BaselineStore | None = None

    # ---- instruments ---------------------------------------------------------------------------------------
    def _open_power_meter(self) -> PowerMeter | None:
        from .power import PowerSpecError, parse_meter_spec
        from .power.factory import BUILTIN_KINDS

        spec = self.settings.power_meter
        explicit = spec not in ("", "auto")
        if not explicit:
            spec = self.profile.default_power_meter or "none"
            kind = self.profile.default_meter_kind
            if kind not in BUILTIN_KINDS and kind not in self.meter_kinds:
                raise pytest.UsageError(
                    f"device profile {self.profile.name}: default power meter {spec!r} is of no known kind (built "
                    f"in: {', '.join(BUILTIN_KINDS)}; added: {', '.join(sorted(self.meter_kinds)) or 'none'})")
        try:
            meter = parse_meter_spec(spec, root=self.settings.root, runner=self.runner,
                                     vcgencmd=self.settings.vcgencmd, added=self.meter_kinds)
        except PowerSpecError as exc:
            if explicit:
                raise pytest.UsageError(f"--edgeperf-power-meter: {exc}") from None
            self.unavailable.append(f"power: the {self.profile.name} default meter {spec!r} was not found ({exc})")
            return None
        if meter is None:
            self.unavailable.append("power: no power meter configured (--edgeperf-power-meter)")
        return meter

    def guard_for(self, floor_ghz: float | None, progress: ProgressLine | None = None) -> ThermalGuard | None:
        """The thermal guard with this test's floor (the marker may override the device's); None when disabled."""
        if not self.settings.guard_enabled:
            return None
        from .device.guard import GuardSettings, ThermalGuard

        gs = GuardSettings.from_profile(self.profile, floor_ghz=floor_ghz, max_temp_c=self.settings.max_temp_c,
                                        hold_s=self.settings.guard_hold_s, timeout_s=self.settings.guard_timeout_s)
        return ThermalGuard(self.readers, gs, progress=progress)

    @cached_property
    def instruments(self) -> Instruments:
        """The readers, samplers, power meter and device lock every measurement of the run shares."""
        return instruments_from(self.settings, self.profile.name, readers=self.readers, floor_ghz=self.floor_ghz,
                                power_meter=self.power_meter, environment=self.environment,
                                lock_path=self.lock_path)

    def instruments_for(self, floor_ghz: float | None, progress: ProgressLine | None,
                        announce: ProgressLine) -> Instruments:
        """One test's instruments: its clock floor (the marker may override the device's) and the guard on it,
        its progress line, and ``announce`` to say in any log that the device lock is busy."""
        return replace(self.instruments, floor_ghz=floor_ghz, guard=self.guard_for(floor_ghz, progress),
                       environment=dict(self.environment), lock_announce=announce)

    @property
    def store(self) -> BaselineStore:
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

    def _add_changes(self, changes: list[Change]) -> None:
        """One line per test however many update passes recorded it: from before the first to after the last."""
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

        return {"results": [r.to_json(handoff=True) for r in self.results],
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

    def add_result(self, result: Result) -> None:
        """Keep a measurement for the reports; a later update pass replaces the test's earlier-pass results.

        Every pass records its own baseline history; the reports show each test once, as its last pass measured it.
        """
        if self.update_pass > 1:
            earlier = {id(r) for r in self.results if r.test_id == result.test_id
                       and self._result_pass.get(id(r), 1) < self.update_pass}
            self.results = [r for r in self.results if id(r) not in earlier]
        self._result_pass[id(result)] = self.update_pass
        self.results.append(result)

    def add_breach(self, nodeid: str, breach: Breach) -> None:
        self.breaches.setdefault(nodeid, []).append(breach)

    def close(self) -> None:
        if self.power_meter is not None:
            with contextlib.suppress(Exception):
                self.power_meter.close()


def instruments_from(settings: Settings, device_name: str, *, readers: DeviceReaders | None = None,
                     floor_ghz: float | None = None, power_meter: PowerMeter | None = None,
                     environment: dict[str, Any] | None = None, lock_path: Path | None = None) -> Instruments:
    """Instruments from ``settings`` (their rates, attempts and timeouts) around the device parts given; a part
    not given is not measured (no readers: no timeline; no lock path: no device lock). No guard: a test's own
    (``EdgeperfSession.instruments_for``)."""
    return Instruments(
        device_name=device_name, readers=readers, floor_ghz=floor_ghz, guard=None, sample_hz=settings.sample_hz,
        sensor_budget=settings.sensor_budget, power_meter=power_meter, power_hz=settings.power_hz,
        idle_s=settings.idle_s, max_attempts=settings.max_attempts, min_valid_fraction=settings.min_valid_fraction,
        worker_timeout_s=settings.worker_timeout_s, environment=dict(environment or {}), lock_path=lock_path,
        lock_timeout_s=settings.lock_timeout_s, lock_announce=None)


def _check_machine_info(info: dict[str, Any]) -> None:
    """What ``pytest_edgeperf_update_machine_info`` left must be JSON: every result file and baseline holds it."""
    for key, value in info.items():
        if not isinstance(key, str):
            raise pytest.UsageError(f"pytest_edgeperf_update_machine_info: key {key!r} is not a string")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(
                f"pytest_edgeperf_update_machine_info: machine_info[{key!r}] is not JSON ({exc})") from None


@dataclass
class DeviceInfo:
    """What the ``pi_device`` fixture gives a test: the profile, live readings, and what could not be read."""

    profile: DeviceProfile
    readers: DeviceReaders
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

    def throttled(self) -> ThrottleState | None:
        return self.readers.throttled()
