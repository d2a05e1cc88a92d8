"""Inputs and a calibrated busy-wait for the benchmarks (bench_verdict.py, bench_ab.py), run inside the workers.

A benchmark's "B" arm gets real extra work on every sample: the test's ``prepare`` step busy-waits inside the
worker's timed window (``worker.time_with_preprocessing``) before returning its input; the "A" arm runs the same
code with a zero wait (an identical code path). The waits come from the environment, read once at import (the
worker inherits the benchmark's environment): ``BENCH_SPIN_S`` for ``spin``, ``BENCH_SPIN_A_S`` / ``BENCH_SPIN_B_S``
for ``spin_a`` / ``spin_b`` (two arms timed side by side, each in its own worker).
"""

import os
import time

import numpy as np

SPIN_S = float(os.environ.get("BENCH_SPIN_S", "0"))
SPIN_A_S = float(os.environ.get("BENCH_SPIN_A_S", "0"))
SPIN_B_S = float(os.environ.get("BENCH_SPIN_B_S", "0"))


def frames(shape, dtype):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(8)]


def _spin(x, spin_s, _clock=time.perf_counter):
    stop = _clock() + spin_s  # the same loop for a zero wait: identical code path
    while _clock() < stop:
        pass
    return x


def spin(x, _spin_s=SPIN_S):
    return _spin(x, _spin_s)


def spin_a(x, _spin_s=SPIN_A_S):
    return _spin(x, _spin_s)


def spin_b(x, _spin_s=SPIN_B_S):
    return _spin(x, _spin_s)
