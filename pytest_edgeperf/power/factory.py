"""The ``--edgeperf-power-meter=SPEC`` grammar: which spec builds which meter, built in or added by a plugin.

Spec grammar (case-insensitive kind; whitespace around the spec is ignored)::

    none                      no meter: power is reported as unavailable, never invented
    hwmon                     the first INA2xx hwmon (name ina2xx/ina219/ina220/ina226/ina230/ina231/ina260)
                              under <root>/sys/class/hwmon, in natural order (hwmon2 before hwmon10)
    hwmon:NAME                the first hwmon whose ``name`` file or directory name is NAME
                              (e.g. ``hwmon:ina226`` or ``hwmon:hwmon3``)
    hwmon:/abs/path/hwmonN    that hwmon directory, used as given (not under <root>)
    pmic                      Raspberry Pi 5 PMIC: ``vcgencmd pmic_read_adc``, sum of V x I by rail
    pmic:a=A,b=B              ... calibrated: P = A * P_pmic + B (e.g. ``pmic:a=1.145,b=0.59`` adds the
                              5 V loads the PMIC does not see); either key may be left out (a=1, b=0)
    rapl                      <root>/sys/class/powercap/intel-rapl:0 (package energy_uj counter, x86)
    rapl:/abs/path/to/zone    that powercap zone, used as given
    scpi:RESOURCE[;key=value]...
                              a bench analyzer over VISA (pyvisa); options:
                                backend=@py|@sim|...    pyvisa backend (default: pyvisa's own choice)
                                file=PATH.yaml          pyvisa-sim instrument file (implies @sim)
                                query=MEAS:POW? (@1)    the query that answers watts (the default);
                                                        a multi-channel reply ``1.2,3.4`` is summed
                                timeout_ms=2000         VISA timeout
                              e.g. ``scpi:TCPIP0::192.168.0.50::inst0::INSTR;query=MEAS:POW? (@2)``
    csv:PATH[;key=value]...   an external logger's file (a USB meter's log), read after the run and
                              aligned to the timed window by wall-clock time; options:
                                time=COL                unix-time column (s; ms if > 1e11; ISO 8601 ok)
                                power=COL               watts column
                                volts=COL;amps=COL      or power = volts x amps
                              COL is a header name or a 0-based index. Without options the header is
                              searched for t_unix/timestamp/time and power_w/power/watts (or
                              voltage/current); a file without a header is read as ``time,power``.
                              The file must exist when the session starts.

Relative paths (``file=``, ``csv:``) are relative to the current directory. A bad spec, or a valid spec whose
device is missing, raises a one-line :class:`PowerSpecError` (a ``ValueError``) naming the spec.

More kinds come from plugins through the ``pytest_edgeperf_add_power_meters`` hook (``hookspec.py``): ``{kind:
factory}``, merged by :func:`with_added_kinds` and passed to :func:`parse_meter_spec` as ``added``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_edgeperf.errors import EdgeperfError
from pytest_edgeperf.power.base import (
    MeterError,
    PowerMeter,
    PowerSpecError,
    Runner,
    missing_error,
    parse_key_values,
    probed,
    spec_error,
)

HOOK = "pytest_edgeperf_add_power_meters"
_KIND = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class MeterSpec:
    """What a plugin's meter factory is given: the spec as the user wrote it (name it in errors), the text after
    ``kind:``, the root of the device's file tree (a fake tree in tests) and the command runner to use."""

    spec: str
    arg: str
    root: Path
    runner: Runner


#: a plugin's meter factory: a meter for the spec (None: no meter), or ``PowerSpecError`` for a spec it refuses
MeterFactory = Callable[[MeterSpec], PowerMeter | None]


class InvalidMeterKindError(EdgeperfError, ValueError):
    """What ``pytest_edgeperf_add_power_meters`` returned is unusable; the message names the hook and the kind."""


def with_added_kinds(answers: Iterable[Mapping[str, MeterFactory] | None]) -> dict[str, MeterFactory]:
    """The kinds the hook's implementations add, merged; a built-in kind, a clash or a non-callable is an error."""
    out: dict[str, MeterFactory] = {}
    for answer in answers:
        if answer is None:
            continue
        if not isinstance(answer, Mapping):
            raise InvalidMeterKindError(f"{HOOK} must return a dict {{kind: factory}}, not {answer!r}")
        for kind, factory in answer.items():
            if not isinstance(kind, str) or not _KIND.match(kind):
                raise InvalidMeterKindError(f"{HOOK}: meter kind {kind!r} is not a lowercase name "
                                            "(a letter, then letters, digits, '_', '-')")
            if kind in BUILTIN_KINDS:
                raise InvalidMeterKindError(f"{HOOK}: {kind!r} is a built-in meter kind")
            if not callable(factory):
                raise InvalidMeterKindError(f"{HOOK}: the factory for {kind!r} is not callable: {factory!r}")
            if kind in out and out[kind] is not factory:
                raise InvalidMeterKindError(f"{HOOK}: two factories for meter kind {kind!r}")
            out[kind] = factory
    return out


def parse_meter_spec(
    spec: str,
    *,
    root: Path | str = "/",
    runner: Runner | None = None,
    vcgencmd: str = "vcgencmd",
    added: Mapping[str, MeterFactory] | None = None,
) -> PowerMeter | None:
    """Build the meter a spec names (None for ``none``), checking that its device answers once.

    ``root`` roots the sysfs discovery (``<root>/sys/class/...``) so tests can pass a fake tree; ``runner``
    runs ``vcgencmd`` (defaults to ``pytest_edgeperf.device.runner.CommandRunner``); ``added`` holds the kinds
    plugins added (:func:`with_added_kinds`).
    """
    raw = spec
    spec = (spec or "").strip()
    if not spec:
        raise spec_error(raw, "empty spec")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    request = _Request(raw, arg.strip(), Path(root), runner if runner is not None else _default_runner(), vcgencmd)
    if added and kind in added:
        return _build_added(raw, added[kind], MeterSpec(request.spec, request.arg, request.root, request.runner))
    build = _BUILTIN.get(kind)
    if build is not None:
        return build(request)
    if added:
        raise spec_error(raw, f"unknown meter kind {kind!r} (added by plugins: {', '.join(sorted(added))})")
    raise spec_error(raw, f"unknown meter kind {kind!r}")


# --- the built-in kinds: one builder each, given the request; the table at the end names them ----------------
@dataclass(frozen=True)
class _Request(MeterSpec):
    """A plugin's MeterSpec plus what only the built-in ``pmic`` needs."""

    vcgencmd: str = "vcgencmd"


def _no_meter(request: _Request) -> None:
    if request.arg:
        raise spec_error(request.spec, "'none' takes no argument")
    return None


def _hwmon(request: _Request) -> PowerMeter:
    from pytest_edgeperf.power.hwmon import find_hwmon_meter

    return find_hwmon_meter(request.spec, request.arg, request.root)


def _pmic(request: _Request) -> PowerMeter:
    from pytest_edgeperf.power.pmic import PmicMeter

    a_gain, b_offset_w = _parse_calibration(request.spec, request.arg)
    return probed(request.spec, PmicMeter(request.runner, vcgencmd=request.vcgencmd, a_gain=a_gain,
                                          b_offset_w=b_offset_w))


def _rapl(request: _Request) -> PowerMeter:
    from pytest_edgeperf.power.rapl import RaplMeter

    raw, arg = request.spec, request.arg
    zone = Path(arg) if arg else request.root / "sys/class/powercap/intel-rapl:0"
    if arg and not zone.is_absolute():
        raise spec_error(raw, "rapl zone must be an absolute path")
    if not (zone / "energy_uj").exists():
        raise missing_error(
            raw, f"no powercap zone with energy_uj at {zone} (x86 hosts with the intel_rapl driver only)"
        )
    return probed(raw, RaplMeter(zone))


def _scpi(request: _Request) -> PowerMeter:
    from pytest_edgeperf.power.scpi import open_scpi_meter

    raw = request.spec
    resource, opts = _main_and_options(request, "scpi needs a VISA resource name",
                                       ("backend", "file", "query", "timeout_ms"))
    timeout_ms = opts.pop("timeout_ms", "2000")
    if not timeout_ms.isdigit() or int(timeout_ms) <= 0:
        raise spec_error(raw, f"scpi timeout_ms={timeout_ms!r} is not a positive integer")
    if "file" in opts and opts.get("backend", "@sim") != "@sim":
        raise spec_error(raw, "scpi file= is for the @sim backend only")
    return probed(raw, open_scpi_meter(raw, resource, opts, timeout_ms=int(timeout_ms)))


def _csv(request: _Request) -> PowerMeter:
    from pytest_edgeperf.power.csvlog import CsvLogMeter

    raw = request.spec
    path_text, opts = _main_and_options(request, "csv needs the log file's path", ("time", "power", "volts", "amps"))
    if ("volts" in opts) != ("amps" in opts):
        raise spec_error(raw, "csv volts= and amps= go together")
    if "power" in opts and "volts" in opts:
        raise spec_error(raw, "csv takes power= or volts=/amps=, not both")
    path = Path(os.path.expanduser(path_text))
    if not path.is_file():
        raise missing_error(raw, f"csv power log {path} does not exist (start the logger first)")
    meter = CsvLogMeter(path, time_col=opts.get("time"), power_col=opts.get("power"),
                        volts_col=opts.get("volts"), amps_col=opts.get("amps"))
    try:
        meter.check_columns()
    except MeterError as exc:
        raise missing_error(raw, str(exc)) from None
    return meter


#: kind -> builder, in the order usage errors list the kinds
_BUILTIN: dict[str, Callable[[_Request], PowerMeter | None]] = {
    "none": _no_meter, "hwmon": _hwmon, "pmic": _pmic, "rapl": _rapl, "scpi": _scpi, "csv": _csv}
#: the kinds this module builds itself; a plugin cannot replace one
BUILTIN_KINDS = tuple(_BUILTIN)


def _main_and_options(request: _Request, missing: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``MAIN[;key=value]...`` -> (MAIN, options); an empty MAIN is the spec error ``missing``."""
    parts = request.arg.split(";")
    main = parts[0].strip()
    if not main:
        raise spec_error(request.spec, missing)
    return main, parse_key_values(request.spec, parts[1:], allowed)


def _build_added(spec: str, factory: MeterFactory, request: MeterSpec) -> PowerMeter | None:
    """A plugin's meter, checked like a built-in one: a PowerMeter that answers once (unless it reads a log later)."""
    try:
        meter = factory(request)
    except MeterError as exc:
        raise missing_error(spec, str(exc)) from None
    if meter is None:
        return None
    if not isinstance(meter, PowerMeter):
        raise PowerSpecError(f"power meter spec {spec!r}: the plugin's factory returned {meter!r}, not a PowerMeter")
    return meter if meter.reads_after_run else probed(spec, meter)


def _parse_calibration(spec: str, arg: str) -> tuple[float, float]:
    """``a=1.145,b=0.59`` -> (1.145, 0.59); defaults a=1, b=0."""
    values = {"a": 1.0, "b": 0.0}
    seen: set[str] = set()
    for part in arg.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in values or key in seen:
            raise spec_error(spec, f"pmic calibration {part.strip()!r} is not a=NUMBER or b=NUMBER")
        try:
            number = float(value)
        except ValueError:
            raise spec_error(spec, f"pmic calibration {key}={value.strip()!r} is not a number") from None
        if not math.isfinite(number):
            raise spec_error(spec, f"pmic calibration {key} must be finite")
        values[key] = number
        seen.add(key)
    if values["a"] <= 0:
        raise spec_error(spec, "pmic calibration a must be > 0")
    return values["a"], values["b"]


def _default_runner() -> Runner:
    from pytest_edgeperf.device.runner import CommandRunner

    return CommandRunner(timeout_s=2.0)
