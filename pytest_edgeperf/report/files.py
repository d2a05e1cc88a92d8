"""Result files written at the end of a run: our JSON (raw samples + environment), pytest-benchmark JSON, HTML.

The pytest-benchmark form carries ``machine_info``, ``commit_info`` and ``benchmarks[].fullname/stats`` so that
github-action-benchmark (``tool: pytest``) and Bencher's ``python_pytest`` adapter read it unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import EdgeperfError
from ..fileio import atomic_write_text
from ..schema import RESULTS_SCHEMA_VERSION

if TYPE_CHECKING:
    from ..result import Result
    from ..session import EdgeperfSession


def results_payload(session: EdgeperfSession) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "tool": "pytest-edgeperf",
        "version": __version__,
        "created_unix": time.time(),
        "device": {"profile": session.profile.name, "model": session.readers.model(),
                   "start": session.device_start, "unavailable": list(session.unavailable)},
        "environment": session.environment,
        "results": [r.to_json() for r in session.results],
    }


def benchmark_payload(session: EdgeperfSession) -> dict[str, Any]:
    env = session.environment
    benchmarks = []
    for r in session.results:
        lat = r.samples.valid_latencies_s()
        if lat.size == 0:
            continue
        q1, median, q3 = (float(v) for v in np.percentile(lat, [25, 50, 75]))
        iqr = q3 - q1
        mean, stddev = float(lat.mean()), float(lat.std(ddof=1)) if lat.size > 1 else 0.0
        name = r.test_id.split("::", 1)[-1]
        benchmarks.append({
            "group": r.model, "name": name, "fullname": r.test_id, "params": {"framework": r.framework},
            "param": r.framework,
            "extra_info": _extra_info(r),
            "options": {"timer": "perf_counter", "disable_gc": True, "warmup": True, "min_rounds": len(lat)},
            "stats": {"min": float(lat.min()), "max": float(lat.max()), "mean": mean, "stddev": stddev,
                      "rounds": int(lat.size), "median": median, "iqr": iqr, "q1": q1, "q3": q3,
                      "iqr_outliers": int(((lat < q1 - 1.5 * iqr) | (lat > q3 + 1.5 * iqr)).sum()),
                      "stddev_outliers": int((np.abs(lat - mean) > stddev).sum()),
                      "outliers": "", "ld15iqr": float(lat[lat >= q1 - 1.5 * iqr].min()),
                      "hd15iqr": float(lat[lat <= q3 + 1.5 * iqr].max()), "ops": 1.0 / mean if mean else 0.0,
                      "total": float(lat.sum()), "iterations": 1},
        })
    uname = platform.uname()
    return {
        "machine_info": {"node": uname.node, "processor": uname.processor or env.get("cpu"),
                         "machine": uname.machine, "python_compiler": platform.python_compiler(),
                         "python_implementation": platform.python_implementation(),
                         "python_implementation_version": platform.python_version(),
                         "python_version": platform.python_version(), "python_build": list(platform.python_build()),
                         "release": uname.release, "system": uname.system,
                         "cpu": {"brand_raw": env.get("cpu"), "count": env.get("cpu_count"), "arch": uname.machine},
                         "edgeperf_device": session.profile.name},
        "commit_info": {"id": env.get("git_commit"), "time": None, "author_time": None, "dirty": None,
                        "project": session.settings.rootdir.name, "branch": None},
        "benchmarks": benchmarks,
        "datetime": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "version": "4.0.0",
    }


def _extra_info(result: Result) -> dict[str, Any]:
    """Every metric, plus the verdict as the test's outcome has it (FAIL with the breached limit)."""
    from .outcome import describe_limit, verdict_of

    info: dict[str, Any] = dict(result.metric_values())
    info.update(device=result.device, verdict=verdict_of(result), baseline_verdict=result.overall_verdict)
    if result.verdict_reason:
        info["verdict_reason"] = result.verdict_reason
    if result.failed_limits():
        info["failed_limits"] = "; ".join(describe_limit(c) for c in result.failed_limits())
    if result.input_shape:
        info["input_shape"] = "x".join(map(str, result.input_shape))
    return info


def write_output_files(session: EdgeperfSession) -> None:
    s = session.settings
    if s.json_path is not None:
        atomic_write_text(s.json_path, json.dumps(results_payload(session), separators=(",", ":")) + "\n")
    if s.benchmark_json_path is not None:
        atomic_write_text(s.benchmark_json_path, json.dumps(benchmark_payload(session), indent=2) + "\n")
    if s.html_path is not None:
        from .html import write_html_report

        write_html_report(results_payload(session), s.html_path, baselines=_baselines_for_html(session))


def _baselines_for_html(session: EdgeperfSession) -> dict[str, dict[str, Any]]:
    """The baseline latencies each result was judged against, keyed by test id in the baseline entry's JSON form.

    Carried on the Result by the verdict (``TestVerdict.apply_to``): the baseline is not looked up a second time.
    """
    return {r.test_id: {"samples": {"latency_ms": list(r.baseline_latency_ms)}}
            for r in session.results if r.baseline_latency_ms}


class InputError(EdgeperfError, ValueError):
    """Input a user must fix (missing file, not JSON, wrong shape); the message is one line naming it."""


def load_results(path: Path) -> dict[str, Any]:
    """Read and shape-check a ``--edgeperf-json`` file; every problem is an InputError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(f"{path}: not valid JSON ({where}: {exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise InputError(f"{path}: not a pytest-edgeperf results file (no 'results' list); "
                         "write one with --edgeperf-json=PATH")
    version = data.get("schema_version", RESULTS_SCHEMA_VERSION)
    if version != RESULTS_SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version {version!r} is not supported "
                         f"(this edgeperf reads {RESULTS_SCHEMA_VERSION})")
    for index, result in enumerate(data["results"]):
        if not isinstance(result, dict) or not isinstance(result.get("test_id"), str):
            raise InputError(f"{path}: results[{index}] is not a result object with a 'test_id'")
    return data
