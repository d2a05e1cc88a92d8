"""Benchmark: issue 4's first acceptance check on the real suites, repeated: update, then compare, unchanged.

Each cycle runs ``python -m pytest suites/ --edgeperf-update-baselines`` (by default two passes of the session,
whose recordings teach each entry its run-to-run noise) and then ``--compares`` times ``python -m pytest suites/``
against the baselines it just wrote, both with ``--edgeperf-json``, in a scratch baselines directory
(``--edgeperf-baselines``), so the committed ``baselines/`` are never touched. Nothing changes between the two
runs, so every timing or memory REGRESSION in a compare run is a false alarm.

It prints, per compare run, the tests that failed and why (metric, change, reference shift), and over all runs the
between-run spread of each test's fps (sd of log fps across every update pass and compare run), and the minimum
effects the learnt noise set. Figures are in docs/explanation/benchmarks.md.

Usage:  python benchmarks/bench_suites_aa.py --cycles 1 --compares 2 --save aa.json   (~28 min, warm model cache)
        python benchmarks/bench_suites_aa.py --load aa.json         (re-judge with this checkout's verdict)
        python benchmarks/bench_suites_aa.py --cycles 1 -k digits --min-time 2   (smoke, ~3 min)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent


def run_suites(baselines: Path, out: Path, extra: list[str], update: list[str] | None
               ) -> tuple[int, list[dict[str, Any]]]:
    """One pytest run over suites/; (exit code, results from its JSON report)."""
    cmd = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           f"--edgeperf-baselines={baselines}", f"--edgeperf-json={out}", "--edgeperf-no-progress", *extra]
    if update is not None:
        cmd += ["--edgeperf-update-baselines", *update]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if not out.exists():
        sys.exit(f"bench_suites_aa: pytest wrote no JSON report (exit {proc.returncode}):\n{proc.stdout[-2000:]}")
    return proc.returncode, json.loads(out.read_text())["results"]


def key(result: dict[str, Any]) -> str:
    """The result's test id (a labelled measurement's id already ends in ``::label``), without the file."""
    return str(result["test_id"]).split("::", 1)[-1]


def noise_floors(results: list[dict[str, Any]]) -> list[float]:
    """The minimum effect the learnt run-to-run noise set on each judged result (percent; fps's)."""
    return [float(v["noise_floor_pct"]) for r in results for v in r.get("verdicts") or []
            if v["metric"] == "fps" and v.get("noise_floor_pct") is not None]


def inconclusive(results: list[dict[str, Any]]) -> int:
    return sum(1 for r in results if any(v.get("verdict") == "INCONCLUSIVE" and v.get("kind") == "timing"
                                         for v in r.get("verdicts") or []))


def false_alarms(results: list[dict[str, Any]]) -> list[list[str]]:
    """Rows (test, metric, change, reference shift, note) for every REGRESSION of a compare run."""
    rows = []
    for r in results:
        verdicts = r.get("verdicts") or []
        reference = next((v for v in verdicts if v["metric"] == "reference_ms"), None)
        shift = reference.get("change_pct") if reference else None
        for v in verdicts:
            if v.get("verdict") == "REGRESSION":
                change = v.get("change_pct")
                rows.append([key(r), v["metric"], "-" if change is None else f"{change:+.1f}%",
                             "-" if shift is None else f"{shift:+.1f}%", (v.get("note") or "")[:70]])
    return rows


def slowed(data: dict[str, Any], factor: float) -> dict[str, Any]:
    """A saved result whose model took ``factor`` times as long (its reference timings untouched): a known slowdown
    carried by this run's real noise."""
    samples = dict(data["samples"], latency_s=[x * factor for x in data["samples"]["latency_s"]])
    return dict(data, samples=samples)


def rejudge(saved: list[dict[str, Any]], slowdowns: list[float]) -> None:
    """Judge the saved compare runs again with this checkout's verdict, against entries rebuilt from the saved update
    passes (each continuing the one before, as the store does) and the device prior pooled from them; then the same
    runs made ``slowdowns`` times slower, to show what the learnt minimum effects still catch."""
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.result import Result
    from pytest_edgeperf.verdict import noise
    from pytest_edgeperf.verdict.judge import judge

    rows = []
    for run in saved:
        if run["phase"] == "update":
            entries: dict[str, Any] = {}
            for data in run["results"]:
                result = Result.from_json(data)
                entries[result.test_id] = BaselineEntry.from_result(result).continued_from(
                    entries.get(result.test_id))
            priors = {b: noise.NoisePrior.pool(noise.own_variance(e.recordings(), b) for e in entries.values())
                      for b in (True, False)}
            continue
        judged, alarms, floors = 0, [], []
        for data in run["results"]:
            result = Result.from_json(data)
            entry = entries.get(result.test_id)
            if entry is None:
                continue
            v = judge(result, entry, {}, noise_prior=priors.get)
            judged += 1
            alarms += [[key(data), m.metric, f"{m.change_pct:+.1f}%", m.note[:70]] for m in v.regressed()]
            floors += [m.noise_floor_pct for m in v.metrics if m.metric == "fps" and m.noise_floor_pct is not None]
        if alarms:
            print(tabulate(alarms, headers=["test", "metric", "change", "note"]))
        floors.sort()
        caught = []
        for factor in slowdowns:
            hits = 0
            for data in run["results"]:
                entry = entries.get(str(data["test_id"]))
                if entry is not None:
                    v = judge(Result.from_json(slowed(data, factor)), entry, {}, noise_prior=priors.get)
                    hits += any(m.metric == "fps" for m in v.regressed())
            caught.append(f"{hits}/{judged}")
        rows.append([f"{run['cycle']} {run['phase']}", judged, len({a[0] for a in alarms}),
                     f"{statistics.median(floors):.1f}% / {floors[-1]:.1f}%" if floors else "-", *caught])
    print(tabulate(rows, headers=["run (re-judged)", "results judged", "with a REGRESSION",
                                  "fps minimum effect from noise (median / max)",
                                  *(f"x{f:g} slower: fps REGRESSION" for f in slowdowns)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=1, help="update + compare cycles (default 1)")
    ap.add_argument("--compares", type=int, default=2, help="compare runs after each update (default 2)")
    ap.add_argument("--passes", type=int, default=None, help="--edgeperf-update-passes (default: the plugin's)")
    ap.add_argument("-k", dest="select", default=None, help="pytest -k expression: only some suite tests")
    ap.add_argument("--min-time", type=float, default=None, help="--edgeperf-min-time for every run")
    ap.add_argument("--save", type=Path, help="write every run's results as JSON")
    ap.add_argument("--load", type=Path, help="re-judge the runs a --save wrote, measuring nothing")
    ap.add_argument("--slowdowns", default="1.1,1.5,2",
                    help="with --load: also judge each compare run made this many times slower (default 1.1,1.5,2)")
    args = ap.parse_args()
    if args.load:
        rejudge(json.loads(args.load.read_text()), [float(x) for x in args.slowdowns.split(",") if x.strip()])
        return
    extra = (["-k", args.select] if args.select else []) + (
        [f"--edgeperf-min-time={args.min_time}"] if args.min_time else [])

    fps: dict[str, list[float]] = defaultdict(list)
    runtime: dict[str, str] = {}
    summary_rows = []
    saved: list[dict[str, Any]] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="edgeperf-aa-") as scratch:
        for cycle in range(1, args.cycles + 1):
            baselines = Path(scratch) / f"baselines{cycle}"
            update_args = [f"--edgeperf-update-passes={args.passes}"] if args.passes else []
            for phase in ["update"] + [f"compare{n}" for n in range(1, args.compares + 1)]:
                out = Path(scratch) / f"{phase}{cycle}.json"
                code, results = run_suites(baselines, out, extra, update_args if phase == "update" else None)
                saved.append({"cycle": cycle, "phase": phase, "exit": code, "results": results})
                for r in results:
                    value = (r.get("summary") or {}).get("fps")
                    if value:
                        fps[key(r)].append(float(value))
                        runtime[key(r)] = r.get("framework", "")
                print(f"cycle {cycle} {phase}: exit {code}, {len(results)} results, "
                      f"{time.time() - started:.0f} s", flush=True)
                if phase.startswith("compare"):
                    alarms = false_alarms(results)
                    judged = sum(1 for r in results if r.get("verdicts"))
                    failed_tests = len({row[0] for row in alarms})
                    floors = sorted(noise_floors(results))
                    floor = (f"{statistics.median(floors):.1f}% / {floors[-1]:.1f}%" if floors else "-")
                    summary_rows.append([f"{cycle} {phase}", judged, failed_tests, inconclusive(results), floor,
                                         code])
                    if alarms:
                        print(tabulate(alarms, headers=["test", "metric", "change", "reference", "note"]))
    if args.save:
        args.save.write_text(json.dumps(saved))

    print()
    print(tabulate(summary_rows, headers=["run", "results judged", "with a REGRESSION", "timing INCONCLUSIVE",
                                          "fps minimum effect from noise (median / max)", "pytest exit"]))
    spreads = {k: statistics.stdev(math.log(v) for v in vals) * 100 for k, vals in fps.items() if len(vals) >= 2}
    if spreads:
        ordered = sorted(spreads.values())
        print(f"\nfps spread between runs (sd of log fps over {min(len(v) for v in fps.values())}-"
              f"{max(len(v) for v in fps.values())} runs), {len(spreads)} results: median "
              f"{statistics.median(ordered):.1f}%, p75 {ordered[int(0.75 * (len(ordered) - 1))]:.1f}%, "
              f"max {ordered[-1]:.1f}%")
        by_runtime: dict[str, list[float]] = defaultdict(list)
        for k, sd in spreads.items():
            by_runtime[runtime[k]].append(sd)
        print(tabulate([[rt, len(v), f"{statistics.median(v):.1f}%"] for rt, v in sorted(by_runtime.items())],
                       headers=["runtime", "results", "median sd"]))
        worst = sorted(spreads.items(), key=lambda kv: -kv[1])[:8]
        print(tabulate([[k, f"{sd:.1f}%", " ".join(f"{x:.4g}" for x in fps[k])] for k, sd in worst],
                       headers=["most variable", "sd", "fps per run"]))


if __name__ == "__main__":
    main()
