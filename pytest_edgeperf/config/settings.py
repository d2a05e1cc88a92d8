"""The settings objects and their defaults: ``Settings`` (one pytest session's, from the command line and the ini
file) and ``Budget`` (how long one measurement runs), with the named defaults (``DEFAULT_BUDGET``, ``QUICK_BUDGET``,
the process count, the lock timeout). Plain data with no pytest and no parsing in it: what the measurement, the
worker's A/B driver and the benchmarks need of the settings is here alone, and every other module of ``config/``
builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..verdict.rules import BUSY_CPU_WAIT_PCT as BUSY_CPU_WAIT_PCT  # the verdict's busy limit


@dataclass(frozen=True)
class Budget:
    """How long one measurement runs: both minimums must be met (p90 needs >= 64 samples), capped by the maximum."""

    min_samples: int = 64
    min_time_s: float = 10.0
    max_time_s: float = 60.0
    warmup_s: float = 1.0
    warmup_runs: int = 5
    max_samples: int = 1_000_000


DEFAULT_BUDGET = Budget()
#: worker processes sharing one measurement's budget: separate runs of the same model differ by more than one
#: run's samples show (the process and the moment it ran), and the verdict can only see that spread between
#: processes (verdict.location_change; figures in benchmarks/README.md)
DEFAULT_PROCESSES = 5
#: passes of the session --edgeperf-update-baselines makes: each measured test is recorded once per pass, minutes
#: apart, so fresh baselines already hold two runs to learn the run-to-run noise from (noise.py)
DEFAULT_UPDATE_PASSES = 2
#: seconds a measurement waits for the device lock (another pytest measuring on this device) before it fails
DEFAULT_LOCK_TIMEOUT_S = 600.0
QUICK_BUDGET = Budget(min_samples=10, min_time_s=0.2, max_time_s=5.0, warmup_s=0.05, warmup_runs=2)


@dataclass
class Settings:
    """Session-wide settings from the command line and the ini file."""

    rootdir: Path
    device: str = "auto"
    allow_device_mismatch: bool = False
    root: Path = Path("/")
    vcgencmd: str = "vcgencmd"
    min_freq_ghz: float | None = None
    max_temp_c: float | None = None
    guard_enabled: bool = True
    guard_timeout_s: float = 120.0
    guard_hold_s: float = 2.0
    guard_fail: bool = False
    sample_hz: float = 10.0
    sensor_budget: float = 0.03
    max_attempts: int = 3
    min_valid_fraction: float = 0.8
    quick: bool = False
    budget: Budget = DEFAULT_BUDGET
    threads: int | None = None
    processes: int = DEFAULT_PROCESSES
    #: --edgeperf-processes as given, None when not: an A/B comparison's worker pairs follow it (else
    #: paired.auto_blocks)
    processes_given: int | None = None
    reference: bool = True
    max_cpu_wait_pct: float = BUSY_CPU_WAIT_PCT
    worker_timeout_s: float = 300.0
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    json_path: Path | None = None
    benchmark_json_path: Path | None = None
    html_path: Path | None = None
    history_url: str | None = None
    baselines_dir: Path = Path("baselines")
    update_baselines: bool = False
    update_passes: int = DEFAULT_UPDATE_PASSES
    strict: bool = False
    tolerances: dict[str, float] = field(default_factory=dict)
    power_meter: str = "auto"
    power_hz: float = 10.0
    idle_s: float = 2.0
    counters: bool = False
    hotspots: bool = False
    sustained_s: float | None = None
    cache_dir: Path = Path.home() / ".cache" / "pytest-edgeperf"
    progress: bool = True
    disabled: bool = False  # --edgeperf-disable: marked tests run their bodies; nothing is timed, judged or written
    against: str | None = None  # --edgeperf-against=REF: changed model files are timed interleaved with REF's
    against_python: str | None = None  # --edgeperf-against-python: the B arm's interpreter in A/B comparisons
