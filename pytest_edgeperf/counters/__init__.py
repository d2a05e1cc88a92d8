"""Hardware counters per inference and CPU hot spots, measured with perf around the timed window.

The framework-comparison study explains why runtimes differ on one model through PMU events counted with
``perf stat`` and reduced to per-image figures as (whole run - model load only) / N; it also finds that power
tracks instructions/s and L1-d loads/s (Pearson 0.66-0.95). Here the parent attaches ``perf stat -p`` to the
worker for the timed window only, so the load phase is already outside the count; :func:`per_inference` also
does the subtraction for users who bring whole-run and load-only counts. Nothing here raises at run time
because a machine cannot count: unsupported events (an x86 VM: all hardware events) are listed and the caller
goes on.

One concern per module, bottom to top: ``events`` (which events, what a valid list is), ``parse`` (perf's text
output), ``figures`` (per inference, means, correlation), ``process`` (starting and stopping perf), then the
two instruments on top of it: ``session`` (``perf stat``) and ``hotspots`` (``perf record``).
"""

from pytest_edgeperf.counters.events import (
    COUNTER_METRIC_DIRECTION,
    DEFAULT_EVENTS,
    MIN_INTERVAL_MS,
    SENTINEL_EVENT,
    CountersConfigError,
    validate_events,
)
from pytest_edgeperf.counters.figures import mean_readings, metric_name, pearson_power_counters, per_inference
from pytest_edgeperf.counters.hotspots import HotspotRecorder
from pytest_edgeperf.counters.parse import (
    STATUS_COUNTED,
    STATUS_NOT_COUNTED,
    STATUS_NOT_SUPPORTED,
    CounterReading,
    Status,
    parse_perf_report,
    parse_perf_stat_csv,
    parse_perf_stat_intervals,
)
from pytest_edgeperf.counters.process import PerfProcess
from pytest_edgeperf.counters.session import CounterSession

__all__ = [
    "COUNTER_METRIC_DIRECTION",
    "DEFAULT_EVENTS",
    "MIN_INTERVAL_MS",
    "SENTINEL_EVENT",
    "STATUS_COUNTED",
    "STATUS_NOT_COUNTED",
    "STATUS_NOT_SUPPORTED",
    "CounterReading",
    "CounterSession",
    "CountersConfigError",
    "HotspotRecorder",
    "PerfProcess",
    "Status",
    "mean_readings",
    "metric_name",
    "parse_perf_report",
    "parse_perf_stat_csv",
    "parse_perf_stat_intervals",
    "pearson_power_counters",
    "per_inference",
    "validate_events",
]
