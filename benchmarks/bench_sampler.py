"""Benchmark of the sensor sampler's cost on throughput (issue 3): fps with sampling off, at 10 Hz and at 100 Hz.

The same plugin measurement (``zoo:tiny_cnn``, well under 1 ms per inference, so any CPU the sampler takes from
the worker shows) is run with ``--edgeperf-sample-hz=0`` (no timeline), ``10`` and ``100`` on a FAKE Raspberry
Pi 3 (``tests/fakedevice.py``: ``FakeDevice.pi3_cool``), so the sampler really reads the sysfs files under the
fake root and really runs the fake ``vcgencmd`` (an executable Python script) for the clock and the throttle
word at every point and for the temperature once a second; the profile is auto-detected as ``pi3`` from the
fake device-tree model. On a real Pi ``vcgencmd`` is also one process per call, so the fake is a fair stand-in
for the *number* of spawns; the cost of each differs (the fake is a Python interpreter start on x86, the real
one a small C program on a Cortex-A53; see the profile section, which measures both kinds of spawn here).

Settings are interleaved: every round runs all three, in an order rotated from round to round, so drift of this
shared machine hits each alike; the per-round ratios fps(10 Hz)/fps(off) and fps(100 Hz)/fps(off) are the
figures, their medians over rounds are compared with the 0.99 target at 10 Hz. ``--edgeperf-no-guard`` is
passed to all three (the guard runs before the timed window and would only add ~2 s of busy load per run).

A profile of one sampler point follows (``--no-profile`` skips it): each reader on the fake Pi timed in this
process, wall and CPU (own + children), and what that costs per second at 10 and 100 Hz.

Usage:  python benchmarks/bench_sampler.py                      (default: 5 rounds x 3 settings, ~4 min)
        python benchmarks/bench_sampler.py --rounds 8 --seconds 5 --threads 2 --hz 0,1,10,100
        python benchmarks/bench_sampler.py --profile-only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from bench_overhead import build_model, ratio_summary, run_plugin  # noqa: E402
from fakedevice import FakeDevice  # noqa: E402

TARGET_RATIO = 0.99


# --- the interleaved measurement -------------------------------------------------------------------------------
def timeline_stats(result: dict[str, Any]) -> dict[str, Any]:
    """What the sampler did in one run: points, achieved rate, how many readings of each kind it got."""
    tl = result["timeline"]
    window_s = (result["window_end_s"] or 0.0) - (result["window_start_s"] or 0.0)
    return {"points": len(tl), "achieved_hz": len(tl) / window_s if window_s > 0 else 0.0,
            "clock_readings": sum(p["freq_ghz"] is not None for p in tl),
            "throttle_readings": sum(p["throttled"] is not None for p in tl),
            "temp_readings": sum(p["temp_c"] is not None for p in tl)}


def measure(args: argparse.Namespace, workdir: Path, cache_dir: Path, rates: list[float]) -> list[dict[str, Any]]:
    dev = FakeDevice.pi3_cool(workdir / "fakepi3")
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    for rnd in range(args.rounds):
        k = rnd % len(rates)
        order = rates[k:] + rates[:k]
        for hz in order:
            extra = [*dev.plugin_args(), f"--edgeperf-sample-hz={hz:g}", "--edgeperf-no-guard"]
            p = run_plugin(workdir, args.runtime, args.model, cache_dir, args.threads, args.seconds, extra,
                           f"r{rnd}_{hz:g}hz")
            result = json.loads(Path(p["json_path"]).read_text())["results"][0]
            if result["device"] != "pi3":
                raise SystemExit(f"the fake Pi 3 was detected as {result['device']!r}, not 'pi3'")
            row = {"round": rnd + 1, "hz": hz, "fps": p["fps"], "fps_mean": p["fps_mean"], "fps_p10": p["fps_p10"],
                   "samples": p["samples"], "valid": p["valid"], "worker_cpu_percent": p["cpu_percent"],
                   **timeline_stats(result)}
            rows.append(row)
            print(f"  round {rnd + 1}/{args.rounds} {hz:>5g} Hz  fps {p['fps']:9.1f}  points {row['points']:4d} "
                  f"({row['achieved_hz']:5.1f}/s)  valid {p['valid']}/{p['samples']}  "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    return rows


def report(rows: list[dict[str, Any]], rates: list[float]) -> dict[str, Any]:
    from tabulate import tabulate

    table = [[r["round"], f"{r['hz']:g}", f"{r['fps']:.1f}", r["points"], f"{r['achieved_hz']:.1f}",
              r["clock_readings"], r["throttle_readings"], r["temp_readings"]] for r in rows]
    print()
    print(tabulate(table, headers=["round", "sample Hz", "fps", "points", "points/s", "clock", "throttle", "temp"],
                   tablefmt="github"))
    off = {r["round"]: r for r in rows if r["hz"] == 0}
    summary_rows, out = [], {}
    for hz in rates:
        mine = [r for r in rows if r["hz"] == hz]
        entry: dict[str, Any] = {"median_fps": float(np.median([r["fps"] for r in mine])),
                                 "median_points_per_s": float(np.median([r["achieved_hz"] for r in mine]))}
        cells = ["-", "-", "-", "-", "-"]
        if hz != 0 and off:
            paired = [(r, off[r["round"]]) for r in mine if r["round"] in off]
            st = ratio_summary([r["fps"] / o["fps"] for r, o in paired])
            st_mean = ratio_summary([r["fps_mean"] / o["fps_mean"] for r, o in paired])
            st_p10 = ratio_summary([r["fps_p10"] / o["fps_p10"] for r, o in paired])
            entry.update(ratio=st, ratio_mean=st_mean, ratio_p10=st_p10)
            cells = [f"{st['median']:.4f}", f"{st['q1']:.3f} - {st['q3']:.3f}", f"{st_mean['median']:.4f}",
                     f"{st_p10['median']:.4f}", ("yes" if st["median"] >= TARGET_RATIO else "NO")]
        out[f"{hz:g}"] = entry
        summary_rows.append([f"{hz:g}" if hz else "0 (off)", len(mine), f"{entry['median_fps']:.1f}",
                             f"{entry['median_points_per_s']:.1f}", *cells])
    print()
    print(tabulate(summary_rows, headers=["sample Hz", "rounds", "median fps", "points/s", "ratio vs off",
                                          "ratio IQR", "ratio n/sum", "ratio p10", f">= {TARGET_RATIO}"],
                   tablefmt="github"))
    print("(ratio vs off = fps / fps with sampling off in the same round, fps = 1 / median latency; 'n/sum' and "
          "'p10' use samples / summed latency and 1 / p10 latency instead)")
    return out


# --- the profile of one sampler point --------------------------------------------------------------------------
def _cost(fn: Callable[[], Any], n: int) -> dict[str, float]:
    """Wall and CPU per call; CPU is this process's (all threads) plus reaped children's, user + sys."""
    fn()  # first call: caches (cpufreq paths), page cache
    t0, s0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        fn()
    t1, s1, c1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (s1.ru_utime - s0.ru_utime) + (s1.ru_stime - s0.ru_stime)
    kids = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return {"wall_ms": (t1 - t0) / n * 1e3, "own_cpu_ms": own / n * 1e3, "child_cpu_ms": kids / n * 1e3,
            "cpu_ms": (own + kids) / n * 1e3}


def profile(workdir: Path, n: int, observed_hz: dict[float, float] | None = None) -> dict[str, Any]:
    import psutil
    from tabulate import tabulate

    from pytest_edgeperf.device.runner import CommandRunner
    from pytest_edgeperf.device.timeline import TimelineSampler

    dev = FakeDevice.pi3_cool(workdir / "fakepi3_profile")
    readers = dev.readers()
    runner = CommandRunner(timeout_s=2.0)
    proc = psutil.Process(os.getpid())
    proc.cpu_percent(interval=None)
    sampler = TimelineSampler(readers, rate_hz=10.0, pid=os.getpid())
    sampler._proc = proc  # as start() does, without starting the thread
    sampler.temp_period_s = 0.0  # every point reads the temperature too: the worst case, one point in ten at 10 Hz
    cpufreq = dev.root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"

    def read_cpufreq() -> None:
        with open(cpufreq, "rb") as f:
            f.read()

    items: list[tuple[str, Callable[[], Any], int]] = [
        ("clock_ghz() = vcgencmd measure_clock arm", readers.clock_ghz, n),
        ("throttled() = sysfs miss + vcgencmd get_throttled", readers.throttled, n),
        ("temperature_c() = vcgencmd measure_temp", readers.temperature_c, n),
        ("psutil cpu_percent(pid)", lambda: proc.cpu_percent(interval=None), n * 50),
        ("one sysfs read (scaling_cur_freq)", read_cpufreq, n * 50),
        ("sample_once(), temperature included", sampler.sample_once, n),
        ("spawn of /bin/true (a native program)", lambda: runner.run(["/bin/true"]), n),
        (f"spawn of {Path(sys.executable).name} -SE -c pass (what the fake costs)",
         lambda: runner.run([sys.executable, "-S", "-E", "-c", "pass"]), n),
    ]
    rows, out = [], {}
    for name, fn, count in items:
        c = _cost(fn, count)
        out[name] = c
        rows.append([name, count, f"{c['wall_ms']:.3f}", f"{c['own_cpu_ms']:.3f}", f"{c['child_cpu_ms']:.3f}"])
    print()
    print(tabulate(rows, headers=["reading (fake Pi 3)", "calls", "wall ms/call", "own CPU ms", "child CPU ms"],
                   tablefmt="github"))

    point = out["sample_once(), temperature included"]
    clock, thr, temp = (out[k] for k in list(out)[:3])
    # A normal point reads clock + throttle, and temperature at most once a second.
    per_point_cpu_ms = clock["cpu_ms"] + thr["cpu_ms"] + out["psutil cpu_percent(pid)"]["cpu_ms"]
    per_point_wall_ms = clock["wall_ms"] + thr["wall_ms"]
    spawn_true = out["spawn of /bin/true (a native program)"]["cpu_ms"]
    rows = []
    for hz in sorted({1.0, 10.0, 100.0} | set(observed_hz or {})):
        if hz <= 0:
            continue
        # the sampler's loop: a point slower than the period is followed by a full period's wait
        period_ms = 1e3 / hz
        model_hz = hz if per_point_wall_ms <= period_ms else 1e3 / (per_point_wall_ms + period_ms)
        seen_hz = (observed_hz or {}).get(hz)
        rate = seen_hz if seen_hz is not None else model_hz
        cpu_ms_per_s = rate * per_point_cpu_ms + min(1.0, rate) * temp["cpu_ms"]
        spawns_per_s = rate * 2 + min(1.0, rate)
        busy = min(1.0, (rate * per_point_wall_ms + min(1.0, rate) * temp["wall_ms"]) / 1e3)
        rows.append([f"{hz:g}", f"{model_hz:.1f}", "-" if seen_hz is None else f"{seen_hz:.1f}",
                     f"{spawns_per_s:.0f}", f"{cpu_ms_per_s:.0f}", f"{cpu_ms_per_s / 10:.1f} %", f"{busy:.0%}",
                     f"{spawns_per_s * spawn_true / 10:.2f} %"])
    print()
    print(tabulate(rows, headers=["asked Hz", "points/s (model)", "points/s (seen)", "vcgencmd spawns/s",
                                  "CPU ms per s", "of one core", "time a spawn runs", "same, native spawns"],
                   tablefmt="github"))
    print(f"(a point = clock + throttle + psutil: {per_point_cpu_ms:.2f} ms CPU, {per_point_wall_ms:.1f} ms wall; "
          f"plus a temperature spawn once a second; a full sample_once with temperature measured "
          f"{point['cpu_ms']:.2f} ms CPU. The machine has {os.cpu_count()} cores.)")
    return {"readers": out, "per_point_cpu_ms": per_point_cpu_ms, "per_point_wall_ms": per_point_wall_ms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of all settings (default 5)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    ap.add_argument("--hz", default="0,10,100", help="sampling rates to compare; 0 (off) is the reference")
    ap.add_argument("--runtime", default="onnxruntime", help="one runtime (default onnxruntime)")
    ap.add_argument("--model", default="tiny_cnn", help="zoo model (default tiny_cnn)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="model cache (default: a temporary directory)")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-reading profile")
    ap.add_argument("--profile-only", action="store_true", help="only the per-reading profile")
    ap.add_argument("--profile-calls", type=int, default=40, help="calls per reading in the profile (default 40)")
    ap.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    args = ap.parse_args(argv)
    rates = sorted({float(x) for x in args.hz.split(",") if x.strip()})
    if 0.0 not in rates:
        rates.insert(0, 0.0)
    if args.rounds < 1 or args.seconds <= 0 or args.threads < 1 or any(r < 0 for r in rates):
        raise SystemExit("--rounds and --threads must be >= 1, --seconds > 0 and every --hz >= 0")

    started = time.monotonic()
    data: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="edgeperf-bench-sampler-") as tmp:
        workdir = Path(tmp)
        cache_dir = args.cache_dir or workdir / "cache"
        print(f"bench_sampler: {args.runtime} on {args.model}, {args.threads} thread(s), {args.seconds:g} s per "
              f"measurement, {args.rounds} rounds of {', '.join(f'{r:g}' for r in rates)} Hz on a fake Pi 3; "
              f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        if not args.profile_only:
            build_model(args.model, cache_dir)
            data["rows"] = measure(args, workdir, cache_dir, rates)
            data["summary"] = report(data["rows"], rates)
        if not args.no_profile:
            seen = {float(k): v["median_points_per_s"] for k, v in data.get("summary", {}).items() if float(k) > 0}
            data["profile"] = profile(workdir, args.profile_calls, seen)
    elapsed = time.monotonic() - started
    data["elapsed_s"] = elapsed
    print(f"\n{datetime.date.today().isoformat()}: {elapsed:.0f} s; {os.cpu_count()} cores; load average now "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
