"""Benchmark: how much one model's speed depends on where its buffers landed (issue 18's A/B design).

An A/A comparison (the same model in both arms) should measure 1.000x. Interleaving cancels the machine's drift;
it does not cancel a difference between the two *instances* of the model: a session whose weights and arenas
landed at other addresses runs at another speed, for as long as it lives. This benchmark measures that
difference three ways, per (model, runtime), with the plugin's own adapters and input feed:

  workers   N A/A comparisons exactly as ``edgeperf.compare()`` runs them (``paired.run_paired``: two worker
            processes, one session each, 12 ABBA pairs of 0.2 s turns), each from one worker pair (blocks=1);
            per worker pair the mean log ratio. Interleaving cancels the machine's drift, so the sd across worker
            pairs is what two processes of one model differ by: the spread the A/B design's several worker
            pairs average over and its interval reports.
  session   N fresh processes each load two sessions of the same model and time them in 12 ABBA pairs of
            0.2 s turns (issue 18's 60-line check, which held both sessions in one process); per process the
            mean log ratio (second session / first). A steady sign across processes is an order effect, which
            no number of processes averages out; the sd is the per-instance effect within one process.
  reload    one process re-creates both sessions K times (alternating which is created first), 4 ABBA pairs
            each: the sd across re-creations.

Figures are percent of the model's time. Usage:

    python benchmarks/bench_layout.py                                   (default: 4 configurations, ~7 min idle)
    python benchmarks/bench_layout.py --models resnet50@64 --runtimes litert --processes 8 --json layout.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from pytest_edgeperf.config import Budget, Settings  # noqa: E402
from pytest_edgeperf.frameworks import get_adapter, model_file_for  # noqa: E402
from pytest_edgeperf.measure import MeasureRequest  # noqa: E402
from pytest_edgeperf.models.build import ensure_zoo_model  # noqa: E402
from pytest_edgeperf.session import instruments_from  # noqa: E402
from pytest_edgeperf.stats import fast_half_mean  # noqa: E402
from pytest_edgeperf.worker.child import plan_inputs  # noqa: E402
from pytest_edgeperf.worker.paired import run_paired  # noqa: E402

FORMAT = {"onnxruntime": "onnx", "opencv": "onnx", "openvino": "onnx", "litert": "tflite"}
TURN_S = 0.2
SESSION_PAIRS = 12
RELOAD_PAIRS = 4


def _session(runtime: str, model_file: Path, threads: int) -> Callable[[], Any]:
    """One loaded instance of the model and its runner, exactly as the worker makes them (random feed, seed 0)."""
    adapter = get_adapter(runtime)
    adapter.load(model_file, threads)
    _plan, _prepare, _raw, feed = plan_inputs(adapter, {"kind": "random", "seed": 0}, {}, "", [])
    return adapter.make_runner(feed)


def _turn(run: Callable[[], Any], seconds: float) -> float:
    """The fast-half mean time per inference (seconds) of one turn of ``seconds``."""
    perf, times = time.perf_counter, []
    end = perf() + seconds
    while True:
        t0 = perf()
        run()
        t1 = perf()
        times.append(t1 - t0)
        if t1 >= end and len(times) >= 3:
            return float(fast_half_mean(times) or math.nan)


def _abba(first: Callable[[], Any], second: Callable[[], Any], pairs: int) -> float:
    """Mean over ABBA pairs of log(time of ``second`` / time of ``first``)."""
    _turn(first, TURN_S)
    _turn(second, TURN_S)
    logs = []
    for k in range(pairs):
        if k % 2 == 0:
            a, b = _turn(first, TURN_S), _turn(second, TURN_S)
        else:
            b, a = _turn(second, TURN_S), _turn(first, TURN_S)
        logs.append(math.log(b / a))
    return float(np.mean(logs))


def worker_pair(cfg: dict[str, Any], threads: int) -> float:
    """One A/A comparison from one pair of worker processes, as compare() runs it: mean log(B turn / A turn)."""
    budget = Budget(min_samples=10, min_time_s=2 * SESSION_PAIRS * TURN_S, max_time_s=60.0)
    a, b = (MeasureRequest(test_id=f"layout::{arm}", framework=cfg["runtime"], model=cfg["spec"],
                           model_file=cfg["file"], threads=threads, budget=budget) for arm in "ab")
    run = run_paired(a, b, instruments_from(Settings(rootdir=REPO, worker_timeout_s=300), "host"), blocks=1)
    return float(np.mean(np.log(np.asarray(run.b_turn_s) / np.asarray(run.a_turn_s))))


def child(mode: str, runtime: str, model_file: Path, threads: int, reloads: int) -> dict[str, Any]:
    if mode == "session":
        first, second = _session(runtime, model_file, threads), _session(runtime, model_file, threads)
        return {"log_ratio": _abba(first, second, SESSION_PAIRS)}
    logs = []
    for r in range(reloads):
        a = _session(runtime, model_file, threads)
        b = _session(runtime, model_file, threads)
        logs.append(_abba(a, b, RELOAD_PAIRS) if r % 2 == 0 else -_abba(b, a, RELOAD_PAIRS))
        del a, b
        gc.collect()
    return {"log_ratios": logs}


def _spawn(mode: str, cfg: dict[str, Any], threads: int, reloads: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--runtime", cfg["runtime"],
                          "--model-file", str(cfg["file"]), "--threads", str(threads), "--reloads", str(reloads)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} {cfg['spec']} on {cfg['runtime']} failed: {out.stderr.strip()[-400:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _pct(log_value: float) -> float:
    return 100.0 * math.expm1(log_value)


def measure(cfg: dict[str, Any], processes: int, threads: int, reloads: int) -> dict[str, Any]:
    workers, sessions = [], []
    for _ in range(processes):  # the two kinds alternate, so drift hits both alike
        workers.append(worker_pair(cfg, threads))
        sessions.append(_spawn("session", cfg, threads, reloads)["log_ratio"])
    reload_logs = _spawn("reload", cfg, threads, reloads)["log_ratios"]
    return {"model": cfg["spec"], "runtime": cfg["runtime"], "threads": threads, "processes": processes,
            "workers_mean_pct": _pct(float(np.mean(workers))), "workers_sd_pct": _pct(float(np.std(workers, ddof=1))),
            "session_mean_pct": _pct(float(np.mean(sessions))), "session_sd_pct": _pct(float(np.std(sessions, ddof=1))),
            "session_positive": int(sum(s > 0 for s in sessions)),
            "reload_sd_pct": _pct(float(np.std(reload_logs, ddof=1))), "reloads": len(reload_logs),
            "raw": {"worker_pair_log_ratio": workers, "session_log_ratio": sessions, "reload_log_ratio": reload_logs}}


def report(rows: list[dict[str, Any]]) -> str:
    table = [[r["model"], r["runtime"], r["threads"], f"{r['workers_mean_pct']:+.2f}", f"{r['workers_sd_pct']:.2f}",
              f"{r['session_mean_pct']:+.2f}", f"{r['session_sd_pct']:.2f}",
              f"{r['session_positive']}/{r['processes']}", f"{r['reload_sd_pct']:.2f}"] for r in rows]
    return tabulate(table, headers=["model", "runtime", "threads", "worker pairs A/A %", "their sd %",
                                    "2nd session vs 1st %",
                                    "its sd %", "2nd slower in", "reload sd %"], tablefmt="github")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50@64,squeezenet1_1@96")
    ap.add_argument("--runtimes", default="onnxruntime,litert")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--processes", type=int, default=6, help="worker pairs, and session processes (default 6)")
    ap.add_argument("--reloads", type=int, default=8, help="re-creations in the reload process (default 8)")
    ap.add_argument("--cache-dir", type=Path, default=None, help="model cache (default: a temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--child", choices=["session", "reload"], help=argparse.SUPPRESS)
    ap.add_argument("--runtime", help=argparse.SUPPRESS)
    ap.add_argument("--model-file", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.runtime, args.model_file, args.threads, args.reloads)))
        return 0
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        rows = []
        for spec in args.models.split(","):
            name, _, size = spec.partition("@")
            for runtime in args.runtimes.split(","):
                fmt = FORMAT.get(runtime, "onnx")
                stem = ensure_zoo_model(name, cache / "models", formats=[fmt],
                                        **({"input_size": int(size)} if size else {}))
                cfg = {"spec": spec, "runtime": runtime, "file": model_file_for(runtime, Path(stem.stem))}
                rows.append(measure(cfg, args.processes, args.threads, args.reloads))
                print(report(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(report(rows))
    print(f"\n{time.strftime('%Y-%m-%d')}: {time.time() - start:.0f} s; per process {SESSION_PAIRS} turns of "
          f"{TURN_S} s; reload: {args.reloads} re-creations of {RELOAD_PAIRS} ABBA pairs")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
