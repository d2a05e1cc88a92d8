"""Command-line options, ini values and marker arguments -> one validated settings object. All defaults live here.

Precedence: ``measure()`` keyword > marker argument > command line > ini file > default (the device profile's, for
the clock floor); ``measure_settings`` applies it for one measurement. Anything a user can get wrong is checked here
and reported as one line naming the option, ini key or test and argument (``pytest.UsageError``), before any
measurement starts.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from ..errors import EdgeperfError
from ..verdict.rules import BUSY_CPU_WAIT_PCT as BUSY_CPU_WAIT_PCT  # the verdict's busy limit

# ---- defaults -------------------------------------------------------------------------------------------------


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


#: (option, ini key or None, type, help) — plugin.py registers these; defaults come from Settings.
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
     f"worker processes per measurement, sharing its budget (default {DEFAULT_PROCESSES}; 1 with --edgeperf-quick)"),
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


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: ``low`` to ``high`` (``low`` itself excluded when ``low_open``).

    ``zero_off``: 0 is accepted too, as the option's "off" value (``--edgeperf-sample-hz=0``), below a ``low``
    that keeps the rest away from absurdly small values (a rate of 1e-300 Hz overflows the sampler's period).
    """

    low: float
    high: float
    low_open: bool = False
    zero_off: bool = False

    def describe(self) -> str:
        text = f"{_num(self.low)} {'<' if self.low_open else '<='} x <= {_num(self.high)}"
        return f"x = 0 (off) or {text}" if self.zero_off else text

    def violation(self, value: float) -> str | None:
        """Why ``value`` is out of range ("must be <= 64 (range 0 < x <= 64), got 100"), or None if it is not."""
        if self.zero_off and value == 0:
            return None
        if value < self.low or (self.low_open and value == self.low):
            op = ">" if self.low_open else ">="
            return f"must be {op} {_num(self.low)} (range {self.describe()}), got {_num(value)}"
        if value > self.high:
            return f"must be <= {_num(self.high)} (range {self.describe()}), got {_num(value)}"
        return None

    def check(self, value: float, where: str) -> None:
        """Raise a one-line ``pytest.UsageError`` naming ``where`` (the flag or the ini key) when out of range."""
        why = self.violation(value)
        if why is not None:
            raise pytest.UsageError(f"{where} {why}")


DAY_S = 86_400.0
#: every int/float option's accepted range; checked where the value is read (flag or ini key) and shown in the
#: help. A numeric option without an entry here fails tests/test_options.py.
RANGES: dict[str, Range] = {
    "min-freq": Range(0, 10, low_open=True),  # GHz
    "max-temp": Range(0, 150, low_open=True),  # Celsius
    "guard-timeout": Range(0, DAY_S, low_open=True),
    "guard-hold": Range(0, 3600),
    "sample-hz": Range(0.01, 1000, zero_off=True),
    "sensor-budget": Range(0, 1, low_open=True),  # a fraction of the time
    "max-attempts": Range(0, 100, low_open=True),
    "min-samples": Range(0, DEFAULT_BUDGET.max_samples, low_open=True),
    "min-time": Range(0, DAY_S),
    "max-time": Range(0, DAY_S, low_open=True),
    "threads": Range(0, 1024, low_open=True),
    "processes": Range(0, 64, low_open=True),
    "max-cpu-wait": Range(0, 100),  # percent
    "worker-timeout": Range(0, DAY_S, low_open=True),
    "lock-timeout": Range(0, DAY_S),
    "update-passes": Range(0, 20, low_open=True),
    "power-hz": Range(0.01, 1000),
    "idle-time": Range(0, 3600),
    "sustained": Range(0, DAY_S, low_open=True),
}
#: marker arguments that are the same quantity as an option take that option's range
MARKER_RANGES: dict[str, str] = {"threads": "threads", "min_samples": "min-samples", "processes": "processes",
                                 "min_time_s": "min-time", "max_time_s": "max-time", "min_freq_ghz": "min-freq",
                                 "sustained_s": "sustained"}


def option_help(name: str, help_text: str) -> str:
    """An option's help with its accepted range (plain text: the caller escapes ``%`` for argparse)."""
    rng = RANGES.get(name)
    return f"{help_text} [range {rng.describe()}]" if rng is not None else help_text


def _num(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"


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
        s.processes = int(values["processes"])
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


# ---- the marker ------------------------------------------------------------------------------------------------

MARKER_HELP = (
    "edgeperf(model=None, *, frameworks=None, threads=None, min_samples=None, min_time_s=None, max_time_s=None, "
    "warmup_s=None, min_fps=None, max_latency_ms=None, max_memory_mb=None, min_top1_pct=None, min_top5_pct=None, "
    "min_map50_pct=None, max_energy_per_inference_mj=None, tolerance=None, inputs=None, preprocess=None, "
    "accuracy=None, min_freq_ghz=None, counters=None, hotspots=None, sustained_s=None, min_speedup=None, "
    "max_accuracy_drop_pct=None, processes=None, input_shapes=None, input_dtypes=None, input_values=None, "
    "providers=None, delegates=None, backend=None, target=None): "
    "measure a model on this "
    "device with each installed runtime; see the README"
)

@dataclass(frozen=True)
class MarkerSpec:
    """The validated arguments of one test's ``@pytest.mark.edgeperf``."""

    model: str | None = None
    frameworks: tuple[str, ...] | None = None
    threads: int | None = None
    min_samples: int | None = None
    min_time_s: float | None = None
    max_time_s: float | None = None
    warmup_s: float | None = None
    min_fps: float | None = None
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_top1_pct: float | None = None
    min_top5_pct: float | None = None
    min_map50_pct: float | None = None
    max_energy_per_inference_mj: float | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    inputs: str | None = None
    preprocess: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None
    min_freq_ghz: float | None = None
    counters: bool | None = None
    hotspots: bool | None = None
    sustained_s: float | None = None
    min_speedup: float | None = None
    max_accuracy_drop_pct: float | None = None
    processes: int | None = None
    #: a shape for a single-input model or {input name: shape}; resolves dynamic dimensions (frameworks/signature.py)
    input_shapes: list[int] | dict[str, list[int]] | None = None
    input_dtypes: dict[str, str] | None = None
    input_values: dict[str, Any] | None = None
    #: accelerator paths (frameworks/accelerators.py), each for its own runtime: ONNX Runtime execution providers
    #: as [[name, options], ...], LiteRT delegates likewise ([] = XNNPACK off), OpenCV DNN backend and target names
    providers: list[list[Any]] | None = None
    delegates: list[list[Any]] | None = None
    backend: str | None = None
    target: str | None = None

    def accelerator_for(self, framework: str) -> dict[str, Any]:
        """The accelerator arguments that apply to ``framework`` (empty: the runtime's default path)."""
        from ..frameworks.accelerators import ACCELERATOR_ARGUMENTS, options_for

        return options_for(framework, {arg: getattr(self, arg) for arg in ACCELERATOR_ARGUMENTS})


_POSITIVE_INTS = ("threads", "min_samples", "processes")
_POSITIVE_FLOATS = ("max_time_s", "min_fps", "max_latency_ms", "max_memory_mb", "min_freq_ghz", "sustained_s",
                    "max_energy_per_inference_mj", "min_speedup")
_NON_NEGATIVE_FLOATS = ("min_time_s", "warmup_s", "max_accuracy_drop_pct")
_PERCENTS = ("min_top1_pct", "min_top5_pct", "min_map50_pct")


def parse_marker(test_id: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkerSpec:
    """Validate a marker; every problem is one line naming the test and the argument."""

    def bad(arg: str, why: str) -> pytest.UsageError:
        return pytest.UsageError(f"{test_id}: @pytest.mark.edgeperf argument {arg!r}: {why}")

    kwargs = dict(kwargs)
    if len(args) > 1:
        raise bad("model", f"takes one positional argument (the model), got {len(args)}")
    if args:
        if "model" in kwargs:
            raise bad("model", "given both positionally and by name")
        kwargs["model"] = args[0]
    known = set(MarkerSpec.__dataclass_fields__)
    for name in kwargs:
        if name not in known:
            raise bad(name, f"unknown argument (known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if value is None:
            continue
        try:
            out[name] = _marker_value(name, value, bad)
        except pytest.UsageError:
            raise
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            # a value of an unexpected type deep inside (a huge int, a str where a number goes): still one line
            raise bad(name, f"cannot use {_short_repr(value)}: {type(exc).__name__}: {exc}") from None
    min_t, max_t = out.get("min_time_s"), out.get("max_time_s")
    if min_t is not None and max_t is not None and max_t < min_t:
        raise bad("max_time_s", f"is below min_time_s ({max_t} < {min_t})")
    return MarkerSpec(**out)


#: builds the one-line UsageError naming the test and the marker argument: ``bad(argument, why)``
BadArgument = Callable[[str, str], pytest.UsageError]


def _marker_value(name: str, value: Any, bad: BadArgument) -> Any:
    """One marker argument, validated and normalised; ``bad(name, why)`` builds the one-line UsageError."""
    if name == "model":
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise bad(name, f"expected a path or zoo:NAME, got {_short_repr(value)}")
        return str(value)
    if name == "frameworks":
        names = (value,) if isinstance(value, str) else value
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise bad(name, f"expected a name or a list of names, got {_short_repr(value)}")
        from ..frameworks import UnknownFrameworkError, canonical_name

        try:
            return tuple(dict.fromkeys(canonical_name(n) for n in names))
        except UnknownFrameworkError as exc:
            raise bad(name, str(exc)) from None
    if name in _POSITIVE_INTS:
        # numbers.Integral also admits numpy integers (np.int64 from a parametrize over np.arange)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise bad(name, f"expected a positive integer, got {_short_repr(value)}")
        _check_marker_range(name, int(value), bad)
        return int(value)
    if name in _POSITIVE_FLOATS + _NON_NEGATIVE_FLOATS + _PERCENTS:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad(name, f"expected a number, got {_short_repr(value)}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise bad(name, f"expected a finite number, got {_short_repr(value)}")
        if name in _POSITIVE_FLOATS and number <= 0:
            raise bad(name, f"must be > 0, got {value!r}")
        if name in _NON_NEGATIVE_FLOATS and number < 0:
            raise bad(name, f"must be >= 0, got {value!r}")
        if name in _PERCENTS and not 0 <= number <= 100:
            raise bad(name, f"is a percentage (0-100), got {value!r}")
        _check_marker_range(name, number, bad)
        return number
    if name == "tolerance":
        if not isinstance(value, (str, dict)):
            raise bad(name, f"expected a dict or 'metric=5%,...', got {_short_repr(value)}")
        from ..verdict.rules import ToleranceError, parse_tolerances

        try:
            return parse_tolerances(value)
        except ToleranceError as exc:
            raise bad(name, str(exc)) from None
    if name == "inputs":
        if not isinstance(value, str) or not value.strip():
            raise bad(name, f"expected 'random', a dataset path or 'module:function', got {_short_repr(value)}")
        return value
    if name in ("preprocess", "accuracy"):
        if not isinstance(value, dict):
            raise bad(name, f"expected a dict, got {type(value).__name__}")
        if name == "preprocess":
            from ..accuracy.preprocess import PreprocessError, parse_preprocess

            try:
                parse_preprocess(value)
            except PreprocessError as exc:
                raise bad(name, str(exc)) from None
        else:
            task = value.get("task", "classification")
            if not isinstance(task, str) or task not in ("classification", "detection"):
                raise bad(name, f"task must be 'classification' or 'detection', got {_short_repr(task)}")
            if "dataset" not in value:
                raise bad(name, "needs a 'dataset' (a folder of class sub-folders, or a CSV)")
        return dict(value)
    if name in INPUT_ARGUMENTS:
        from ..frameworks.signature import SignatureError

        try:
            return input_argument(name, value)
        except SignatureError as exc:
            raise bad(name, str(exc)) from None
    if name in ("providers", "delegates", "backend", "target"):
        from ..frameworks.accelerators import AcceleratorError, normalize

        try:
            return normalize(name, value)
        except AcceleratorError as exc:
            raise bad(name, str(exc)) from None
    if name in ("counters", "hotspots"):
        if not isinstance(value, bool):
            raise bad(name, f"expected True or False, got {_short_repr(value)}")
        return value
    raise bad(name, "unknown argument")  # unreachable: names were checked against MarkerSpec's fields


def _check_marker_range(name: str, value: float, bad: BadArgument) -> None:
    """A marker argument that is an option's quantity (processes, threads, ...) takes that option's range."""
    option = MARKER_RANGES.get(name)
    why = RANGES[option].violation(value) if option else None
    if why is not None:
        raise bad(name, why)


#: the marker's and measure()'s arguments that resolve the model's inputs (frameworks/signature.py)
INPUT_ARGUMENTS = ("input_shapes", "input_dtypes", "input_values")


def input_argument(name: str, value: Any) -> Any:
    """One of INPUT_ARGUMENTS, checked and made JSON-ready; a SignatureError says what is wrong in one line."""
    from ..frameworks import signature

    return getattr(signature, f"normalize_{name}")(value)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- one measurement: measure()'s keywords > the marker > the session's settings ----------------------------------


@dataclass(frozen=True)
class MeasureArguments:
    """What a test passed to ``measure()`` (or ``compare()``, for both arms) for one measurement; None: not given."""

    threads: int | None = None
    inputs: str | None = None
    preprocess: dict[str, Any] | None = None
    prepare: str | None = None
    accuracy: dict[str, Any] | None = None
    min_samples: int | None = None
    min_time_s: float | None = None
    max_time_s: float | None = None
    input_shapes: list[int] | dict[str, list[int]] | None = None
    input_dtypes: dict[str, str] | None = None
    input_values: dict[str, Any] | None = None
    #: as a user wrote them (checked by frameworks/accelerators.py in ``measure_settings``)
    providers: Any = None
    delegates: Any = None
    backend: str | None = None
    target: str | None = None


class MeasureArgumentError(EdgeperfError, ValueError):
    """A ``measure()`` argument that cannot be used; the message names it (the test fails with this one line)."""


@dataclass(frozen=True)
class MeasureSettings:
    """One measurement's settings, each from the first layer that sets it (``measure_settings``)."""

    budget: Budget
    threads: int
    processes: int
    inputs: str | None
    preprocess: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    counters: bool
    hotspots: bool
    reference: bool  # time the machine-speed reference model between samples
    input_shapes: list[int] | dict[str, list[int]] | None
    input_dtypes: dict[str, str] | None
    input_values: dict[str, Any] | None
    accelerator: dict[str, Any]  # the accelerator arguments of this framework only (empty: its default path)


def measure_settings(spec: MarkerSpec, given: MeasureArguments, settings: Settings, framework: str) -> MeasureSettings:
    """``measure()``'s keywords over the marker's arguments over the session's settings, for ``framework``.

    Quick mode keeps its tiny budget and one process whatever the marker says (``measure()``'s own budget still
    applies); a sustained run (marker ``sustained_s`` with --edgeperf-sustained) is one process for the given time.
    Raises MeasureArgumentError for an input or accelerator keyword that is not valid.
    """
    s = settings
    budget = budget_with(marker_budget(spec, s), given.min_samples, given.min_time_s, given.max_time_s, None)
    processes = s.processes if s.quick or spec.processes is None else spec.processes
    if s.sustained_s and spec.sustained_s:
        budget = replace(budget, min_time_s=s.sustained_s, max_time_s=s.sustained_s + 60)
        processes = 1  # a sustained run is one continuous run: heating up is what it measures
    signature = _overrides(spec, given, INPUT_ARGUMENTS, input_argument, "signature")
    from ..frameworks.accelerators import ACCELERATOR_ARGUMENTS, normalize, options_for

    accelerator = options_for(framework, _overrides(spec, given, tuple(ACCELERATOR_ARGUMENTS), normalize,
                                                    "accelerators"))
    return MeasureSettings(
        budget=budget, threads=given.threads or spec.threads or s.threads or cpu_count(), processes=processes,
        inputs=given.inputs or spec.inputs, preprocess=given.preprocess or spec.preprocess,
        accuracy=given.accuracy or spec.accuracy,
        counters=bool(spec.counters if spec.counters is not None else s.counters),
        hotspots=bool(spec.hotspots if spec.hotspots is not None else s.hotspots),
        reference=s.reference and not s.disabled, accelerator=accelerator, **signature)


def _overrides(spec: MarkerSpec, given: MeasureArguments, names: tuple[str, ...],
               check: Callable[[str, Any], Any], errors: str) -> dict[str, Any]:
    """``measure()``'s arguments ``names`` checked by ``check``, else the marker's argument of the same name.

    ``errors``: which module's error ``check`` raises ("signature" or "accelerators"), turned into one line.
    """
    if errors == "signature":
        from ..frameworks.signature import SignatureError as error
    else:
        from ..frameworks.accelerators import AcceleratorError as error  # type: ignore[assignment]
    out = {}
    for name in names:
        value = getattr(given, name)
        if value is None:
            out[name] = getattr(spec, name)
            continue
        try:
            out[name] = check(name, value)
        except error as exc:
            raise MeasureArgumentError(f"measure() argument {name!r}: {exc}") from None
    return out


def marker_budget(spec: MarkerSpec, settings: Settings) -> Budget:
    """The session's budget with the marker's overrides (quick mode's tiny budget ignores the marker's)."""
    if settings.quick:
        return settings.budget
    return budget_with(settings.budget, spec.min_samples, spec.min_time_s, spec.max_time_s, spec.warmup_s)


def budget_with(budget: Budget, min_samples: int | None, min_time_s: float | None, max_time_s: float | None,
                warmup_s: float | None) -> Budget:
    """``budget`` with the given fields replaced; a maximum below the minimum time becomes twice the minimum."""
    changes: dict[str, float] = {}
    if min_samples is not None:
        changes["min_samples"] = min_samples
    if min_time_s is not None:
        changes["min_time_s"] = min_time_s
    if max_time_s is not None:
        changes["max_time_s"] = max_time_s
    if warmup_s is not None:
        changes["warmup_s"] = warmup_s
    budget = replace(budget, **changes)
    if budget.max_time_s < budget.min_time_s:
        budget = replace(budget, max_time_s=budget.min_time_s * 2)
    return budget


def clock_floor_ghz(spec: MarkerSpec | None, settings: Settings, profile_floor_ghz: float | None) -> float | None:
    """The CPU clock floor below which samples do not count: the marker's ``min_freq_ghz`` > --edgeperf-min-freq
    (or its ini key) > the device profile's floor."""
    for floor in (spec.min_freq_ghz if spec is not None else None, settings.min_freq_ghz):
        if floor is not None:
            return floor
    return profile_floor_ghz


def cpu_count() -> int:
    """The CPUs this process may run on (the default thread count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
