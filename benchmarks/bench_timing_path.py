"""The plugin's timing path vs inline runtime calls, in one process: is the adapter's closure a cost?

bench_overhead.py compares two processes (plugin worker vs bare loop), which also compares two processes' luck;
this isolates the one thing the plugin adds inside the timed interval: calling the adapter's ``make_runner``
closure instead of calling ``set_tensor / invoke / get_tensor`` inline. Prints both medians and the fps ratio.

    python benchmarks/bench_timing_path.py [--rounds 6] [--n 30000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_edgeperf.frameworks import get_adapter
from pytest_edgeperf.models.build import ensure_zoo_model
from pytest_edgeperf.worker.child import random_input


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--n", type=int, default=30000, help="inferences per arm and round")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = ensure_zoo_model("tiny_cnn", Path(tmp))
        adapter = get_adapter("litert")
        adapter.load(files.tflite, 1)
        x = random_input(adapter.input_shape, adapter.input_dtype, 0)
        run_once = adapter.make_runner(x)  # what the worker's timing loop calls
        interp = adapter._interpreter  # the same interpreter, called inline like a hand-written loop
        set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor
        i_in, i_out = adapter._input["index"], adapter._output["index"]
        perf = time.perf_counter

        def inline(n: int) -> float:
            lat = []
            for _ in range(n):
                t0 = perf()
                set_tensor(i_in, x)
                invoke()
                get_tensor(i_out)
                lat.append(perf() - t0)
            return statistics.median(lat)

        def through_closure(n: int) -> float:
            lat = []
            for _ in range(n):
                t0 = perf()
                run_once()
                lat.append(perf() - t0)
            return statistics.median(lat)

        for _ in range(2000):
            run_once()
        bare, closure = [], []
        for _ in range(args.rounds):
            bare.append(inline(args.n))
            closure.append(through_closure(args.n))
        b, c = statistics.median(bare), statistics.median(closure)
        print(f"litert tiny_cnn, 1 thread, {args.rounds} rounds x {args.n}: inline median {b * 1e9:.0f} ns, "
              f"through the adapter's closure {c * 1e9:.0f} ns, fps ratio closure/inline {b / c:.4f}")


if __name__ == "__main__":
    main()
