"""Baseline files: the per-device JSON files kept in the repo (read, validate, atomically update)."""

from __future__ import annotations

from .entry import (
    ANY_RANGE,
    BASELINE_SCHEMA_VERSION,
    LOCK_NAME,
    MAX_FILENAME_BYTES,
    MAX_MAGNITUDE,
    MAX_STORED_SAMPLES,
    METRIC_RANGES,
    NON_NEGATIVE_RANGE,
    PERCENT_RANGE,
    RATE_RANGE,
    SAMPLE_RANGES,
    TIME_MS_RANGE,
    BaselineEntry,
    BaselineError,
    BaselineStore,
    Change,
    busy_warning,
    comparable_environment,
    decimate,
    default_recorded_by,
    describe_changes,
    device_dirname,
    metric_range,
    module_filename,
    recordable_reason,
    split_nodeid,
)

__all__ = [
    "ANY_RANGE", "BASELINE_SCHEMA_VERSION", "LOCK_NAME", "MAX_FILENAME_BYTES", "MAX_MAGNITUDE", "MAX_STORED_SAMPLES",
    "METRIC_RANGES", "NON_NEGATIVE_RANGE", "PERCENT_RANGE", "RATE_RANGE", "SAMPLE_RANGES", "TIME_MS_RANGE",
    "BaselineEntry", "BaselineError", "BaselineStore", "Change", "busy_warning", "comparable_environment", "decimate",
    "default_recorded_by", "describe_changes", "device_dirname", "metric_range", "module_filename",
    "recordable_reason", "split_nodeid",
]
