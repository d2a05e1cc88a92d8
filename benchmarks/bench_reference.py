"""Does the machine-speed reference track the machine? Spread of the model's time between worker processes, raw
and divided by the reference timed in the same process (issue 4's design decision, measured).

Starts ``--processes`` real plugin workers (``pytest_edgeperf.worker``, the JSON-lines protocol the plugin uses)
one after another on the same model, each timing ``--seconds`` with the reference model (``zoo:tiny_cnn``, one
thread, same runtime) interleaved exactly as in a measurement. Per process it takes the fast-half mean of the
model's latencies and of the reference's, and prints, side by side from the same processes:

* sd of log(model) between processes: what an uncorrected verdict has to live with;
* sd of log(model / reference): what the verdict compares;
* lag-1 autocorrelation of each: near +1 means neighbouring processes are alike (the machine drifts), near 0 means
  the processes are independent draws (what the between-process t-test assumes).

Usage:  python benchmarks/bench_reference.py                       (30 processes x 1.5 s, threads = cores; ~1.5 min)
        python benchmarks/bench_reference.py --threads 1 --runtime litert
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def fast_half(values: list[float]) -> float:
    arr = np.sort(np.asarray(values, dtype=float))
    return float(arr[: (arr.size + 1) // 2].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=1.5, help="timed seconds per process")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "litert", "opencv"])
    ap.add_argument("--model", default=None, help="model file (default: bench_verdict's 8-conv CNN, ONNX)")
    args = ap.parse_args(argv)

    from pytest_edgeperf.fixture import REFERENCE_MODEL
    from pytest_edgeperf.frameworks import model_file_for
    from pytest_edgeperf.models.build import ensure_zoo_model
    from pytest_edgeperf.worker.client import WorkerProcess

    cache = Path(tempfile.gettempdir()) / "edgeperf-bench"
    cache.mkdir(exist_ok=True)
    if args.model:
        model = Path(args.model)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_verdict

        model = cache / f"cnn_{bench_verdict.CHANNELS}c{bench_verdict.SIDE}x{bench_verdict.LAYERS}.onnx"
        if not model.exists():
            bench_verdict.build_model(model)
    reference = model_file_for(args.runtime, Path(ensure_zoo_model(REFERENCE_MODEL, cache / "models").stem))
    if reference is None:
        raise SystemExit(f"no reference model file for {args.runtime}")

    t0 = time.monotonic()
    model_s, ref_s = [], []
    for _ in range(args.processes):
        request = {
            "framework": args.runtime, "model_file": str(model), "threads": args.threads, "warmup_s": 0.25,
            "warmup_runs": 5, "inputs": {"kind": "random", "seed": 0}, "accuracy": None, "sys_path": [],
            "budget": {"min_samples": 10, "min_time_s": args.seconds, "max_time_s": 10 * args.seconds,
                       "max_samples": 10**7},
            "wait_for_go": True, "reference": {"model_file": str(reference)},
        }
        worker = WorkerProcess(request, f"{args.runtime} on {model.name}")
        try:
            worker.expect("loaded", 120, "while loading")
            worker.expect("ready", 120, "during warm-up")
            worker.go()
            worker.expect("timed", 60 + 10 * args.seconds, "while timing")
            done = worker.expect("done", 60, "while reporting")
        finally:
            worker.close()
        if not done["reference_s"]:
            raise SystemExit(f"the reference did not run: {done.get('reference_error')}")
        model_s.append(fast_half(done["latency_s"]))
        ref_s.append(fast_half(done["reference_s"]))

    raw = np.log(model_s)
    norm = raw - np.log(ref_s)
    ref = np.log(ref_s)

    def describe(name: str, x: np.ndarray) -> str:
        lag1 = float(np.corrcoef(x[:-1], x[1:])[0, 1]) if x.size > 2 else math.nan
        return f"  {name:<22} sd {np.std(x, ddof=1) * 100:5.2f}%   lag-1 autocorrelation {lag1:+.2f}"

    print(f"{args.runtime}, {model.name}, {args.threads} thread(s), {args.processes} processes x {args.seconds:g} s "
          f"({time.monotonic() - t0:.0f} s); model fast-half {np.exp(raw.mean()) * 1e3:.3f} ms, reference "
          f"{np.exp(ref.mean()) * 1e6:.1f} us")
    print(describe("model (raw)", raw))
    print(describe("reference", ref))
    print(describe("model / reference", norm))
    print(f"  ratio of sds raw / normalised: {np.std(raw, ddof=1) / np.std(norm, ddof=1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
