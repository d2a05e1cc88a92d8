"""The power meter interface every backend implements, its two errors, and helpers backends share.

A backend (built in, or added through the ``pytest_edgeperf_add_power_meters`` hook) subclasses
:class:`PowerMeter`; a reading that fails raises :class:`MeterError`, a spec the user got wrong
:class:`PowerSpecError`. Which spec builds which meter is ``power/factory.py``'s business, not this module's.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from pytest_edgeperf.errors import EdgeperfError

#: the built-in spec forms, quoted in every spec error (the full grammar: ``power/factory.py``)
VALID_FORMS = (
    "none, hwmon, hwmon:NAME, hwmon:/path/hwmonN, pmic, pmic:a=A,b=B, rapl, rapl:/path/zone, "
    "scpi:RESOURCE[;backend=@py|@sim][;file=X.yaml][;query=MEAS:POW? (@1)][;timeout_ms=N], "
    "csv:PATH[;time=COL][;power=COL|;volts=COL;amps=COL]"
)


class Runner(Protocol):
    """The command runner duck type: stdout, or None when the command is missing, fails or times out."""

    def run(self, argv: Sequence[str]) -> str | None: ...


class PowerSpecError(EdgeperfError, ValueError):
    """A user-caused meter misconfiguration; one line naming the spec (the lead makes it a UsageError)."""


class MeterError(EdgeperfError, RuntimeError):
    """A meter read failed (device gone, permission, bad output); the sampler records it."""


class PowerMeter(ABC):
    """An instantaneous power reader. Subclasses set ``name`` and implement ``read_power_w``.

    ``reads_after_run`` is True for meters whose samples come from an external log read after the run
    (the sampler then loads the log instead of polling).
    """

    name: str = "meter"
    reads_after_run: bool = False

    def describe(self) -> str:
        """One line for reports: what is measured and where from."""
        return self.name

    @abstractmethod
    def read_power_w(self) -> float:
        """Instantaneous power in watts; raises MeterError when the reading fails."""

    def close(self) -> None:  # noqa: B027 - most meters hold nothing to release; those that do override it
        """Release instrument handles; harmless to call twice."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def check_power_w(value: float, where: str) -> float:
    """Reject NaN/inf readings so a broken sensor never turns into a number in a report."""
    if not math.isfinite(value):
        raise MeterError(f"{where}: non-finite reading {value!r}")
    return float(value)


def read_number(path: Path, what: str) -> float:
    """Read one number from a sysfs-style file; every failure becomes a MeterError naming the file."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise MeterError(f"{what}: {path} is missing (device gone?)") from None
    except PermissionError:
        raise MeterError(f"{what}: permission denied reading {path}") from None
    except OSError as exc:
        raise MeterError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        raise MeterError(f"{what}: {path} holds {text[:40]!r}, not a number") from None


def spec_error(spec: str, why: str) -> PowerSpecError:
    return PowerSpecError(f"power meter spec {spec!r}: {why}; valid forms: {VALID_FORMS}")


def missing_error(spec: str, why: str) -> PowerSpecError:
    """A valid spec whose device is not there: say what was looked for, without the grammar dump."""
    return PowerSpecError(f"power meter spec {spec!r}: {why}")


MeterT = TypeVar("MeterT", bound=PowerMeter)


def probed(spec: str, meter: MeterT) -> MeterT:
    """``meter`` after one reading at configuration time, so a missing or forbidden device is a usage error naming
    the spec, not a silent gap in the results (the meter is closed first)."""
    try:
        meter.read_power_w()
    except MeterError as exc:
        meter.close()
        raise missing_error(spec, str(exc)) from None
    return meter


def parse_key_values(spec: str, parts: list[str], allowed: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` options after a spec's main argument; unknown or duplicate keys are spec errors."""
    out: dict[str, str] = {}
    for part in parts:
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in allowed:
            raise spec_error(spec, f"unknown option {part.strip()!r} (allowed: {', '.join(allowed)})")
        if key in out:
            raise spec_error(spec, f"option {key!r} given twice")
        out[key] = value.strip()
    return out
