"""Bench power analyzers over VISA (pyvisa): one SCPI query per reading, e.g. ``MEAS:POW? (@1)``.

pyvisa is an optional dependency (``pytest-edgeperf[power]``); it is imported only when a ``scpi:`` spec is
used. A reply may list several channels (``MEAS:POW? (@1,2)`` -> ``1.2,3.4``): their sum is the power.
SCPI's "not a number" (9.91E37) and error replies (``-113,"Undefined header"``) are read failures.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pytest_edgeperf.power.base import MeterError, PowerMeter, PowerSpecError, check_power_w

DEFAULT_QUERY = "MEAS:POW? (@1)"
SCPI_NAN = 9.9e37


def parse_scpi_power(reply: str) -> float:
    """Sum of the comma-separated numbers in a reply; anything that is not all numbers is an error."""
    fields = [f.strip() for f in reply.strip().split(",")]
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise MeterError(f"scpi: reply {reply.strip()[:60]!r} is not a power reading") from None
    if not values or any(abs(v) >= SCPI_NAN for v in values):
        raise MeterError(f"scpi: reply {reply.strip()[:60]!r} is the instrument's not-a-number")
    return sum(values)


class ScpiMeter(PowerMeter):
    """An open VISA instrument and the query that answers watts."""

    def __init__(self, resource_manager: Any, instrument: Any, resource: str, query: str,
                 backend: str) -> None:
        self._rm = resource_manager
        self._inst = instrument
        self.resource = resource
        self.query = query
        self.backend = backend
        self.name = f"scpi:{resource}"

    def describe(self) -> str:
        backend = f", backend {self.backend}" if self.backend else ""
        return f"SCPI analyzer {self.resource} ({self.query!r}{backend})"

    def read_power_w(self) -> float:
        if self._inst is None:
            raise MeterError(f"{self.name}: instrument is closed")
        try:
            reply = self._inst.query(self.query)
        except Exception as exc:  # pyvisa raises VisaIOError, OSError, ...: all mean "no reading"
            raise MeterError(f"{self.name}: query {self.query!r} failed: {exc}") from None
        return check_power_w(parse_scpi_power(str(reply)), self.name)

    def close(self) -> None:
        for handle in (self._inst, self._rm):
            if handle is not None:
                with contextlib.suppress(Exception):  # a vanished instrument must not break teardown
                    handle.close()
        self._inst = self._rm = None


def open_scpi_meter(spec: str, resource: str, opts: dict[str, str], *, timeout_ms: int = 2000) -> ScpiMeter:
    """Open the instrument a ``scpi:`` spec names (options already checked); failures are PowerSpecErrors."""
    try:
        import pyvisa
    except ImportError:
        raise PowerSpecError(
            f"power meter spec {spec!r}: needs pyvisa (pip install 'pytest-edgeperf[power]')"
        ) from None
    backend = opts.get("backend", "")
    if "file" in opts:
        backend = f"{opts['file']}@sim"
    query = opts.get("query") or DEFAULT_QUERY
    try:
        rm = pyvisa.ResourceManager(backend) if backend else pyvisa.ResourceManager()
    except Exception as exc:
        raise PowerSpecError(
            f"power meter spec {spec!r}: cannot start VISA backend {backend or 'default'!r}: "
            f"{_one_line(exc)}"
        ) from None
    try:
        inst = rm.open_resource(resource, read_termination="\n", write_termination="\n",
                                timeout=timeout_ms)
    except Exception as exc:
        rm.close()
        raise PowerSpecError(
            f"power meter spec {spec!r}: cannot open VISA resource {resource!r}: {_one_line(exc)}"
        ) from None
    return ScpiMeter(rm, inst, resource, query, backend)


def _one_line(exc: BaseException) -> str:
    """The error's message on one line; a traceback embedded in it (pyvisa-sim does that) is cut to its last line."""
    text = str(exc)
    head, marker, tail = text.partition("Traceback (most recent call last):")
    if marker:  # keep what was said before the traceback and the traceback's cause ("FileNotFoundError: ...")
        lines = tail.replace("\\n", "\n").replace("\\'", "'").replace('\\"', '"').splitlines()
        causes = [line.strip() for line in lines if line.strip("'\" ^~") and not line.strip().startswith("File ")]
        cause = causes[-1] if causes else ""
        text = f"{head.strip().rstrip(chr(39) + chr(34)).strip()} {cause}"
    text = " ".join(text.split())
    return text[:200] or type(exc).__name__
