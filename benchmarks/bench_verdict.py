"""Benchmark of the regression verdict: false-alarm and detection rates on real, separate runs.

Each run is a fresh Python subprocess that loads a tiny ONNX model (built once with onnx.helper and
cached in a temp dir) in onnxruntime (``intra_op_num_threads`` set, ``session.intra_op.allow_spinning``
= "0"), warms up, then times batch-1 inferences for ``--min-time`` seconds (and at least 64) and prints
the per-sample latencies as JSON. Runs are scheduled in blocks ``A, B5, A, B10`` so machine drift hits
every kind alike. B runs add a busy-spin inside each timed iteration equal to 5% / 10% of A's median,
calibrated from a few A runs at the start of the same benchmark run.

Pairs (each judged as "current vs baseline"):
  A/A   the two A runs of a block, judged in both orders (no change: any REGRESSION is a false alarm)
  A/B5  first A as baseline, B5 as current (a real 5% slowdown)
  A/B10 second A as baseline, B10 as current (a real 10% slowdown)
Every pair is judged by (a) ``pytest_edgeperf.verdict.judge`` on Results built from the raw samples
(through a BaselineEntry, as the plugin does) and (b) pytest-benchmark's
``--benchmark-compare-fail=median:5%`` rule (fail when the median got more than 5% worse).
``--pytest-benchmark-confirm N`` additionally runs N real pytest-benchmark A/A and A/B10 comparisons.

Usage:  python benchmarks/bench_verdict.py                  (default: ~6-8 min on 2 cores)
        python benchmarks/bench_verdict.py --blocks 200 --save runs.json
        python benchmarks/bench_verdict.py --load runs.json (re-judge saved runs without measuring)
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHANNELS = 32
SIDE = 32
LAYERS = 8


# --- worker (runs in a fresh subprocess) -------------------------------------------------------------
def build_model(path: Path) -> None:
    """A small conv net (3x3 Conv+Relu chain on 1x32x32x32): ~1 ms per inference on one x86 core."""
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


def worker(model: Path, threads: int, spin_s: float, min_time_s: float, min_samples: int) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    x = {"x": np.random.default_rng(1).standard_normal((1, CHANNELS, SIDE, SIDE)).astype(np.float32)}
    run, clock = sess.run, time.perf_counter
    warm_end = clock() + 0.2
    while clock() < warm_end:
        run(None, x)
    cap = max(min_samples, int(min_time_s * 20000))
    lat = [0.0] * cap
    n = 0
    end = clock() + min_time_s
    while n < cap and (n < min_samples or clock() < end):
        t0 = clock()
        run(None, x)
        if spin_s:
            stop = clock() + spin_s
            while clock() < stop:
                pass
        lat[n] = clock() - t0
        n += 1
    peak_mb = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_mb = int(line.split()[1]) / 1024
    except OSError:
        pass
    print(json.dumps({"latency_s": lat[:n], "peak_rss_mb": peak_mb}))


# --- orchestration -----------------------------------------------------------------------------------
def run_once(model: Path, threads: int, spin_s: float, min_time_s: float, min_samples: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", str(model), "--threads", str(threads),
           "--spin-s", repr(spin_s), "--min-time", repr(min_time_s), "--min-samples", str(min_samples)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def measure(args: argparse.Namespace) -> dict:
    cache = Path(tempfile.gettempdir()) / "edgeperf-bench"
    cache.mkdir(exist_ok=True)
    model = cache / f"cnn_{CHANNELS}c{SIDE}x{LAYERS}.onnx"
    if not model.exists():
        build_model(model)
    one = lambda spin: run_once(model, args.threads, spin, args.min_time, args.min_samples)  # noqa: E731
    t_start = time.monotonic()
    calib = [one(0.0) for _ in range(args.calibration_runs)]
    median_s = float(np.median([np.median(r["latency_s"]) for r in calib]))
    spin5, spin10 = 0.05 * median_s, 0.10 * median_s
    print(f"calibration: A median {median_s * 1e3:.3f} ms over {args.calibration_runs} runs; "
          f"spin 5% = {spin5 * 1e6:.1f} us, 10% = {spin10 * 1e6:.1f} us", flush=True)
    blocks = []
    for i in range(args.blocks):
        a1, b5, a2, b10 = one(0.0), one(spin5), one(0.0), one(spin10)
        blocks.append({"a1": a1, "b5": b5, "a2": a2, "b10": b10})
        if (i + 1) % 10 == 0:
            el = time.monotonic() - t_start
            print(f"  {i + 1}/{args.blocks} blocks, {el:.0f} s", flush=True)
    return {"calibration_median_s": median_s, "spin5_s": spin5, "spin10_s": spin10, "blocks": blocks,
            "threads": args.threads, "min_time_s": args.min_time, "model": model.name,
            "elapsed_s": time.monotonic() - t_start}


def to_result(run: dict, name: str, threads: int):
    from pytest_edgeperf.result import Result, Samples

    lat = run["latency_s"]
    return Result(
        test_id=f"benchmarks/bench.py::test_{name}", framework="onnxruntime", model="cnn", device="bench",
        threads=threads, samples=Samples(latency_s=lat, valid=[True] * len(lat)),
        peak_rss_mb=run.get("peak_rss_mb"), environment={"model_sha256": "same"},
    )


def ours(base_run: dict, cur_run: dict, threads: int, alpha: float) -> tuple[str, set[str]]:
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.verdict import judge

    entry = BaselineEntry.from_result(to_result(base_run, "x", threads))
    v = judge(to_result(cur_run, "x", threads), entry, {}, alpha=alpha)
    return v.overall, {m.metric for m in v.metrics if m.verdict == "REGRESSION"}


def pytest_benchmark_rule(base_run: dict, cur_run: dict, pct: float = 5.0) -> bool:
    """pytest-benchmark's ``median:5%``: fail when current median > baseline median * 1.05."""
    return float(np.median(cur_run["latency_s"])) > float(np.median(base_run["latency_s"])) * (1 + pct / 100)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def analyse(data: dict, alpha: float) -> dict:
    threads = data["threads"]
    rows = {}
    pairs = {
        "A/A (false alarm)": [(b["a1"], b["a2"]) for b in data["blocks"]] +
                             [(b["a2"], b["a1"]) for b in data["blocks"]],
        "A/B 5% (detection)": [(b["a1"], b["b5"]) for b in data["blocks"]],
        "A/B 10% (detection)": [(b["a2"], b["b10"]) for b in data["blocks"]],
    }
    which_metrics: dict[str, int] = {}
    for label, plist in pairs.items():
        k_ours = k_pb = 0
        for base, cur in plist:
            overall, regressed = ours(base, cur, threads, alpha)
            k_ours += overall == "REGRESSION"
            if label.startswith("A/A"):
                for m in regressed:
                    which_metrics[m] = which_metrics.get(m, 0) + 1
            k_pb += pytest_benchmark_rule(base, cur)
        rows[label] = (len(plist), k_ours, k_pb)
    ratios = [np.median(b["a2"]["latency_s"]) / np.median(b["a1"]["latency_s"]) for b in data["blocks"]]
    mem = [abs(b["a2"]["peak_rss_mb"] - b["a1"]["peak_rss_mb"]) for b in data["blocks"]
           if b["a1"].get("peak_rss_mb") and b["a2"].get("peak_rss_mb")]
    return {"rows": rows, "aa_regressed_metrics": which_metrics,
            "aa_median_ratio_pct": [float(np.percentile(ratios, q) - 1) * 100 for q in (1, 5, 50, 95, 99)]
            if ratios else [], "aa_peak_rss_abs_diff_mb_max": max(mem) if mem else None,
            "peak_rss_mb_median": float(np.median([b["a1"]["peak_rss_mb"] for b in data["blocks"]]))
            if data["blocks"] and data["blocks"][0]["a1"].get("peak_rss_mb") else None}


def print_report(data: dict, res: dict, alpha: float) -> None:
    from tabulate import tabulate

    n_samples = [len(b[k]["latency_s"]) for b in data["blocks"] for k in ("a1", "a2", "b5", "b10")]
    print(f"\nmodel {data['model']}, {data['threads']} thread(s), {len(data['blocks'])} blocks, "
          f"A median {data['calibration_median_s'] * 1e3:.3f} ms, "
          f"samples/run median {int(np.median(n_samples))}"
          f", measuring took {data.get('elapsed_s', 0):.0f} s; judge alpha={alpha}")
    table = []
    for label, (n, k_ours, k_pb) in res["rows"].items():
        lo1, hi1 = wilson(k_ours, n)
        lo2, hi2 = wilson(k_pb, n)
        table.append([label, n, f"{k_ours / n * 100:.1f}% [{lo1 * 100:.1f}-{hi1 * 100:.1f}]",
                      f"{k_pb / n * 100:.1f}% [{lo2 * 100:.1f}-{hi2 * 100:.1f}]"])
    print(tabulate(table, headers=["pairs", "n", "edgeperf judge (95% CI)",
                                   "pytest-benchmark median:5% (95% CI)"]))
    print("A/A pairs are judged in both orders (n = 2 x blocks). "
          "Targets: false alarms <= 1%, 10% detected >= 95%.")
    if res["aa_median_ratio_pct"]:
        q = ", ".join(f"{v:+.2f}%" for v in res["aa_median_ratio_pct"])
        print(f"A/A run-to-run median change, percentiles 1/5/50/95/99: {q}")
    if res["aa_regressed_metrics"]:
        print(f"A/A false alarms by metric: {res['aa_regressed_metrics']}")
    if res["aa_peak_rss_abs_diff_mb_max"] is not None:
        print(f"peak RSS ~{res['peak_rss_mb_median']:.1f} MB; largest A/A difference "
              f"{res['aa_peak_rss_abs_diff_mb_max']:.2f} MB")


# --- optional: real pytest-benchmark runs ---------------------------------------------------------------
_PB_TEST = '''
import os, numpy as np, onnxruntime as ort, time
def test_infer(benchmark):
    o = ort.SessionOptions(); o.intra_op_num_threads = {threads}; o.inter_op_num_threads = 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession({model!r}, o, providers=["CPUExecutionProvider"])
    x = {{"x": np.random.default_rng(1).standard_normal((1, {channels}, {side}, {side})).astype(np.float32)}}
    spin = float(os.environ.get("BENCH_SPIN_S", "0"))
    clock = time.perf_counter
    def step():
        s.run(None, x)
        if spin:
            stop = clock() + spin
            while clock() < stop:
                pass
    benchmark.pedantic(step, rounds=max(64, int({min_time} / {median_s})), warmup_rounds=50)
'''


def pytest_benchmark_confirm(data: dict, n: int, threads: int, min_time: float) -> None:
    cache = Path(tempfile.gettempdir()) / "edgeperf-bench"
    model = cache / data["model"]
    print(f"\nreal pytest-benchmark runs ({n} A/A and {n} A/B10 comparisons, "
          "--benchmark-compare-fail=median:5%):")
    fails = {"A/A": 0, "A/B10": 0}
    errors: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_pb.py"
        test.write_text(_PB_TEST.format(threads=threads, model=str(model), channels=CHANNELS, side=SIDE,
                                        min_time=min_time, median_s=data["calibration_median_s"]))
        storage = Path(tmp) / "store"
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:edgeperf",
                str(test), f"--benchmark-storage=file://{storage}", "--rootdir", tmp, "-c", os.devnull]
        for i in range(n):
            for label, spin in (("A/A", 0.0), ("A/B10", data["spin10_s"])):
                env = dict(os.environ, BENCH_SPIN_S="0")
                subprocess.run([*base, "--benchmark-save", f"b{i}{label[-1]}"], env=env, capture_output=True,
                               check=False, timeout=300)
                env["BENCH_SPIN_S"] = repr(spin)
                proc = subprocess.run([*base, "--benchmark-compare", "--benchmark-compare-fail=median:5%"],
                                      env=env, capture_output=True, text=True, check=False, timeout=300)
                if proc.returncode != 0 and "Performance has regressed" not in proc.stdout + proc.stderr:
                    errors.append((proc.stdout + proc.stderr).strip().splitlines()[-1:])
                fails[label] += "Performance has regressed" in proc.stdout + proc.stderr
    for label, k in fails.items():
        print(f"  {label}: {k}/{n} failed with 'Performance has regressed'")
    if errors:
        print(f"  {len(errors)} run(s) failed for other reasons, e.g. {errors[0]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--spin-s", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--blocks", type=int, default=60, help="blocks of 4 runs (A, B5, A, B10); default 60")
    ap.add_argument("--threads", type=int, default=1, help="intra_op_num_threads (default 1)")
    ap.add_argument("--min-time", type=float, default=0.6, help="timed seconds per run (default 0.6)")
    ap.add_argument("--min-samples", type=int, default=64, help="minimum timed inferences per run")
    ap.add_argument("--calibration-runs", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=None, help="judge alpha (default: the plugin's)")
    ap.add_argument("--save", type=Path, help="write the raw runs as JSON")
    ap.add_argument("--load", type=Path, help="re-judge saved runs instead of measuring")
    ap.add_argument("--pytest-benchmark-confirm", type=int, default=0, metavar="N",
                    help="also run N real pytest-benchmark A/A and A/B10 comparisons")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.model, args.threads, args.spin_s, args.min_time, args.min_samples)
        return 0
    from pytest_edgeperf.verdict import DEFAULT_ALPHA

    alpha = DEFAULT_ALPHA if args.alpha is None else args.alpha
    data = json.loads(args.load.read_text()) if args.load else measure(args)
    if args.save:
        args.save.write_text(json.dumps(data))
    print_report(data, analyse(data, alpha), alpha)
    if args.pytest_benchmark_confirm:
        pytest_benchmark_confirm(data, args.pytest_benchmark_confirm, data["threads"], data["min_time_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
