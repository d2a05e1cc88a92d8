"""Baseline files: read, validate and atomically update the per-device JSON files kept in the repo.

Layout: ``<root>/<device>/<module>.json``, one file per test module, where ``<module>`` is the module's
path relative to the rootdir with ``/`` replaced by ``__`` and ``.py`` dropped
(``suites/test_arch.py`` -> ``baselines/pi4/suites__test_arch.json``; a name over 200 bytes keeps its end plus a
hash of the module path, see ``module_filename``). Inside, entries are keyed by the test name including parameters
(``test_arch[squeezenet-onnxruntime]``).

One set of rules for every stored number (``METRIC_RANGES``, ``SAMPLE_RANGES``): the reader refuses a file that
breaks them, and ``update`` checks each new entry and each whole file with the reader itself before writing, so an
update never writes what the next run refuses, and the verdict never sees a zero, negative or absurd time.

Why per module: one file per test would scatter a suite over hundreds of files; one file per device would
put every pull request's changes in the same file and make merge conflicts the norm. A module is what a
pull request usually touches, so per-module files keep diffs reviewable and conflicts rare. Files are
written with sorted keys, indent 2, sample lists on one line each, and a trailing newline, so a review
diff shows the summary numbers that moved and one line per changed sample list. Each entry also keeps a bounded
``history`` of its earlier comparable recordings (per-process statistics only, ~12 numbers each), from which the
verdict learns how far the test's timing moves between runs (``noise.py``).

Writes are atomic and merge-safe: ``update`` takes an exclusive ``flock`` on ``<root>/<device>/.lock``,
re-reads each file fresh, merges (other entries untouched), writes a temp file in the same directory,
fsyncs it, ``os.replace``\\ s it over the old file and fsyncs the directory. A killed process therefore
leaves the old file or the new one, and two processes updating the same directory lose no entry. A file
that does not parse is never overwritten by a merge: the user must fix or delete it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import math
import os
import re
import shlex
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pytest_edgeperf.fileio import atomic_write_text
from pytest_edgeperf.result import STATUS_OK, Result, comparable_environment
from pytest_edgeperf.verdict import noise

BASELINE_SCHEMA_VERSION = 1
# Raw samples kept per metric. 2000 values give a rank test plenty of power and keep one entry ~16 KB.
MAX_STORED_SAMPLES = 2000
# Significant digits kept for stored floats: far below measurement noise, and it keeps diffs short.
_STORED_DIGITS = 6
LOCK_NAME = ".lock"
_TMP_PREFIX = ".edgeperf-"
_TMP_SUFFIX = ".tmp"


class BaselineError(ValueError):
    """A baseline file or directory a user must fix; the message is one line naming the file."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- the one set of rules for stored numbers (the reader applies them, and every write is checked with them) ------
#: no stored figure is larger than this in magnitude (a counter per inference of a big model is ~1e11)
MAX_MAGNITUDE = 1e15
#: one inference's time in ms: from a nanosecond to ~11 days (the verdict divides and takes logarithms of these)
TIME_MS_RANGE = (1e-6, 1e9)
#: inferences per second, the inverse range
RATE_RANGE = (1e-6, 1e9)
PERCENT_RANGE = (0.0, 100.0)
NON_NEGATIVE_RANGE = (0.0, MAX_MAGNITUDE)
ANY_RANGE = (-MAX_MAGNITUDE, MAX_MAGNITUDE)
_TIMES_MS = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "reference_ms")
#: metric name or fnmatch pattern -> allowed closed range; a metric of a test's own (``add_metric``) not named here
#: only has to be finite and within MAX_MAGNITUDE (``model_memory_mb`` is a difference and may be negative)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "fps": RATE_RANGE,
    **dict.fromkeys(_TIMES_MS, TIME_MS_RANGE),
    **dict.fromkeys(("top1_pct", "top5_pct", "map50_pct", "cpu_wait_pct"), PERCENT_RANGE),
    **dict.fromkeys(("first_inference_ms", "preprocess_p50_ms", "inference_p50_ms", "load_time_s", "peak_memory_mb",
                     "cpu_percent", "power_mean_w", "energy_per_inference_j", "fom_*_per_j", "*_per_inference"),
                    NON_NEGATIVE_RANGE),
}
#: raw sample lists (and the same keys in ``history``): per-inference and per-process times, all positive
SAMPLE_RANGES: dict[str, tuple[float, float]] = dict.fromkeys(
    ("latency_ms", "process_latency_ms", "process_reference_ms"), TIME_MS_RANGE)


def metric_range(name: str) -> tuple[float, float]:
    """The closed range a stored metric must lie in (exact name first, then a pattern)."""
    if name in METRIC_RANGES:
        return METRIC_RANGES[name]
    for pattern, bounds in METRIC_RANGES.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return bounds
    return ANY_RANGE


def _out_of_range(value: Any, bounds: tuple[float, float]) -> bool:
    return not (_is_number(value) and bounds[0] <= value <= bounds[1])


def _range_text(bounds: tuple[float, float]) -> str:
    return f"a finite number from {bounds[0]:g} to {bounds[1]:g}"


def _check_list(where: str, values: Any, bounds: tuple[float, float]) -> None:
    if not isinstance(values, list):
        raise BaselineError(f"{where} must be a list of numbers, got {type(values).__name__}")
    for value in values:
        if _out_of_range(value, bounds):
            raise BaselineError(f"{where} holds {_shown(value)}; each value must be {_range_text(bounds)}")


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


# --- entries ------------------------------------------------------------------------------------------
def _round(x: float) -> float:
    return float(f"{x:.{_STORED_DIGITS}g}")


def decimate(values: np.ndarray | list[float], limit: int = MAX_STORED_SAMPLES) -> list[float]:
    """At most ``limit`` values, taken at evenly spaced positions in time order (deterministic).

    Evenly spaced picks keep both the distribution and the time structure (warm-up drift, throttling)
    visible, and the same input always stores the same output, so re-recording unchanged data gives
    an empty diff.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size > limit:
        idx = np.linspace(0, arr.size - 1, limit).round().astype(int)
        arr = arr[idx]
    return [_round(float(v)) for v in arr]


def default_recorded_by(environment: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Who/what recorded a baseline: host, command line and git commit (if the environment has one)."""
    env = environment or {}
    commit = env.get("git_commit") or env.get("commit") or ""
    return {
        "host": socket.gethostname(),
        "command": shlex.join(["pytest", *sys.argv[1:]]) if sys.argv else "",
        "git_commit": str(commit),
    }


def recordable_reason(result: Result) -> str | None:
    """Why a result must NOT become a baseline (quick, not ok, no valid samples), or None if it may."""
    if result.quick:
        return "quick run (--edgeperf-quick) results are never recorded as baselines"
    if result.status != STATUS_OK:
        return f"status is {result.status!r}" + (f": {result.status_reason}" if result.status_reason else "")
    if result.valid_count == 0:
        return "no valid samples"
    return None


def busy_warning(result: Result, max_cpu_wait_pct: float) -> str | None:
    """What to say about a baseline recorded on a busy machine, or None when the machine was not busy.

    The verdict never judges timing against a baseline whose worker queued for a CPU more than the limit
    (``--edgeperf-max-cpu-wait``): such a recording still gates accuracy and memory, so it is stored, with this
    warning in the file (``warnings``) and in the update's summary, never silently.
    """
    pct = result.cpu_wait_pct
    if pct is None or pct <= max_cpu_wait_pct:
        return None
    return (f"recorded on a busy machine (the worker waited for a CPU {pct:.0f}% of its runnable time, limit "
            f"{max_cpu_wait_pct:g}%, --edgeperf-max-cpu-wait): timing is not judged against this baseline "
            "(INCONCLUSIVE) until it is re-recorded on an idle machine; accuracy and memory are")


@dataclass
class BaselineEntry:
    """What one test recorded: summary metrics, bounded raw valid samples, environment, provenance."""

    metrics: dict[str, float]
    samples: dict[str, list[float]] = field(default_factory=dict)  # "latency_ms": per-inference, valid only
    sample_count: int = 0  # valid samples measured (before decimation)
    environment: dict[str, Any] = field(default_factory=dict)
    recorded_at: str = ""  # ISO-8601 UTC
    recorded_by: dict[str, str] = field(default_factory=dict)
    quick: bool = False
    # earlier comparable recordings, newest first: {"recorded_at", "process_latency_ms", "process_reference_ms"};
    # what the run-to-run noise is learnt from (noise.py), at most noise.HISTORY_LIMIT of them
    history: list[dict[str, Any]] = field(default_factory=list)
    # what a reader of the file must know about this recording (a busy machine), one line each
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_result(
        cls,
        result: Result,
        *,
        recorded_at: str | None = None,
        recorded_by: dict[str, str] | None = None,
        max_samples: int = MAX_STORED_SAMPLES,
    ) -> BaselineEntry:
        """Snapshot a Result; check ``recordable_reason`` first (this does not refuse quick/invalid runs)."""
        lat_ms = result.samples.valid_latencies_s() * 1e3
        env = comparable_environment(result)
        samples: dict[str, list[float]] = {"latency_ms": decimate(lat_ms, max_samples)} if lat_ms.size else {}
        per_process = result.process_statistics()
        if per_process:
            # what the verdict compares between runs: each process's fast-half mean, and its reference's
            samples["process_latency_ms"] = [_round(a) for a, _ in per_process]
            if all(b is not None for _, b in per_process):
                samples["process_reference_ms"] = [_round(b) for _, b in per_process]  # type: ignore[arg-type]
        return cls(
            metrics={k: _round(v) for k, v in sorted(result.metric_values().items())},
            samples=samples,
            sample_count=int(lat_ms.size),
            environment=_jsonable(env),
            recorded_at=recorded_at or datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            recorded_by=recorded_by if recorded_by is not None else default_recorded_by(env),
            quick=bool(result.quick),
        )

    def metric_samples(self, name: str) -> np.ndarray | None:
        """Raw values behind a timing metric, mirroring ``Result.metric_samples`` (None for scalars)."""
        lat = np.asarray(self.samples.get("latency_ms", []), dtype=float)
        if name == "fps":
            return 1e3 / lat[lat > 0]
        if name in ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms"):
            return lat
        return None

    def process_statistics(self) -> list[tuple[float, float | None]]:
        """Per worker process (fast-half mean ms, reference ms or None), mirroring ``Result.process_statistics``."""
        lat = self.samples.get("process_latency_ms", [])
        ref = self.samples.get("process_reference_ms", [])
        if len(ref) != len(lat):
            ref = [None] * len(lat)  # type: ignore[list-item]
        return list(zip(lat, ref, strict=True))

    def recordings(self) -> list[list[tuple[float, float | None]]]:
        """This entry's per-process statistics, then those of each earlier recording in its history."""
        out = [self.process_statistics()]
        for item in self.history:
            lat, ref = item.get("process_latency_ms", []), item.get("process_reference_ms", [])
            out.append(list(zip(lat, ref if len(ref) == len(lat) else [None] * len(lat), strict=True)))
        return [r for r in out if r]

    def history_item(self) -> dict[str, Any]:
        """What this recording leaves in the history of the entry that replaces it."""
        item: dict[str, Any] = {"recorded_at": self.recorded_at}
        for key in ("process_latency_ms", "process_reference_ms"):
            if self.samples.get(key):
                item[key] = list(self.samples[key])
        return item

    def continued_from(self, old: BaselineEntry | None) -> BaselineEntry:
        """This entry with ``old`` and its history as its history, when they are comparable runs of one test.

        A different model, runtime (version), thread count, machine or timing budget starts afresh: the noise of
        the old set-up says nothing about the new one. Bounded by noise.HISTORY_LIMIT, oldest dropped.
        """
        if (old is None or old.quick or not old.samples.get("process_latency_ms")
                or not noise.history_comparable(old.environment, self.environment)):
            return self
        return replace(self, history=[old.history_item(), *old.history][: noise.HISTORY_LIMIT])

    def to_json(self) -> dict[str, Any]:
        extra = {"warnings": list(self.warnings)} if self.warnings else {}
        return {
            **extra,
            "history": [dict(sorted(h.items())) for h in self.history],
            "metrics": dict(sorted(self.metrics.items())),
            "samples": {k: list(v) for k, v in sorted(self.samples.items())},
            "sample_count": self.sample_count,
            "environment": self.environment,
            "recorded_at": self.recorded_at,
            "recorded_by": self.recorded_by,
            "quick": self.quick,
        }

    @classmethod
    def from_json(cls, data: Any) -> BaselineEntry:
        """Validate and build an entry; a wrong shape raises BaselineError (callers add the file name)."""
        if not isinstance(data, dict):
            raise BaselineError(f"entry is a {type(data).__name__}, expected an object")
        missing = [k for k in ("metrics", "environment", "recorded_at") if k not in data]
        if missing:
            raise BaselineError(f"entry is missing field(s) {', '.join(missing)}")
        metrics = data["metrics"]
        if not isinstance(metrics, dict):
            raise BaselineError("'metrics' must map metric names to finite numbers")
        for name, value in metrics.items():
            bounds = metric_range(name)
            if _out_of_range(value, bounds):
                raise BaselineError(f"'metrics': {name!r} is {_shown(value)}; it must be {_range_text(bounds)}")
        samples = data.get("samples", {})
        if not isinstance(samples, dict):
            raise BaselineError("'samples' must map names to lists of finite numbers")
        for name, values in samples.items():
            _check_list(f"'samples': {name!r}", values, SAMPLE_RANGES.get(name, ANY_RANGE))
        env = data["environment"]
        if not isinstance(env, dict):
            raise BaselineError("'environment' must be an object")
        recorded_at = data["recorded_at"]
        if not isinstance(recorded_at, str):
            raise BaselineError("'recorded_at' must be an ISO-8601 string")
        recorded_by = data.get("recorded_by", {})
        if not isinstance(recorded_by, dict):
            raise BaselineError("'recorded_by' must be an object")
        count = data.get("sample_count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BaselineError("'sample_count' must be a non-negative integer")
        quick = data.get("quick", False)
        if not isinstance(quick, bool):
            raise BaselineError("'quick' must be true or false")
        warnings = data.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise BaselineError("'warnings' must be a list of strings")
        history = data.get("history", [])
        if not isinstance(history, list):
            raise BaselineError("'history' must be a list of earlier recordings")
        for i, item in enumerate(history):
            _check_history_item(f"'history' item {i}", item)
        return cls(
            metrics={k: float(v) for k, v in metrics.items()},
            samples={k: [float(x) for x in v] for k, v in samples.items()},
            sample_count=count,
            environment=env,
            recorded_at=recorded_at,
            recorded_by={str(k): str(v) for k, v in recorded_by.items()},
            quick=quick,
            warnings=list(warnings),
            history=[{"recorded_at": h["recorded_at"],
                      **{k: [float(x) for x in h[k]] for k in ("process_latency_ms", "process_reference_ms") if k in h}}
                     for h in history],
        )


def _without_history(entry: BaselineEntry) -> dict[str, Any]:
    data = entry.to_json()
    data.pop("history")
    return data


def _check_history_item(where: str, item: Any) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("recorded_at"), str):
        raise BaselineError(f"{where} must be an object with 'recorded_at' (a string) and 'process_latency_ms'")
    if not item.get("process_latency_ms"):
        raise BaselineError(f"{where} must have 'process_latency_ms', a non-empty list of times")
    for key in ("process_latency_ms", "process_reference_ms"):
        if key in item:
            _check_list(f"{where}: {key!r}", item[key], SAMPLE_RANGES[key])


def _is_number(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer too large for a float
        return False


def _jsonable(obj: Any) -> Any:
    """Environment values as plain JSON types (numpy scalars, paths and tuples turn up in practice)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return str(obj)


# --- change report -------------------------------------------------------------------------------------
@dataclass
class Change:
    """What an update did to one entry: added, updated (with old/new metrics) or unchanged."""

    file: Path
    test: str  # key inside the file, e.g. "test_arch[squeezenet-onnxruntime]"
    kind: str  # "added" | "updated" | "unchanged"
    old_metrics: dict[str, float] = field(default_factory=dict)
    new_metrics: dict[str, float] = field(default_factory=dict)


def describe_changes(changes: list[Change]) -> str:
    """Human summary of an update: one line per test, metric moves as ``fps 30.1 -> 28.4 (-5.6%)``."""
    if not changes:
        return "edgeperf: no baselines recorded"
    lines = []
    for ch in changes:
        head = f"{ch.file}: {ch.test}"
        if ch.kind == "added":
            shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(ch.new_metrics.items()))
            lines.append(f"{head}: added ({shown})" if shown else f"{head}: added")
            continue
        moves = []
        for name in sorted(set(ch.old_metrics) | set(ch.new_metrics)):
            old, new = ch.old_metrics.get(name), ch.new_metrics.get(name)
            if old == new:
                continue
            if old is None:
                moves.append(f"{name} new {_fmt(new)}")
            elif new is None:
                moves.append(f"{name} dropped (was {_fmt(old)})")
            else:
                pct = f" ({(new - old) / abs(old) * 100:+.1f}%)" if old else ""
                moves.append(f"{name} {_fmt(old)} -> {_fmt(new)}{pct}")
        lines.append(f"{head}: {'updated: ' + ', '.join(moves) if moves else 'unchanged metrics'}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


# --- files ---------------------------------------------------------------------------------------------
_DEVICE_OK = re.compile(r"[^A-Za-z0-9._-]+")


def device_dirname(device: str) -> str:
    """A device name as a safe directory name (``Raspberry Pi 4`` -> ``Raspberry-Pi-4``)."""
    name = _DEVICE_OK.sub("-", device.strip()).strip("-.")
    if not name:
        raise BaselineError(f"device name {device!r} cannot be used as a baseline directory name")
    return name


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """``suites/test_a.py::Cls::test_x[p]`` -> (``suites/test_a.py``, ``Cls::test_x[p]``)."""
    module, sep, test = nodeid.partition("::")
    return (module, test) if sep else (module, nodeid)


#: longest baseline file name, in bytes: 255 (the usual NAME_MAX) less room for the temp file a write goes through
#: (``.edgeperf-<name>.<random>.tmp``)
MAX_FILENAME_BYTES = 200
_NAME_HASH_CHARS = 16


def module_filename(module: str) -> str:
    """Module path relative to rootdir -> file name inside the device directory.

    ``suites/test_a.py`` -> ``suites__test_a.json``. A name longer than MAX_FILENAME_BYTES keeps the end of that
    readable name (the test file is the end) and adds a hash of the whole module path
    (``...__deep__test_x-<16 hex>.json``), so every legal module path maps to a legal, stable name; short names
    are as they always were, so committed baselines still load.
    """
    stem = module[:-3] if module.endswith(".py") else module
    readable = stem.replace("\\", "/").strip("/").replace("/", "__")
    name = readable + ".json"
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_FILENAME_BYTES:
        return name
    digest = hashlib.sha256(module.encode("utf-8", "surrogateescape")).hexdigest()[:_NAME_HASH_CHARS]
    room = MAX_FILENAME_BYTES - len(f"-{digest}.json")
    tail = readable.encode("utf-8", "surrogateescape")[-room:].decode("utf-8", "ignore").lstrip("_")
    return f"{tail}-{digest}.json"


def _dumps(obj: Any, level: int = 0) -> str:
    """JSON with indent 2 and sorted keys, but flat lists (samples) on one line: short, stable diffs."""
    pad = "  " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_dumps(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [f"{pad}{_dumps(v, level + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(obj, allow_nan=False, separators=(", ", ": "))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_file(path: Path, raw: bytes, device: str, module: str | None,
                allow_empty: bool = False) -> dict[str, BaselineEntry]:
    """Decode one baseline file (data only, no object hooks), checking schema, device and module (unless None).

    Every value goes through ``BaselineEntry.from_json``, the same rules every write is checked with. An empty
    file is an error, except to an update (``allow_empty``), which may record into it: it holds nothing to lose.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not UTF-8 text; fix or delete the file") from None
    if not text.strip():
        if allow_empty:  # nothing in it to lose: an update records into it
            return {}
        raise BaselineError(f"{path}: file is empty; delete it or re-record with --edgeperf-update-baselines")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        reason = _one_line(exc)
        raise BaselineError(f"{path}: not valid JSON ({reason}); fix the JSON or delete the file") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{path}: top level is a {type(data).__name__}, expected an object")
    version = data.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: schema_version is {version!r}, this pytest-edgeperf reads {BASELINE_SCHEMA_VERSION}; "
            "use the pytest-edgeperf that wrote it, or delete the file and re-record with --edgeperf-update-baselines"
        )
    if data.get("device") != device:
        raise BaselineError(
            f"{path}: recorded for device {data.get('device')!r}, not {device!r}; move it to that "
            "device's directory or delete it"
        )
    if module is not None and "module" in data and data["module"] != module:
        raise BaselineError(
            f"{path}: holds baselines of module {data['module']!r}, not {module!r} (file name clash); "
            "rename one of the modules"
        )
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise BaselineError(f"{path}: missing field 'entries' (an object keyed by test name)")
    out: dict[str, BaselineEntry] = {}
    for key, value in entries.items():
        try:
            out[key] = BaselineEntry.from_json(value)
        except BaselineError as exc:
            raise BaselineError(f"{path}: entry {key!r}: {exc}; fix or delete that entry (or the file), then "
                                "re-record with --edgeperf-update-baselines") from None
    return out


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive flock on ``<directory>/.lock``: serialises updates from several processes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        reason = _os_reason(exc)
        raise BaselineError(f"{directory}: cannot create or lock baselines here ({reason})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or str(exc)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a crash at any point leaves the old file or the new one."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    try:  # temp names carry _TMP_PREFIX so a later update can sweep what a killed writer left
        atomic_write_text(path, text, mode=mode, tmp_prefix=_TMP_PREFIX + path.name + ".")
    except OSError as exc:
        reason = _os_reason(exc)
        raise BaselineError(f"{path}: cannot write baseline ({reason}); the old file is unchanged") from None


def _remove_stale_temps(directory: Path) -> None:
    """Temp files left by a killed writer. Only called under the lock, so no live writer owns one."""
    for stale in directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()


class BaselineStore:
    """The baselines of one device under one root directory (``--edgeperf-baselines``)."""

    def __init__(self, root: Path, device: str, *, updating: bool = False) -> None:
        self.root = Path(root)
        self.device = device
        self.updating = updating  # --edgeperf-update-baselines: an empty file reads as one without entries
        self.directory = self.root / device_dirname(device)
        self._cache: dict[Path, dict[str, BaselineEntry]] = {}
        self._priors: dict[bool, noise.NoisePrior | None] = {}

    def path_for(self, nodeid: str) -> Path:
        return self.directory / module_filename(split_nodeid(nodeid)[0])

    def _read(self, path: Path, module: str, allow_empty: bool) -> dict[str, BaselineEntry]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BaselineError(f"{path}: cannot read baseline ({_os_reason(exc)})") from None
        return _parse_file(path, raw, self.device, module, allow_empty=allow_empty)

    def lookup(self, nodeid: str) -> BaselineEntry | None:
        """The recorded entry for a test id, None if none; a bad file raises BaselineError (read once)."""
        module, test = split_nodeid(nodeid)
        path = self.path_for(nodeid)
        if path not in self._cache:
            self._cache[path] = self._read(path, module, self.updating)
        return self._cache[path].get(test)

    def update(self, entries: Mapping[str, BaselineEntry]) -> list[Change]:
        """Merge entries (keyed by node id) into their module files; returns what changed, per test.

        All affected files are re-read and validated under the lock before any is written, so a corrupt
        file aborts the whole update and nothing is half-applied. What is written is checked with the reader's
        own rules first (each new entry, then each whole file): an entry the reader would refuse (a zero or
        negative time, a value out of range) aborts the update naming it, and no file is written.
        """
        by_file: dict[Path, tuple[str, dict[str, BaselineEntry]]] = {}
        for nodeid, entry in entries.items():
            module, test = split_nodeid(nodeid)
            path = self.path_for(nodeid)
            try:
                BaselineEntry.from_json(entry.to_json())
            except BaselineError as exc:
                raise BaselineError(f"{path}: entry {test!r} not recorded: {exc}") from None
            by_file.setdefault(path, (module, {}))[1][test] = entry
        if not by_file:
            return []
        changes: list[Change] = []
        with _locked(self.directory):
            _remove_stale_temps(self.directory)
            current = {path: self._read(path, module, True) for path, (module, _) in sorted(by_file.items())}
            texts: dict[Path, tuple[str, dict[str, BaselineEntry]]] = {}
            for path, (module, new) in sorted(by_file.items()):
                merged = dict(current[path])
                for test, entry in sorted(new.items()):
                    old = merged.get(test)
                    same = old is not None and _without_history(old) == _without_history(entry)
                    kind = "added" if old is None else ("unchanged" if same else "updated")
                    changes.append(Change(path, test, kind, dict(old.metrics) if old else {},
                                          dict(entry.metrics)))
                    # the same recording stored again does not count twice toward the noise
                    merged[test] = old if same and old is not None else entry.continued_from(old)
                doc = {
                    "schema_version": BASELINE_SCHEMA_VERSION,
                    "device": self.device,
                    "module": module,
                    "entries": {k: merged[k].to_json() for k in sorted(merged)},
                }
                try:
                    text = _dumps(doc) + "\n"
                except ValueError as exc:  # a NaN or infinity that slipped past the entry check
                    raise BaselineError(f"{path}: not written: {_one_line(exc)}") from None
                _parse_file(path, text.encode("utf-8"), self.device, module)  # the reader must accept it
                texts[path] = (text, merged)
            for path, (text, merged) in texts.items():
                _atomic_write(path, text)
                self._cache[path] = merged
        self._priors.clear()
        return changes

    def noise_prior(self, by_reference: bool) -> noise.NoisePrior | None:
        """The pooled run-to-run variance of every entry of this device (all module files), read once.

        A file that does not parse is left out here; the tests it holds report it when they look it up.
        """
        if by_reference not in self._priors:
            per_test = []
            for path in sorted(self.directory.glob("*.json")):
                try:
                    entries = self._cache.get(path)
                    if entries is None:
                        entries = _parse_file(path, path.read_bytes(), self.device, None)
                except (BaselineError, OSError):
                    continue
                per_test += [noise.own_variance(e.recordings(), by_reference) for e in entries.values()]
            self._priors[by_reference] = noise.NoisePrior.pool(per_test)
        return self._priors[by_reference]
