"""The ``--edgeperf-*`` options and their ini keys (``OPTIONS``, which plugin.py registers and the docs list) and
reading them into one validated ``Settings`` (``settings_from_config``): command line > ini file > default. Every
value a user can get wrong on the command line or in the ini file is checked here, before any test runs, and
reported as one ``pytest.UsageError`` line naming the flag or the ini key given.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from .ranges import RANGES
from .settings import (
    DEFAULT_BUDGET,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_PROCESSES,
    DEFAULT_UPDATE_PASSES,
    QUICK_BUDGET,
    Settings,
)

#: (option, ini key or None, type, help) — plugin.py registers these; defaults come from Settings (settings.py);
#: a numeric option needs its accepted range in ranges.RANGES.
OPTIONS: list[tuple[str, str | None, str, str]] = [
    ("device", "edgeperf_device", "str",
     "device profile: auto (detect from /proc/device-tree/model), pi3, pi3b+, pi4, pi5, pi-zero-2w, jetson-nano, host"),
    ("allow-device-mismatch", None, "bool",
     "run with --edgeperf-device even if the board detected differs (its baselines may then be misleading)"),
    ("root", None, "path", "filesystem root the sensor readers look under (tests point it at a fake /sys)"),
    ("vcgencmd", None, "str", "vcgencmd command to run (path or name)"),
    ("min-freq", "edgeperf_min_freq", "float", "CPU clock floor in GHz below which samples do not count"),
    ("max-temp", "edgeperf_max_temp", "float", "start timing only below this SoC temperature (C)"),
    ("no-guard", None, "bool", "do not wait for the device to be cool and unthrottled before timing"),
    ("guard-timeout", "edgeperf_guard_timeout", "float", "seconds the thermal guard waits before giving up"),
    ("guard-hold", None, "float", "seconds the clock must hold above the floor under load"),
    ("guard-fail", None, "bool", "fail (instead of skip) a test whose device never became ready"),
    ("sample-hz", "edgeperf_sample_hz", "float", "sensor sampling rate during timing (0 disables the timeline)"),
    ("sensor-budget", "edgeperf_sensor_budget", "float",
     "fraction of the time the sampler may spend running vcgencmd (process starts); other ticks read files only"),
    ("max-attempts", None, "int", "how many times a throttled measurement is repeated before INCONCLUSIVE"),
    ("quick", None, "bool", "smoke run with a tiny budget (results are never written as baselines)"),
    ("min-samples", "edgeperf_min_samples", "int", "minimum timed samples per measurement (default 64)"),
    ("min-time", "edgeperf_min_time", "float", "minimum timed seconds per measurement (default 10)"),
    ("max-time", "edgeperf_max_time", "float", "maximum timed seconds per measurement (default 60)"),
    ("threads", "edgeperf_threads", "int", "inference threads (default: the number of CPU cores)"),
    ("processes", "edgeperf_processes", "int",
     f"worker processes per measurement, sharing its budget (default {DEFAULT_PROCESSES}; 1 with --edgeperf-quick); "
     "given, also the worker pairs of an A/B comparison (default 3)"),
    ("max-cpu-wait", "edgeperf_max_cpu_wait", "float",
     "timing is INCONCLUSIVE when a worker waited for a CPU more than this % of its runnable time (default 10; "
     "100 judges timing on a busy machine too)"),
    ("no-reference", None, "bool",
     "do not time the machine-speed reference model between samples (timing is then compared uncorrected)"),
    ("worker-timeout", None, "float", "seconds a worker may take to load and warm up before it is killed"),
    ("lock-timeout", "edgeperf_lock_timeout", "float",
     f"seconds a measurement waits for the device lock held by another pytest on this device before it fails, "
     f"naming the holder's pid (default {DEFAULT_LOCK_TIMEOUT_S:g}; 0 fails at once)"),
    ("json", None, "path", "write every result, raw samples and environment to this JSON file"),
    ("benchmark-json", None, "path", "write pytest-benchmark compatible JSON (for github-action-benchmark, Bencher)"),
    ("html", None, "path", "write a self-contained HTML report"),
    ("history", "edgeperf_history", "str",
     "record the run in the results history: a file path, sqlite:///PATH or postgresql://... (an unreachable one "
     "is a warning; `edgeperf history` reads it)"),
    ("baselines", "edgeperf_baselines", "path", "baselines directory (default <rootdir>/baselines)"),
    ("update-baselines", None, "bool", "record the current results as the new baselines"),
    ("update-passes", "edgeperf_update_passes", "int",
     f"with --edgeperf-update-baselines: run the measured tests this many times, one pass of the session after "
     f"another, each recording once, so the baselines learn how far timing moves between runs (default "
     f"{DEFAULT_UPDATE_PASSES}; 1 records once)"),
    ("strict", None, "bool", "a missing baseline fails the test"),
    ("tolerance", "edgeperf_tolerance", "str", "per-metric tolerances, e.g. fps=5%,peak_memory_mb=10%,top1_pct=0.5"),
    ("power-meter", "edgeperf_power_meter", "str",
     "power meter SPEC: auto, none, hwmon[:NAME|PATH], pmic[:a=..,b=..], rapl[:PATH], scpi:..., csv:PATH"),
    ("power-hz", None, "float", "power sampling rate during timing"),
    ("idle-time", None, "float", "seconds of idle power reading before each measurement (0 disables)"),
    ("counters", None, "bool", "collect perf hardware counters per inference"),
    ("hotspots", None, "bool", "record a perf profile of the timed window and list the top symbols"),
    ("sustained", None, "float",
     "run sustained tests for this many seconds (the hardware-metrics correlation study on a Raspberry Pi 3 ran 360 s "
     "of continuous inference)"),
    ("cache-dir", None, "path", "where generated models are cached"),
    ("no-progress", None, "bool", "no live progress lines"),
    ("against", None, "str",
     "git revision (e.g. origin/main): every measured model FILE that differs from REF's is timed interleaved with "
     "REF's version and its fps judged from the pairs (ratio with a 95% interval, the fps tolerance as the allowed "
     "slowdown); accuracy and memory still go against the stored baselines, unchanged models as before"),
    ("against-python", None, "str",
     "interpreter for the B arm of interleaved A/B comparisons (compare() of two models, --edgeperf-against): "
     "another virtual environment's python with another runtime version and the plugin installed"),
    ("disable", None, "bool",
     "run marked tests' bodies once without measuring (like --benchmark-disable): measure() loads the model and "
     "runs one inference in-process and returns a result marked 'disabled' with no figures; no workers, "
     "baselines or report files"),
]


def option_help(name: str, help_text: str) -> str:
    """An option's help with its accepted range (plain text: the caller escapes ``%`` for argparse)."""
    rng = RANGES.get(name)
    return f"{help_text} [range {rng.describe()}]" if rng is not None else help_text


def _convert(kind: str, raw: Any, where: str) -> Any:
    if raw is None or raw == "":
        return None
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if kind == "path":
            return Path(os.path.expanduser(str(raw)))
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        return str(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{where}: expected {kind}, got {raw!r}") from None


def settings_from_config(config: pytest.Config) -> Settings:
    """Read every option (command line, then ini) and validate it; errors name the flag or the ini key given."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}  # option name -> how the user gave it: "--edgeperf-NAME" or "ini option KEY"
    for name, ini, kind, _help in OPTIONS:
        dest = "edgeperf_" + name.replace("-", "_")
        raw = config.getoption(dest, default=None)
        where[name] = f"--edgeperf-{name}"
        if (raw is None or raw is False) and ini:
            ini_raw = config.getini(ini)
            if ini_raw not in (None, "", []):
                raw, where[name] = ini_raw, f"ini option {ini}"
        values[name] = _convert(kind, raw, where[name])
        if values[name] is not None and name in RANGES:
            RANGES[name].check(values[name], where[name])

    rootdir = Path(str(config.rootpath))
    s = Settings(rootdir=rootdir)
    if values["device"]:
        s.device = values["device"].strip().lower()
    s.allow_device_mismatch = bool(values["allow-device-mismatch"])
    if values["root"]:
        s.root = values["root"]
    if values["vcgencmd"]:
        s.vcgencmd = values["vcgencmd"]
    s.min_freq_ghz = values["min-freq"]
    s.max_temp_c = values["max-temp"]
    s.guard_enabled = not values["no-guard"]
    if values["guard-timeout"] is not None:
        s.guard_timeout_s = float(values["guard-timeout"])
    if values["guard-hold"] is not None:
        s.guard_hold_s = float(values["guard-hold"])
    if s.guard_enabled and s.guard_hold_s > s.guard_timeout_s:
        raise pytest.UsageError(
            f"{where['guard-hold']} ({s.guard_hold_s:g} s) must not exceed {where['guard-timeout']} "
            f"({s.guard_timeout_s:g} s): the clock could never be seen holding its floor in time")
    s.guard_fail = bool(values["guard-fail"])
    if values["sample-hz"] is not None:
        s.sample_hz = float(values["sample-hz"])
    if values["sensor-budget"] is not None:
        s.sensor_budget = float(values["sensor-budget"])
    if values["max-attempts"] is not None:
        s.max_attempts = int(values["max-attempts"])
    s.quick = bool(values["quick"])
    budget = QUICK_BUDGET if s.quick else DEFAULT_BUDGET
    if values["min-samples"] is not None:
        budget = replace(budget, min_samples=int(values["min-samples"]))
    if values["min-time"] is not None:
        budget = replace(budget, min_time_s=float(values["min-time"]))
    if values["max-time"] is not None:
        budget = replace(budget, max_time_s=float(values["max-time"]))
    if budget.max_time_s < budget.min_time_s:
        raise pytest.UsageError(
            f"{where['max-time']} ({budget.max_time_s} s) is below the minimum time ({budget.min_time_s} s)"
        )
    s.budget = budget
    if values["threads"] is not None:
        s.threads = int(values["threads"])
    s.processes = 1 if s.quick else DEFAULT_PROCESSES
    if values["processes"] is not None:
        s.processes = s.processes_given = int(values["processes"])
    s.reference = not values["no-reference"]
    if values["max-cpu-wait"] is not None:
        s.max_cpu_wait_pct = float(values["max-cpu-wait"])
    if values["worker-timeout"] is not None:
        s.worker_timeout_s = float(values["worker-timeout"])
    if values["lock-timeout"] is not None:
        s.lock_timeout_s = float(values["lock-timeout"])
    s.json_path = values["json"]
    s.benchmark_json_path = values["benchmark-json"]
    s.html_path = values["html"]
    s.history_url = values["history"]
    check_report_paths({f"--edgeperf-{name}": values[name] for name in REPORT_OPTIONS})
    baselines = values["baselines"] or Path("baselines")
    s.baselines_dir = baselines if baselines.is_absolute() else rootdir / baselines
    s.update_baselines = bool(values["update-baselines"])
    if values["update-passes"] is not None:
        s.update_passes = int(values["update-passes"])
    s.strict = bool(values["strict"])
    if values["tolerance"]:
        s.tolerances = parse_tolerance_option(values["tolerance"], where["tolerance"])
    if values["power-meter"]:
        s.power_meter = values["power-meter"].strip()
    if values["power-hz"] is not None:
        s.power_hz = float(values["power-hz"])
    if values["idle-time"] is not None:
        s.idle_s = float(values["idle-time"])
    s.counters = bool(values["counters"])
    s.hotspots = bool(values["hotspots"])
    if values["sustained"] is not None:
        s.sustained_s = float(values["sustained"])
    if values["cache-dir"]:
        s.cache_dir = values["cache-dir"]
    elif os.environ.get("EDGEPERF_CACHE"):
        s.cache_dir = Path(os.environ["EDGEPERF_CACHE"])
    s.progress = not values["no-progress"]
    s.disabled = bool(values["disable"])
    if values["against"] is not None:
        s.against = values["against"].strip()
        if not s.against or s.against.startswith("-"):
            raise pytest.UsageError(f"--edgeperf-against: expected a git revision (e.g. origin/main), "
                                    f"got {values['against']!r}")
    if values["against-python"] is not None:
        s.against_python = check_python(values["against-python"], "--edgeperf-against-python")
    if s.disabled and s.update_baselines:
        raise pytest.UsageError("--edgeperf-disable measures nothing, so --edgeperf-update-baselines has nothing to "
                                "record: use one or the other")
    return s


def check_python(given: str, where: str) -> str:
    """An interpreter path (or a name on PATH) that exists and runs; one line naming ``where`` if not."""
    import shutil
    import subprocess

    path = os.path.expanduser(given.strip())
    found = shutil.which(path)
    if found is None:
        raise pytest.UsageError(f"{where}: {given!r} is not an executable file (give a python interpreter)")
    try:
        out = subprocess.run([found, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise pytest.UsageError(f"{where}: cannot run {found}: {exc}") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise pytest.UsageError(f"{where}: {found} is not a working python interpreter")
    return found


#: the options that name a result file written at the end of the run
REPORT_OPTIONS = ("json", "benchmark-json", "html")


def check_report_paths(paths: dict[str, Path | None]) -> None:
    """Refuse a report path that cannot be written, before any test runs (not after the last one).

    The parent directory must exist (it is never created: a typo in a directory name should not pass silently)
    and be writable, the path must not be a directory, and two options must not name the same file.
    """
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        if path.is_dir():
            raise pytest.UsageError(f"{option}: {path} is a directory; give a file name, e.g. {path / 'report'}")
        parent = path.parent
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist (it is not created)"
            raise pytest.UsageError(f"{option}: cannot write {path}: directory {parent} {what}")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise pytest.UsageError(f"{option}: cannot write {path}: directory {parent} is not writable")
        key = Path(os.path.abspath(path))
        if key in seen:
            raise pytest.UsageError(f"{option} and {seen[key]} name the same file {path}")
        seen[key] = option


def parse_tolerance_option(spec: str | dict[str, Any], where: str) -> dict[str, float]:
    """Delegate to the verdict's parser, turning its error into a one-line usage error naming ``where``."""
    from ..verdict.rules import ToleranceError, parse_tolerances

    try:
        return parse_tolerances(spec)
    except ToleranceError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
