"""Benchmark of interleaved A/B comparisons against the stored-baseline verdict and pytest-benchmark's rule.

Each trial compares an arm B with A, three ways, in the same run:

* **A/B** (paired): one real interleaved comparison, exactly what ``edgeperf.compare(a, b)`` and
  ``--edgeperf-against`` run: ``paired.run_paired`` starts two workers (one per arm), each with the model loaded
  and warm, taking ABBA turns; ``compare.judge_paired`` gives fps(B)/fps(A) with a 95% interval. B "is flagged"
  at ``max_slowdown_pct=P`` when the interval's upper bound is below 1/(1+P/100) (REGRESSION, compare.py).
* **stored**: the plugin's stored-baseline verdict. A baseline of A is recorded (``measure.run_measurement``
  with the plugin's defaults: 5 processes and the machine-speed reference, the same budget), then B is measured
  the same way and judged against it (``verdict.judge`` on ``BaselineEntry.from_result``), as the plugin does.
* **pytest-benchmark**: ``--benchmark-compare-fail=median:5%`` applied to the same two stored measurements (B's
  median per-inference time more than 5% above the baseline's).

B's extra work is real work on every sample: the test's ``prepare`` busy-waits inside the timed window
(benchmarks/spinwork.py, shared with bench_verdict.py), A runs the same code with a zero wait. The wait is a
fraction (+2%, +5%, +10%) of A's per-inference time, calibrated per configuration from a first A/A comparison and
scaled by what a +10% spin did in a second one (a runtime's threads can make a spin's effect larger); the mean
measured slowdown (paired, and of the stored medians) is reported beside each arm.

Configurations are models (the suites' six architectures, ``name@input_size``; smaller inputs than the suites'
so that the grid fits) x runtimes x threads x loads (``idle``, or ``hog``: a 1-core CPU hog,
``python -c 'while True: pass'``, beside it). ``--cells all`` runs every (threads, load) cell for every
(model, runtime); the default ``--cells rotate`` gives each (model, runtime) one cell in turn, so every cell
is seen with every runtime. Rates are pooled per (load, arm) and per runtime, with Wilson 95% intervals.

Usage:  python benchmarks/bench_ab.py --out /tmp/ab.json                    (default grid: ~25 min idle, 2 cores)
        python benchmarks/bench_ab.py --models squeezenet1_1@96,tiny_cnn --runtimes onnxruntime --threads 1 \
            --loads idle --reps 1 --deltas 5                                 (smoke: ~1 min)
        python benchmarks/bench_ab.py --report /tmp/ab.json                  (report only)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from pytest_edgeperf.ab.estimate import judge_paired  # noqa: E402
from pytest_edgeperf.baseline import BaselineEntry  # noqa: E402
from pytest_edgeperf.config import Budget, Settings  # noqa: E402
from pytest_edgeperf.frameworks import model_file_for  # noqa: E402
from pytest_edgeperf.measure import MeasureRequest, run_measurement  # noqa: E402
from pytest_edgeperf.models.build import ensure_zoo_model  # noqa: E402
from pytest_edgeperf.result import Result  # noqa: E402
from pytest_edgeperf.session import instruments_from  # noqa: E402
from pytest_edgeperf.verdict.judge import judge  # noqa: E402
from pytest_edgeperf.worker.paired import MAX_BLOCKS, MIN_BLOCKS, run_paired  # noqa: E402

#: the suites' architectures (suites/test_frameworks.py) at input sizes that keep an inference near 10 ms here
DEFAULT_MODELS = "squeezenet1_1@96,mobilenet_v1@96,googlenet@64,resnet50@64,nin@96,yolov4_tiny@64"
GATES_PCT = (1.0, 2.5)  # max_slowdown_pct gates the paired trials are read at
PB_FAIL_PCT = 5.0  # pytest-benchmark's --benchmark-compare-fail=median:5%
FORMAT = {"onnxruntime": "onnx", "opencv": "onnx", "litert": "tflite"}


def _arm_request(name: str, framework: str, model_file: Path, threads: int, budget: Budget,
                 arm: str) -> MeasureRequest:
    return MeasureRequest(test_id=f"bench::{arm}", framework=framework, model=name, model_file=model_file,
                          threads=threads, budget=budget, sys_path=[str(BENCH)],
                          inputs={"kind": "callable", "ref": "spinwork:frames", "prepare": f"spinwork:spin_{arm}"})


def _spins(a_s: float, b_s: float) -> None:
    """The arms' busy-waits, read by spinwork.py in the workers started after this."""
    os.environ["BENCH_SPIN_A_S"], os.environ["BENCH_SPIN_B_S"] = repr(a_s), repr(b_s)


def paired_trial(cfg: dict[str, Any], budget: Budget, spin_b_s: float) -> dict[str, Any]:
    """B (A's model plus ``spin_b_s`` of work per inference) against A, interleaved: fps(B)/fps(A) and interval."""
    _spins(0.0, spin_b_s)
    a = _arm_request(cfg["model"], cfg["runtime"], cfg["file"], cfg["threads"], budget, "a")
    b = _arm_request(cfg["model"], cfg["runtime"], cfg["file"], cfg["threads"], budget, "b")
    start = time.monotonic()
    run = run_paired(b, a, instruments_from(Settings(rootdir=REPO, worker_timeout_s=300), "host"),
                     blocks=cfg.get("worker_pairs"))
    wall = time.monotonic() - start
    est = judge_paired(run)
    return {"speedup": est.speedup, "low": est.low, "high": est.high, "pairs": est.pairs, "turn_s": run.turn_s,
            "paired_wall_s": wall, "a_turn_median_s": float(np.median(run.b_turn_s)),
            "cpu_wait_pct": run.a.cpu_wait_pct, "worker_pairs": est.blocks, "df": est.df}


def stored_measurement(cfg: dict[str, Any], budget: Budget, spin_s: float) -> tuple[Result, float]:
    """One measurement as the plugin takes it (5 processes, machine reference), the given spin on every sample."""
    _spins(0.0, spin_s)
    req = replace(_arm_request(cfg["model"], cfg["runtime"], cfg["file"], cfg["threads"], budget, "b"),
                  processes=5, reference_file=cfg["reference"])
    start = time.monotonic()
    result = run_measurement(req, instruments_from(Settings(rootdir=REPO, worker_timeout_s=300), "host"))
    return result, time.monotonic() - start


def _median_s(result: Result) -> float:
    return float(np.median(result.samples.valid_latencies_s()))


def configurations(args: argparse.Namespace) -> list[dict[str, Any]]:
    models = [m for m in args.models.split(",") if m]
    runtimes = [r for r in args.runtimes.split(",") if r]
    cells = list(itertools.product([int(t) for t in args.threads.split(",")], args.loads.split(",")))
    out = []
    for (i, model), (j, runtime) in itertools.product(enumerate(models), enumerate(runtimes)):
        picked = cells if args.cells == "all" else [cells[(i + j) % len(cells)]]  # each runtime sees every cell
        out.extend({"spec": model, "runtime": runtime, "threads": t, "load": load} for t, load in picked)
    return out


def prepare(cfg: dict[str, Any], cache: Path) -> bool:
    """Builds the model in the runtime's format; False (said) when this runtime cannot load it."""
    name, _, size = cfg["spec"].partition("@")
    kwargs = {"input_size": int(size)} if size else {}
    fmt = FORMAT.get(cfg["runtime"], "onnx")
    try:
        stem = Path(ensure_zoo_model(name, cache / "models", formats=[fmt], **kwargs).stem)
        ref_stem = Path(ensure_zoo_model("tiny_cnn", cache / "models", formats=[fmt]).stem)
    except Exception as exc:  # an exporter missing for this format: the configuration is skipped, said why
        print(f"skip {cfg['spec']} on {cfg['runtime']}: {exc}", flush=True)
        return False
    cfg["model"], cfg["file"] = cfg["spec"], model_file_for(cfg["runtime"], stem)
    cfg["reference"] = model_file_for(cfg["runtime"], ref_stem)
    if cfg["file"] is None:
        print(f"skip {cfg['spec']} on {cfg['runtime']}: no file it loads", flush=True)
        return False
    return True


def run_config(cfg: dict[str, Any], args: argparse.Namespace, budget: Budget) -> list[dict[str, Any]]:
    """Calibration, then per rep: a baseline of A, and per arm one paired trial and one stored measurement."""
    deltas = {"A/A": 0.0, **{f"+{d:g}%": d / 100 for d in args.deltas}}
    first = paired_trial(cfg, budget, 0.0)
    per_inference = first["a_turn_median_s"]
    # A spin of x% of the inference time does not slow it by exactly x% (a runtime's idle threads go to sleep
    # during it and wake slower after): one +10% trial measures the effect, and the spins are scaled to match.
    probe = paired_trial(cfg, budget, 0.10 * per_inference)
    realised = 1 / probe["speedup"] - 1 if probe["speedup"] else 0.10
    precise = probe["high"] is not None and (probe["high"] - probe["low"]) / 2 < 0.025  # else: noise, not effect
    scale = min(1.0, max(0.1, 0.10 / realised)) if precise and realised > 0.01 else 1.0
    rows = []
    for rep in range(args.reps):
        base, base_wall = stored_measurement(cfg, budget, 0.0)
        entry = BaselineEntry.from_result(base, recorded_at="-", recorded_by={})
        for arm, fraction in deltas.items():
            spin = fraction * per_inference * scale
            paired = first if (arm == "A/A" and rep == 0) else paired_trial(cfg, budget, spin)
            current, wall = stored_measurement(cfg, budget, spin)
            verdict = judge(current, entry, {})
            rows.append({
                "model": cfg["spec"], "runtime": cfg["runtime"], "threads": cfg["threads"], "load": cfg["load"],
                "arm": arm, "rep": rep, "spin_s": spin, "spin_scale": scale, "per_inference_s": per_inference,
                **paired,
                "stored_verdict": verdict.overall, "stored_wall_s": wall, "baseline_wall_s": base_wall,
                "stored_slowdown_pct": (_median_s(current) / _median_s(base) - 1) * 100,
                "pb_fail": _median_s(current) > _median_s(base) * (1 + PB_FAIL_PCT / 100),
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_inference_s"}), flush=True)
    return rows


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    cache = Path(args.cache_dir)
    budget = Budget(min_samples=10, min_time_s=args.min_time, max_time_s=args.min_time * 6, warmup_s=0.5)
    rows: list[dict[str, Any]] = []
    configs = configurations(args)
    start = time.monotonic()
    for i, cfg in enumerate(configs, 1):
        if not prepare(cfg, cache):
            continue
        cfg["worker_pairs"] = args.worker_pairs
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if cfg["load"] == "hog" else None
        try:
            rows.extend(run_config(cfg, args, budget))
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        elapsed = time.monotonic() - start
        print(f"# config {i}/{len(configs)} done ({cfg['spec']} {cfg['runtime']} {cfg['threads']}t {cfg['load']}): "
              f"{elapsed / 60:.1f} min, about {elapsed / i * (len(configs) - i) / 60:.0f} min to go", flush=True)
        if args.out:  # after every configuration, so an interrupted run keeps what it measured
            save(Path(args.out), rows, args)
    return rows


def save(path: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("report", "out")},
                               "rows": rows}))
    os.replace(tmp, path)


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of k hits in n trials (scipy's), (0, 1) for no trials."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def _rate(hits: list[bool]) -> str:
    k, n = sum(hits), len(hits)
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def _flag(row: dict[str, Any], gate: float) -> bool:
    return row["high"] is not None and row["high"] < 1 / (1 + gate / 100)


def report(rows: list[dict[str, Any]]) -> str:
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    lines = []
    for group, key in (("load", "load"), ("runtime", "runtime")):
        table = []
        for value in sorted({r[key] for r in rows}):
            for arm in arms:
                sel = [r for r in rows if r[key] == value and r["arm"] == arm]
                if not sel:
                    continue
                slow = [(1 / r["speedup"] - 1) * 100 for r in sel if r["speedup"]]
                half = [(r["high"] - r["low"]) / 2 * 100 for r in sel if r["high"] is not None]
                table.append([
                    value, arm, len(sel),
                    f"{np.mean(slow):+.2f} (sd {np.std(slow, ddof=1) if len(slow) > 1 else 0:.2f})" if slow else "-",
                    f"{np.median(half):.2f}" if half else "-",
                    f"{np.mean([r['stored_slowdown_pct'] for r in sel]):+.2f}",
                    *(_rate([_flag(r, g) for r in sel]) for g in GATES_PCT),
                    _rate([r["stored_verdict"] == "REGRESSION" for r in sel]),
                    _rate([r["stored_verdict"] == "INCONCLUSIVE" for r in sel]),
                    _rate([bool(r["pb_fail"]) for r in sel]),
                ])
        headers = [group, "arm", "trials", "A/B slowdown % (mean)", "A/B ±% (median)", "stored slowdown % (mean)",
                   *(f"A/B flagged at {g:g}%" for g in GATES_PCT), "stored: REGRESSION", "stored: INCONCLUSIVE",
                   f"pytest-benchmark median:{PB_FAIL_PCT:g}%"]
        lines.append(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
        lines.append("")
    paired = [r["paired_wall_s"] for r in rows]
    stored = [r["stored_wall_s"] for r in rows]
    ratio = [r["paired_wall_s"] / r["stored_wall_s"] for r in rows]
    lines.append(f"Wall time per comparison: A/B {np.median(paired):.1f} s (median; both arms, one run) vs one "
                 f"stored-baseline measurement {np.median(stored):.1f} s (the stored verdict needs two: baseline and "
                 f"current); A/B / one stored measurement = {np.median(ratio):.2f}x (median), "
                 f"{np.percentile(ratio, 90):.2f}x (p90).")
    lines.append(f"Turns: {np.median([r['turn_s'] for r in rows]):.3f} s (median), "
                 f"{np.median([r['pairs'] for r in rows]):.0f} pairs (median).")
    lines.append("\nA/B flagged at P%: the 95% interval's upper bound of fps(B)/fps(A) is below 1/(1+P/100), what "
                 "max_slowdown_pct=P fails on (A/A: a false alarm; +x%: a detection). stored: the plugin's verdict "
                 "of B against a baseline of A recorded just before. Intervals: Wilson 95%.")
    configs = sorted({(r["model"], r["runtime"], r["threads"], r["load"]) for r in rows})
    lines.append(f"\n{len(configs)} configurations: " + ", ".join(f"{m}/{rt}/{t}t/{ld}" for m, rt, t, ld in configs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="zoo models, name or name@input_size, comma-separated")
    p.add_argument("--runtimes", default="onnxruntime,litert,opencv")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--loads", default="idle,hog", help="idle and/or hog (a 1-core CPU hog beside the run)")
    p.add_argument("--cells", choices=("rotate", "all"), default="rotate",
                   help="all: every threads x load cell per model and runtime; rotate: one cell each, in turn")
    p.add_argument("--reps", type=int, default=1, help="trials per arm and configuration")
    p.add_argument("--deltas", type=lambda s: [float(x) for x in s.split(",")], default=[2.0, 5.0, 10.0],
                   help="extra work of the B arms, percent of A's per-inference time (A/A always runs)")
    p.add_argument("--min-time", type=float, default=3.0, help="seconds of timing per comparison (both arms) and "
                                                                "per stored measurement")
    p.add_argument("--cache-dir", default=os.environ.get("EDGEPERF_CACHE",
                                                         str(Path.home() / ".cache/pytest-edgeperf")))
    p.add_argument("--worker-pairs", type=int, default=None,
                   help=f"worker pairs per A/B comparison, as compare(processes=N) (default: the plugin's own "
                        f"choice, {MIN_BLOCKS}-{MAX_BLOCKS} from what starting a pair costs)")
    p.add_argument("--out", help="save the raw results as JSON (after every configuration)")
    p.add_argument("--report", help="report a saved --out file instead of measuring")
    args = p.parse_args(argv)
    rows = json.loads(Path(args.report).read_text())["rows"] if args.report else measure(args)
    if rows:
        print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
