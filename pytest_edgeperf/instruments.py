"""Owns the one start/stop protocol of the instruments around a timed window, and starting and stopping them together.

The sensor timeline (device/timeline.py), the power sampler (power/sampler.py), the counter session and the hot spot
recorder (counters/) each ``start()`` before the window opens and ``stop()`` after it, returning what they measured.
Whatever they need besides (the worker's pid, the inference count) they are given when they are built. An
instrument that cannot start is a note on the result, never a failed measurement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol, TypeVar

R_co = TypeVar("R_co", covariant=True)


class Instrument(Protocol[R_co]):
    """Something that measures around the timed window: ``start()`` before it, ``stop()`` after it."""

    def start(self) -> None: ...

    def stop(self) -> R_co: ...


class Running:
    """The instruments that started, in start order; each is stopped once (``stop_all``) or abandoned after a failure.

    ``notes``: where "<what> could not start: <why>" goes (the result's notes).
    """

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self._running: dict[str, Instrument[object]] = {}

    def start(self, what: str, build: Callable[[], Instrument[object]]) -> Instrument[object] | None:
        """Build and start one instrument, named ``what`` in a note if it fails; returns it, or None."""
        try:
            instrument = build()
            instrument.start()
        except Exception as exc:  # an instrument failing must not cost the measurement
            self.notes.append(f"{what} could not start: {exc}")
            return None
        self._running[what] = instrument
        return instrument

    def get(self, what: str) -> Instrument[object] | None:
        return self._running.get(what)

    def stop_all(self) -> dict[str, object]:
        """Stop every running instrument in start order; what each measured, by its name."""
        stopped: dict[str, object] = {}
        while self._running:
            what = next(iter(self._running))
            stopped[what] = self._running.pop(what).stop()
        return stopped

    def abandon(self) -> None:
        """Stop whatever still runs (after a failure), ignoring what it measured and how it fails."""
        while self._running:
            instrument = self._running.pop(next(iter(self._running)))
            with contextlib.suppress(Exception):
                instrument.stop()
