"""Which perf events are counted, and what a valid user-given event list or interval is.

The default list holds the events the framework-comparison study counted per image; a user's list is checked
here, before perf sees it, so a typo is a one-line :class:`CountersConfigError` naming the entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_edgeperf.errors import EdgeperfError

#: Seed 004's events (L2 loads have no generic perf name: ``cache-references`` is the nearest portable one).
DEFAULT_EVENTS: tuple[str, ...] = (
    "instructions",
    "cycles",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "cache-references",
    "cache-misses",
    "branch-misses",
    "branches",
)

#: A software event counted everywhere perf runs: proves the attach worked and gives CPU ms per inference.
SENTINEL_EVENT = "task-clock"

#: Counter metrics live in ``Result.counters["per_inference"]``; fewer is better for every one of them.
COUNTER_METRIC_DIRECTION = "lower"

#: perf refuses (or misbehaves with) shorter print intervals.
MIN_INTERVAL_MS = 10

_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.:/=@-]+$")


class CountersConfigError(EdgeperfError, ValueError):
    """A user-given counter setting (event list, interval) is invalid; the message names it."""


def validate_events(events: Sequence[str], source: str = "counter events") -> tuple[str, ...]:
    """Check a user's event list before perf sees it; the message names the offending entry."""
    if isinstance(events, str):
        events = [e for e in events.split(",")]
    cleaned = tuple(e.strip() for e in events)
    if not cleaned:
        raise CountersConfigError(f"{source}: the event list is empty")
    for event in cleaned:
        if not event or not _EVENT_NAME.match(event):
            raise CountersConfigError(f"{source}: {event!r} is not a perf event name (see `perf list`)")
    return cleaned
