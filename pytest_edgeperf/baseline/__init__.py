"""Baseline files: the per-device JSON files kept in the repo (read, validate, atomically update).

One concern per module, from the bottom up:

- ``validate``: the value ranges every stored number must lie in (``METRIC_RANGES``, ``SAMPLE_RANGES``), and
  ``BaselineError``;
- ``naming``: where a test's baseline lives (``<root>/<device>/<module>.json``);
- ``sidecar``: the raw samples beside it (``<root>/<device>/samples/<sha256 prefix>.json``), named by content;
- ``entry``: ``BaselineEntry`` (one test's recording and its noise history), whether a Result may be recorded;
- ``changes``: what an update did, and its summary;
- ``files``: the file format, written as stable JSON and read back with every check;
- ``store``: ``BaselineStore``, the lookups and the locked, atomic, merging update.

The reader refuses a file that breaks the rules, and ``update`` checks each new entry and each whole file with the
reader itself before writing, so an update never writes what the next run refuses.
"""

from __future__ import annotations

from .changes import Change, describe_changes
from .entry import (
    MAX_STORED_SAMPLES,
    BaselineEntry,
    busy_warning,
    decimate,
    default_recorded_by,
    recordable_reason,
)
from .files import BASELINE_SCHEMA_VERSION, READABLE_SCHEMA_VERSIONS
from .naming import MAX_FILENAME_BYTES, device_dirname, module_filename, split_nodeid
from .sidecar import SAMPLES_DIR, SidecarError
from .store import LOCK_NAME, BaselineStore
from .validate import (
    ANY_RANGE,
    MAX_MAGNITUDE,
    METRIC_RANGES,
    NON_NEGATIVE_RANGE,
    PERCENT_RANGE,
    RATE_RANGE,
    SAMPLE_RANGES,
    TIME_MS_RANGE,
    BaselineError,
    metric_range,
)

__all__ = [
    "ANY_RANGE",
    "BASELINE_SCHEMA_VERSION",
    "LOCK_NAME",
    "MAX_FILENAME_BYTES",
    "MAX_MAGNITUDE",
    "MAX_STORED_SAMPLES",
    "METRIC_RANGES",
    "NON_NEGATIVE_RANGE",
    "PERCENT_RANGE",
    "RATE_RANGE",
    "READABLE_SCHEMA_VERSIONS",
    "SAMPLES_DIR",
    "SAMPLE_RANGES",
    "TIME_MS_RANGE",
    "BaselineEntry",
    "BaselineError",
    "BaselineStore",
    "Change",
    "SidecarError",
    "busy_warning",
    "decimate",
    "default_recorded_by",
    "describe_changes",
    "device_dirname",
    "metric_range",
    "module_filename",
    "recordable_reason",
    "split_nodeid",
]
