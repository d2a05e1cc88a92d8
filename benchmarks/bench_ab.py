"""Benchmark of interleaved A/B comparisons (paired.py + compare.py): false alarms, detection rates, wall time.

Each trial is one real interleaved comparison, exactly what ``edgeperf.compare(a, b)`` and ``--edgeperf-against``
run: ``paired.run_paired`` starts two workers (one per arm), each with the zoo model loaded and warm, and they take
ABBA turns; ``compare.judge_paired`` turns the pairs into a speed-up with a 95% interval. As in bench_verdict.py,
the B arm's extra work is real work on every sample: the test's ``prepare`` step busy-waits inside the timed
window (A busy-waits zero seconds on the same code path), calibrated per configuration as a fraction (+2%, +5%,
+10%) of A's fast-half time per inference; the mean measured ratio of those trials is reported beside it
(a runtime's threads can make the effect of a spin larger than the spin).

Every configuration (model x runtime x threads x load) runs ``--reps`` trials of each arm (A/A, +2%, +5%, +10%),
interleaved, idle and with a 1-core CPU hog (``python -c 'while True: pass'``) beside it. A trial "flags" a
regression at a gate ``max_slowdown_pct=P`` when the interval's upper bound is below 1/(1+P/100) (compare.py);
rates come with Wilson 95% intervals. One stored-baseline measurement (``measure.run_measurement``: the plugin's
default 5 processes with the machine-speed reference, same budget) is timed per configuration for the cost ratio.

Usage:  python benchmarks/bench_ab.py                                   (all: ~40 min)
        python benchmarks/bench_ab.py --models tiny_cnn,squeezenet1_1 --runtimes onnxruntime,opencv --reps 3
        python benchmarks/bench_ab.py --save /tmp/ab.json ; python benchmarks/bench_ab.py --load /tmp/ab.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pytest_edgeperf.compare import judge_paired  # noqa: E402
from pytest_edgeperf.config import Budget, Settings  # noqa: E402
from pytest_edgeperf.frameworks import model_file_for  # noqa: E402
from pytest_edgeperf.measure import MeasureRequest, run_measurement  # noqa: E402
from pytest_edgeperf.models.build import ensure_zoo_model  # noqa: E402
from pytest_edgeperf.paired import run_paired  # noqa: E402
from pytest_edgeperf.session import instruments_from  # noqa: E402

ARMS = {"A/A": 0.0, "+2%": 0.02, "+5%": 0.05, "+10%": 0.10}
GATES_PCT = (0.5, 1.0, 2.5)

_MOD = '''"""Inputs and calibrated busy-waits for bench_ab.py (run inside the workers)."""
import time

import numpy as np

SPIN_A = {spin_a!r}
SPIN_B = {spin_b!r}


def frames(shape, dtype):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(8)]


def _spin(x, spin_s, _clock=time.perf_counter):
    stop = _clock() + spin_s
    while _clock() < stop:
        pass
    return x


def spin_a(x):
    return _spin(x, SPIN_A)


def spin_b(x):
    return _spin(x, SPIN_B)
'''


def _request(name: str, framework: str, model_file: Path, threads: int, budget: Budget, arm: str,
             workdir: Path) -> MeasureRequest:
    return MeasureRequest(test_id=f"bench::{arm}", framework=framework, model=name, model_file=model_file,
                          threads=threads, budget=budget, sys_path=[str(workdir)],
                          inputs={"kind": "callable", "ref": "bench_ab_mod:frames",
                                  "prepare": f"bench_ab_mod:spin_{arm.lower()}"})


def trial(workdir: Path, name: str, framework: str, model_file: Path, threads: int, budget: Budget,
          spin_b_s: float) -> dict[str, Any]:
    (workdir / "bench_ab_mod.py").write_text(_MOD.format(spin_a=0.0, spin_b=spin_b_s))
    inst = instruments_from(Settings(rootdir=REPO, worker_timeout_s=120), "host")
    a = _request(name, framework, model_file, threads, budget, "A", workdir)
    b = _request(name, framework, model_file, threads, budget, "B", workdir)
    start = time.monotonic()
    run = run_paired(b, a, inst)  # the arm under test (B, with the extra work) against A, as a regression check
    wall = time.monotonic() - start
    est = judge_paired(run)
    return {"speedup": est.speedup, "low": est.low, "high": est.high, "pairs": est.pairs, "wall_s": wall,
            "a_turn_s": run.b_turn_s, "b_turn_s": run.a_turn_s, "cpu_wait_pct": run.a.cpu_wait_pct}


def baseline_measurement_s(workdir: Path, name: str, framework: str, model_file: Path, threads: int,
                           budget: Budget, reference: Path | None) -> float:
    (workdir / "bench_ab_mod.py").write_text(_MOD.format(spin_a=0.0, spin_b=0.0))
    req = replace(_request(name, framework, model_file, threads, budget, "A", workdir), processes=5,
                  reference_file=reference)
    start = time.monotonic()
    run_measurement(req, instruments_from(Settings(rootdir=REPO, worker_timeout_s=120), "host"))
    return time.monotonic() - start


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    cache = Path(args.cache_dir)
    budget = Budget(min_samples=10, min_time_s=args.min_time, max_time_s=args.min_time * 6, warmup_s=0.5)
    rows: list[dict[str, Any]] = []
    hog: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        workdir = Path(tmp)
        try:
            for load in args.loads.split(","):
                if load == "hog":
                    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for name in args.models.split(","):
                    stem = Path(ensure_zoo_model(name, cache / "models").stem)
                    ref_stem = Path(ensure_zoo_model("tiny_cnn", cache / "models").stem)
                    for framework in args.runtimes.split(","):
                        model_file = model_file_for(framework, stem)
                        if model_file is None:
                            print(f"skip {name} on {framework}: no file it loads", flush=True)
                            continue
                        for threads in (int(t) for t in args.threads.split(",")):
                            config = {"load": load, "model": name, "runtime": framework, "threads": threads}
                            # calibrate: A's fast-half time per inference (one A/A trial, also counted below)
                            first = trial(workdir, name, framework, model_file, threads, budget, 0.0)
                            per_inference = float(np.median(first["a_turn_s"]))
                            base_s = baseline_measurement_s(workdir, name, framework, model_file, threads, budget,
                                                            model_file_for(framework, ref_stem))
                            for rep in range(args.reps):
                                for arm, fraction in ARMS.items():
                                    if arm == "A/A" and rep == 0:
                                        out = first
                                    else:
                                        out = trial(workdir, name, framework, model_file, threads, budget,
                                                    fraction * per_inference)
                                    rows.append({**config, "arm": arm, "rep": rep, "baseline_s": base_s,
                                                 **{k: v for k, v in out.items() if not k.endswith("turn_s")}})
                                    print(json.dumps(rows[-1]), flush=True)
                if hog is not None:
                    hog.kill()
                    hog.wait()
                    hog = None
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    return rows


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def report(rows: list[dict[str, Any]]) -> None:
    table = []
    for load in sorted({r["load"] for r in rows}):
        for arm in ARMS:
            sel = [r for r in rows if r["load"] == load and r["arm"] == arm and r["high"] is not None]
            if not sel:
                continue
            slow = [(1 / r["speedup"] - 1) * 100 for r in sel]
            line = [load, arm, len(sel), f"{np.mean(slow):+.2f}", f"{np.std(slow, ddof=1) if len(sel) > 1 else 0:.2f}"]
            for gate in GATES_PCT:
                k = sum(1 for r in sel if r["high"] < 1 / (1 + gate / 100))
                lo, hi = wilson(k, len(sel))
                line.append(f"{k}/{len(sel)} = {100 * k / len(sel):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]")
            line.append(f"{np.median([r['wall_s'] for r in sel]):.1f}")
            line.append(f"{np.median([r['baseline_s'] for r in sel]):.1f}")
            table.append(line)
    headers = ["load", "arm", "trials", "slowdown % (mean)", "sd", *(f"flagged at {g:g}%" for g in GATES_PCT),
               "A/B wall s", "stored wall s"]
    print(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    print("\nflagged at P%: the 95% interval's upper bound of fps(B)/fps(A) is below 1/(1+P/100), i.e. what "
          "max_slowdown_pct=P fails on (A/A: a false alarm; +x%: a detection). Intervals: Wilson 95%.")
    by = {}
    for r in rows:
        by.setdefault((r["model"], r["runtime"], r["threads"]), []).append(r)
    print("\nconfigurations:", ", ".join(f"{m}/{rt}/{t}t" for m, rt, t in sorted(by)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="tiny_cnn,squeezenet1_1,mobilenet_v1")
    p.add_argument("--runtimes", default="onnxruntime,litert,opencv")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--loads", default="idle,hog")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timing per comparison, both arms")
    p.add_argument("--cache-dir", default=os.environ.get("EDGEPERF_CACHE", str(Path.home() / ".cache/pytest-edgeperf")))
    p.add_argument("--save")
    p.add_argument("--load")
    args = p.parse_args(argv)
    if args.load:  # a --save file, or the JSON lines a run prints (an interrupted run's log)
        text = Path(args.load).read_text()
        try:
            rows = json.loads(text)
        except ValueError:
            rows = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    else:
        rows = measure(args)
        if args.save:
            Path(args.save).write_text(json.dumps(rows))
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
