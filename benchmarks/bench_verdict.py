"""Benchmark of the regression verdict: false alarms and detection on real plugin measurements.

Each "run" is one real plugin measurement, exactly what a CI job does: ``python -m pytest <generated test>
-p no:cacheprovider --edgeperf-json=... --edgeperf-idle-time=0 --edgeperf-cache-dir=DIR`` with the plugin's
default budget (64 samples and 10 s, unless ``--min-time`` shortens it) and its default thread count. The
test calls ``edgeperf.measure(MODEL, inputs="bench_mod:frames", prepare="bench_mod:spin")``: ``spin``
busy-waits ``BENCH_SPIN_S`` seconds inside the worker's timed window (``worker.time_with_preprocessing``)
before returning its input, so a slowdown is real extra work on every sample. A runs use the same
``prepare`` with a zero spin (identical code path); B5 / B10 spin long enough to slow the median per-sample time
by 5% / 10%, calibrated at the start of the same benchmark run (A's median, then A against a 10% spin, scaled:
the runtime's threads make the slowdown of a spin larger than the spin).

Runs are interleaved (A B5 B10 A B5 B10 ...) so machine drift hits every arm alike. With R runs per arm,
every ordered pair (A_i, A_j), i != j, is an A/A comparison (baseline A_i, current A_j: any REGRESSION is a
false alarm) and every (A_i, B_j) an A/B one. Each pair is judged by (a) ``pytest_edgeperf.verdict.judge``
exactly as the plugin does (Result from the JSON report, ``BaselineEntry.from_result`` for the baseline side)
and (b) pytest-benchmark's ``--benchmark-compare-fail=median:5%`` (fail when the median got > 5% worse).
Pairs that share a run are not independent: the report also gives the rates on disjoint pairs and a
95% interval from a bootstrap over runs (which respects that dependence).

Findings (Nov 2026, this 2-core VM; full tables in docs/explanation/benchmarks.md): with the first design (one worker
process, no reference) ~24% of A/A pairs "regressed" (pytest-benchmark's median:5%: 29%), because separate runs
differed by 4-6% (sd), 30-140x what one run's samples imply. With the plugin's defaults now (5 processes, machine
reference, trimmed between-process test): 0 of 240 A/A pairs, 97.3% of 10% slowdowns detected (pytest-benchmark on
the same runs: 5.4% / 89.1%); the verdict's statistic moved 0.62% (sd) between runs.

Usage:  python benchmarks/bench_verdict.py --runs 16 --save /tmp/verdict_runs.json.gz     (~15 s per run)
        python benchmarks/bench_verdict.py --runs 12 --processes 1 --no-reference          (the first design)
        python benchmarks/bench_verdict.py --runs 4 --min-time 2                           (smoke, ~2 min)
        python benchmarks/bench_verdict.py --load /tmp/verdict_runs.json.gz                (re-judge only)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHANNELS = 32
SIDE = 32
LAYERS = 8
ARMS = ("A", "B5", "B10")
SPIN_FRACTION = {"A": 0.0, "B5": 0.05, "B10": 0.10}

#: the worker-side module (inputs and the calibrated busy-wait ``spin``), shared with bench_ab.py
SPINWORK = Path(__file__).with_name("spinwork.py")

_TEST = '''import os

import pytest


@pytest.mark.edgeperf(frameworks=["onnxruntime"])
def test_verdict_bench(edgeperf):
    edgeperf.measure(os.environ["BENCH_MODEL"], inputs="bench_mod:frames", prepare="bench_mod:spin")
'''


def build_model(path: Path) -> None:
    """A small conv net (3x3 Conv+Relu chain on 1x32x32x32): about a millisecond per inference on x86."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i in range(LAYERS):
        w = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) / math.sqrt(CHANNELS * 9)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    shape = [1, CHANNELS, SIDE, SIDE]
    graph = helper.make_graph(
        nodes, "bench_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)


# --- measuring ---------------------------------------------------------------------------------------------
class Runner:
    """Runs the generated test under the real plugin; one call = one measurement = one Result JSON."""

    def __init__(self, workdir: Path, model: Path, args: argparse.Namespace) -> None:
        self.workdir, self.model, self.args = workdir, model, args
        (workdir / "bench_mod.py").write_text(SPINWORK.read_text())
        (workdir / "test_verdict_bench.py").write_text(_TEST)
        self.count = 0

    def run(self, spin_s: float, min_time_s: float | None = None) -> dict[str, Any]:
        self.count += 1
        out = self.workdir / f"run{self.count}.json"
        cmd = [sys.executable, "-m", "pytest", str(self.workdir / "test_verdict_bench.py"), "-q",
               "-p", "no:cacheprovider", f"--edgeperf-json={out}", "--edgeperf-idle-time=0",
               f"--edgeperf-cache-dir={self.workdir / 'cache'}", "--rootdir", str(self.workdir)]
        min_time = self.args.min_time if min_time_s is None else min_time_s
        if min_time is not None:
            cmd.append(f"--edgeperf-min-time={min_time}")
        if self.args.threads is not None:
            cmd.append(f"--edgeperf-threads={self.args.threads}")
        if self.args.processes is not None:
            cmd.append(f"--edgeperf-processes={self.args.processes}")
        if self.args.no_reference:
            cmd.append("--edgeperf-no-reference")
        env = dict(os.environ, BENCH_SPIN_S=repr(spin_s), BENCH_MODEL=str(self.model))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        load_1min = os.getloadavg()[0]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise RuntimeError(f"plugin run failed (exit {proc.returncode}): {' | '.join(tail)}")
        results = json.loads(out.read_text())["results"]
        if len(results) != 1:
            raise RuntimeError(f"expected one measurement per run, the JSON report has {len(results)}")
        result = results[0]
        out.unlink()
        result.pop("timeline", None)  # sensor readings are not judged; keeps --save files small
        result["samples"].pop("start_s", None)
        result["samples"].pop("valid", None)  # all valid on this machine (no sensors); keeps --save files small
        return {"spin_s": spin_s, "load_1min": load_1min, "wall_s": time.monotonic() - t0, "result": result}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(tempfile.gettempdir()) / "edgeperf-bench"
    cache.mkdir(exist_ok=True)
    model = cache / f"cnn_{CHANNELS}c{SIDE}x{LAYERS}.onnx"
    if not model.exists():
        build_model(model)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgeperf-bench-verdict-") as tmp:
        runner = Runner(Path(tmp), model, args)
        calib = [runner.run(0.0, args.calibration_time) for _ in range(args.calibration_runs)]
        median_s = float(np.median([np.median(c["result"]["samples"]["latency_s"]) for c in calib]))
        # A spin of x% of the median does not slow the median by exactly x% (it changes how the runtime's
        # threads wake up): measure what a 10% spin does, A and B10 back to back, and scale the spins so
        # the slowdowns the verdict is tested on are the advertised 5% and 10%.
        scale = 1.0
        for _ in range(args.calibration_runs):
            a = np.median(runner.run(0.0, args.calibration_time)["result"]["samples"]["latency_s"])
            b = np.median(runner.run(0.10 * median_s * scale, args.calibration_time)["result"]["samples"]["latency_s"])
            realised = float(b / a - 1.0)
            if realised > 0.01:
                scale *= 0.10 / realised
        spins = {arm: SPIN_FRACTION[arm] * median_s * scale for arm in ARMS}
        print(f"calibration: A median {median_s * 1e3:.3f} ms over {len(calib)} run(s); spin scale {scale:.2f} "
              f"(a 10% spin slowed the median by {realised * 100:.1f}%); spin B5 = {spins['B5'] * 1e6:.1f} us, "
              f"B10 = {spins['B10'] * 1e6:.1f} us", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
        for i in range(args.runs):
            for arm in ARMS:
                runs[arm].append(runner.run(spins[arm]))
            el = time.monotonic() - t_start
            if args.save:  # after every round, so an interrupted benchmark keeps what it measured
                save(args.save, {"calibration_median_s": median_s, "spins_s": spins, "runs": runs,
                                 "threads": args.threads, "min_time_s": args.min_time, "model": model.name,
                                 "elapsed_s": el, "processes": args.processes,
                                 "reference": not args.no_reference})
            print(f"  round {i + 1}/{args.runs}: {el:.0f} s, load {runs['A'][-1]['load_1min']:.1f}", flush=True)
    return {"calibration_median_s": median_s, "spins_s": spins, "runs": runs, "threads": args.threads,
            "min_time_s": args.min_time, "model": model.name, "elapsed_s": time.monotonic() - t_start,
            "processes": args.processes, "reference": not args.no_reference}


def save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(tmp, "wt") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


# --- judging -----------------------------------------------------------------------------------------------
def to_result(run: dict[str, Any]):
    from pytest_edgeperf.result import Result

    return Result.from_json(run["result"])


def history_for(entries: list[Any], i: int, exclude: int, count: int) -> list[dict[str, Any]]:
    """Baseline i's history: the ``count`` A runs after it (cyclically), never i itself nor the current run."""
    picked: list[dict[str, Any]] = []
    k = i
    while len(picked) < count and len(picked) < len(entries) - 2:
        k = (k + 1) % len(entries)
        if k not in (i, exclude):
            picked.append(entries[k].history_item())
    return picked


def verdict_matrices(data: dict[str, Any], alpha: float | None,
                     history: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """For each comparison kind, [i, j] = baseline run i of A vs current run j of the other arm.

    With ``history`` > 0 each baseline also holds that many other A runs as its history, as an entry recorded by
    an update with ``history + 1`` passes does, and the verdict learns the run-to-run noise from them.
    """
    from dataclasses import replace

    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.verdict.judge import judge
    from pytest_edgeperf.verdict.timing import DEFAULT_ALPHA

    a = alpha if alpha is not None else DEFAULT_ALPHA
    results = {arm: [to_result(r) for r in data["runs"][arm]] for arm in ARMS}
    entries = [BaselineEntry.from_result(r, recorded_at="-", recorded_by={}) for r in results["A"]]
    medians = {arm: [float(np.median(r.samples.valid_latencies_s())) for r in results[arm]] for arm in ARMS}
    out: dict[str, dict[str, np.ndarray]] = {}
    floors: list[float] = []
    for arm in ARMS:
        n_base, n_cur = len(entries), len(results[arm])
        ours = np.zeros((n_base, n_cur), dtype=int)  # 1 regression, 0 pass/improved, -1 inconclusive
        pb = np.zeros((n_base, n_cur), dtype=int)
        for i in range(n_base):
            for j in range(n_cur):
                if arm == "A" and i == j:
                    continue
                base = entries[i]
                if history:
                    base = replace(base, history=history_for(entries, i, j if arm == "A" else -1, history))
                v = judge(results[arm][j], base, {}, alpha=a)
                floors += [m.noise_floor_pct for m in v.metrics if m.metric == "fps" and m.noise_floor_pct is not None]
                ours[i, j] = 1 if v.overall == "REGRESSION" else (-1 if v.overall == "INCONCLUSIVE" else 0)
                pb[i, j] = medians[arm][j] > medians["A"][i] * 1.05
        out[arm] = {"ours": ours, "pb": pb}
    if floors:
        q = np.percentile(floors, [50, 95, 100])
        print(f"minimum effect the learnt run-to-run noise set (fps, {len(floors)} verdicts): median {q[0]:.1f}%, "
              f"p95 {q[1]:.1f}%, max {q[2]:.1f}% (the tolerance, 5%, applies when larger)")
    return out


def _pairs(arm: str, n_a: int, n_cur: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n_a) for j in range(n_cur) if not (arm == "A" and i == j)]


def _disjoint(arm: str, n_a: int, n_cur: int) -> list[tuple[int, int]]:
    """Pairs sharing no run: (A0, A1), (A2, A3), ... for A/A; (A_i, B_i) for A/B."""
    if arm == "A":
        return [(i, i + 1) for i in range(0, n_a - 1, 2)]
    return [(i, i) for i in range(min(n_a, n_cur))]


def rate(m: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(int(m[i, j] == 1) for i, j in pairs), len(pairs)


def bootstrap_ci(m: np.ndarray, arm: str, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the all-pairs rate, resampling runs (not pairs), so shared runs are accounted for."""
    rng = np.random.default_rng(seed)
    n_a, n_c = m.shape
    hit = (m == 1).astype(float)
    vals = []
    for _ in range(reps):
        ia = rng.integers(0, n_a, n_a)
        if arm == "A":
            sub = hit[np.ix_(ia, ia)]
            off = ia[:, None] != ia[None, :]
            vals.append(sub[off].mean() if off.any() else 0.0)
        else:
            ic = rng.integers(0, n_c, n_c)
            vals.append(hit[np.ix_(ia, ic)].mean())
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of k hits in n trials (scipy's), (0, 1) for no trials."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


# --- run-level statistics (what the rule can be built on) -------------------------------------------------
STATISTICS = {
    "p1": lambda x: np.percentile(x, 1),
    "p5": lambda x: np.percentile(x, 5),
    "p10": lambda x: np.percentile(x, 10),
    "p25": lambda x: np.percentile(x, 25),
    "median": np.median,
    "mean": np.mean,
    "p90": lambda x: np.percentile(x, 90),
    "lower-half mean": lambda x: np.sort(x)[: max(1, x.size // 2)].mean(),
}


def verdict_statistic(run: dict[str, Any], normalised: bool) -> float | None:
    """What the verdict compares between runs: the 20%-trimmed mean over processes of log(fast-half mean), each
    divided by its process's reference time when ``normalised`` (None if the run has no reference)."""
    from pytest_edgeperf.stats import trimmed_mean
    from pytest_edgeperf.verdict.location import PROCESS_TRIM

    per_process = to_result(run).process_statistics()
    if normalised and not all(ref for _, ref in per_process):
        return None
    logs = [math.log(lat / ref) if normalised else math.log(lat) for lat, ref in per_process]  # type: ignore[operator]
    mean = trimmed_mean(logs, PROCESS_TRIM)
    return None if mean is None else math.exp(mean)


def statistic_table(data: dict[str, Any]) -> list[list[str]]:
    """Per statistic: spread of A/A changes and the low end of B5/B10 changes (percent, log ratio)."""
    lat = {arm: [np.asarray(r["result"]["samples"]["latency_s"], dtype=float) for r in data["runs"][arm]]
           for arm in ARMS}
    rows = []
    stats: dict[str, Any] = dict(STATISTICS)
    for label, normalised in (("processes, raw", False), ("processes / reference", True)):
        values = {arm: [verdict_statistic(r, normalised) for r in data["runs"][arm]] for arm in ARMS}
        if all(v is not None for arm in ARMS for v in values[arm]):
            stats[f"verdict: {label}"] = values
    for name, f in stats.items():
        if isinstance(f, dict):
            v = {arm: np.array(f[arm], dtype=float) for arm in ARMS}
        else:
            v = {arm: np.array([float(f(x)) for x in lat[arm]]) for arm in ARMS}
        logs = {arm: np.log(v[arm]) for arm in ARMS}
        aa = np.array([logs["A"][j] - logs["A"][i] for i, j in _pairs("A", len(v["A"]), len(v["A"]))])
        b5 = np.subtract.outer(logs["B5"], logs["A"]).ravel()
        b10 = np.subtract.outer(logs["B10"], logs["A"]).ravel()
        pct = lambda x: (np.exp(x) - 1) * 100  # noqa: E731
        sd_run = float(np.std(logs["A"], ddof=1)) * 100
        rows.append([name, f"{sd_run:.2f}", f"{pct(np.percentile(np.abs(aa), 95)):.2f}",
                     f"{pct(np.percentile(np.abs(aa), 99)):.2f}", f"{pct(np.abs(aa).max()):.2f}",
                     f"{pct(np.median(b5)):+.1f} / {pct(np.percentile(b5, 5)):+.1f}",
                     f"{pct(np.median(b10)):+.1f} / {pct(np.percentile(b10, 5)):+.1f}"])
    return rows


def variance_table(data: dict[str, Any], blocks: int = 10, reps: int = 200) -> list[list[str]]:
    """Why per-sample tests cry wolf: the run-to-run spread of a statistic vs what one run's samples imply.

    ``within SE`` is the bootstrap standard error of the statistic from one run's samples (what a per-sample
    test like Mann-Whitney effectively assumes); ``block sd/sqrt(B)`` is the same from B time blocks of a run
    (slow drift inside the process); ``between sd`` is the observed spread across separate processes.
    """
    rng = np.random.default_rng(0)
    lat = [np.asarray(r["result"]["samples"]["latency_s"], dtype=float) for r in data["runs"]["A"]]
    rows = []
    for name in ("p1", "p5", "p10", "p25", "median", "lower-half mean"):
        f = STATISTICS[name]
        run_stat = np.log([float(f(x)) for x in lat])
        between = float(np.std(run_stat, ddof=1))
        within = float(np.mean([np.std([np.log(f(rng.choice(x, x.size))) for _ in range(reps // 4)])
                                for x in lat]))
        block = float(np.mean([np.std([np.log(f(b)) for b in np.array_split(x, blocks)], ddof=1) / math.sqrt(blocks)
                               for x in lat]))
        rows.append([name, f"{between * 100:.2f}", f"{within * 100:.2f}", f"{block * 100:.2f}",
                     f"{between / max(within, 1e-12):.1f}x"])
    return rows


def normal_extrapolation(data: dict[str, Any], name: str, tol_pct: float,
                         ks: tuple[int, ...] = (1, 3, 5, 10)) -> list[list[str]]:
    """False alarms and 10% detection for "statistic moved > tol", if each side were k processes (median).

    Normal model on log(statistic) with the A runs' between-process sd; the B10 effect is the observed median
    A->B10 change. The median of k values has sd ~ 1.25 sd / sqrt(k) (asymptotic efficiency of the median).
    """
    from scipy.stats import norm

    f = STATISTICS[name]
    logs = {arm: np.log([float(f(np.asarray(r["result"]["samples"]["latency_s"]))) for r in data["runs"][arm]])
            for arm in ARMS}
    sd = float(np.std(logs["A"], ddof=1))
    tau = math.log1p(tol_pct / 100)
    rows = []
    for k in ks:
        sd_side = sd * (1.0 if k == 1 else 1.25 / math.sqrt(k))
        sd_diff = sd_side * math.sqrt(2)
        row = [k, f"{sd_diff * 100:.2f}", f"{norm.sf(tau / sd_diff) * 100:.2f}%"]
        for arm in ("B5", "B10"):
            effect = float(np.median(logs[arm]) - np.median(logs["A"]))
            row.append(f"{norm.sf((tau - effect) / sd_diff) * 100:.1f}%")
        rows.append(row)
    return rows


def print_report(data: dict[str, Any], mats: dict[str, dict[str, np.ndarray]], alpha: float | None,
                 statistic: str = "p1") -> None:
    from tabulate import tabulate

    from pytest_edgeperf.verdict.timing import DEFAULT_ALPHA

    runs = data["runs"]
    n = {arm: len(runs[arm]) for arm in ARMS}
    samples = [len(r["result"]["samples"]["latency_s"]) for arm in ARMS for r in runs[arm]]
    statuses = [r["result"]["status"] for arm in ARMS for r in runs[arm]]
    loads = [r["load_1min"] for arm in ARMS for r in runs[arm]]
    budget = "plugin default (64 samples, 10 s)" if data["min_time_s"] is None else f"min time {data['min_time_s']} s"
    print(f"\nmodel {data['model']}, threads {data['threads'] or 'plugin default'}, budget {budget}; "
          f"runs per arm A/B5/B10 = {n['A']}/{n['B5']}/{n['B10']}, samples per run median {int(np.median(samples))} "
          f"(min {min(samples)}), statuses {sorted(set(statuses))}, 1-min load average during runs "
          f"{min(loads):.1f}-{max(loads):.1f}; A median {data['calibration_median_s'] * 1e3:.3f} ms; "
          f"measuring took {data.get('elapsed_s', 0) / 60:.1f} min; judge alpha={alpha or DEFAULT_ALPHA}")
    realised = {arm: float(np.median([np.median(r["result"]["samples"]["latency_s"]) for r in runs[arm]]))
                for arm in ARMS}
    b5, b10 = ((realised[arm] / realised["A"] - 1) * 100 for arm in ("B5", "B10"))
    print(f"realised slowdown of the median of run medians: B5 {b5:+.1f}%, B10 {b10:+.1f}%")
    lhm = STATISTICS["lower-half mean"]
    for arm in ARMS:
        cpu = np.array([r["result"].get("cpu_percent") or np.nan for r in runs[arm]], dtype=float)
        stat = np.log([float(lhm(np.asarray(r["result"]["samples"]["latency_s"]))) for r in runs[arm]])
        ok = np.isfinite(cpu)
        corr = float(np.corrcoef(stat[ok], cpu[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        print(f"{arm}: worker CPU share over the timed window {np.nanmin(cpu):.0f}-{np.nanmax(cpu):.0f}% "
              f"(100 = one core); correlation of log fast-half mean with it {corr:+.2f}")
    table = []
    labels = {"A": "A/A false alarms", "B5": "A/B 5% detected", "B10": "A/B 10% detected"}
    for arm in ARMS:
        all_pairs = _pairs(arm, n["A"], n[arm])
        disjoint = _disjoint(arm, n["A"], n[arm])
        row = [labels[arm], len(all_pairs), len(disjoint)]
        for who in ("ours", "pb"):
            m = mats[arm][who]
            k, total = rate(m, all_pairs)
            lo, hi = bootstrap_ci(m, arm)
            kd, nd = rate(m, disjoint)
            dlo, dhi = wilson(kd, nd)
            row += [f"{k / total * 100:.1f}% [{lo * 100:.1f}-{hi * 100:.1f}]",
                    f"{kd}/{nd} [{dlo * 100:.0f}-{dhi * 100:.0f}%]"]
        inconclusive = sum(int(mats[arm]["ours"][i, j] == -1) for i, j in all_pairs)
        row.append(inconclusive)
        table.append(row)
    print(tabulate(table, headers=["comparison", "pairs", "disjoint", "edgeperf (all pairs, 95% bootstrap)",
                                   "edgeperf disjoint", "pb median:5% (all pairs)", "pb disjoint",
                                   "ours INCONCL."], disable_numparse=True))
    print("Pairs sharing a run are not independent: the all-pairs rate is an unbiased estimate, its interval comes "
          "from a bootstrap over runs; the disjoint-pair counts are independent but few (Wilson 95% interval).")
    print("Targets: A/A false alarms <= 1%, 10% slowdown detected >= 95%.\n")
    print("Run-level statistics: sd of log(statistic) across A runs (%), A/A |change| percentiles, "
          "and the median / 5th percentile of the change for A->B5 and A->B10 pairs:")
    print(tabulate(statistic_table(data), headers=["statistic", "A sd %", "A/A |chg| p95 %", "p99 %", "max %",
                                                   "B5 med / p5 %", "B10 med / p5 %"], disable_numparse=True))
    print("\nWhere the A/A spread comes from (sd of log statistic, %): between separate processes, vs the standard "
          "error one run's samples imply (bootstrap; what a per-sample test assumes) and from 10 time blocks:")
    print(tabulate(variance_table(data), headers=["statistic", "between runs", "within (bootstrap)",
                                                  "block sd/sqrt(10)", "between/within"], disable_numparse=True))
    if not data.get("processes") or data.get("processes") == 1:
        print(f"\nNormal-model extrapolation for \"{statistic} moved > 5%\", if each side were the median of k "
              "worker processes:")
        print(tabulate(normal_extrapolation(data, statistic, 5.0),
                       headers=["k processes/side", "sd of change %", "A/A false alarms", "5% detected",
                                "10% detected"], disable_numparse=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=24, help="measurements per arm (A, B5, B10); default 24")
    ap.add_argument("--min-time", type=float, default=None,
                    help="--edgeperf-min-time per run (default: the plugin's, 10 s)")
    ap.add_argument("--threads", type=int, default=None, help="--edgeperf-threads (default: the plugin's)")
    ap.add_argument("--processes", type=int, default=None,
                    help="--edgeperf-processes (default: the plugin's)")
    ap.add_argument("--no-reference", action="store_true", help="pass --edgeperf-no-reference")
    ap.add_argument("--calibration-runs", type=int, default=2)
    ap.add_argument("--calibration-time", type=float, default=3.0, help="min time of calibration runs (s)")
    ap.add_argument("--alpha", type=float, default=None, help="judge alpha (default: the plugin's)")
    ap.add_argument("--statistic", default="p1", choices=sorted(STATISTICS),
                    help="statistic for the k-process extrapolation (default p1)")
    ap.add_argument("--save", type=Path, help="write the raw runs as JSON (gzip if the name ends in .gz)")
    ap.add_argument("--load", type=Path, help="re-judge saved runs instead of measuring")
    ap.add_argument("--history", type=int, default=1,
                    help="other A runs each baseline keeps as its history, the run-to-run noise is learnt from "
                         "(default 1: what the default two-pass update records; 0: single recordings)")
    args = ap.parse_args(argv)
    if args.load:
        opener = gzip.open if args.load.suffix == ".gz" else open
        with opener(args.load, "rt") as fh:
            data = json.load(fh)
    else:
        data = measure(args)
        if args.save:
            save(args.save, data)
    print(f"baselines hold {args.history} earlier A run(s) as their history (--history)")
    print_report(data, verdict_matrices(data, args.alpha, args.history), args.alpha, args.statistic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
