"""Run-to-run noise: how far one test's timing moves between separate runs, learnt from its baseline's recordings.

Why: one run's worker processes lie within seconds of each other, so their spread cannot show how the machine
drifts over minutes. On this project's shared 2-core VM the suites' models moved between runs by a median 3.9%
(sd) and up to 18% (benchmarks/README.md), while the model of benchmarks/bench_verdict.py moved 0.68%: a single
recording cannot tell a slow spell from a 10% regression. So a baseline entry keeps the per-process statistics of
its last few comparable recordings (``history``), the sd of their run-level location is the test's run-to-run
noise, and the verdict's minimum effect becomes the larger of the tolerance and ``NOISE_SIGMAS`` of that noise for
the difference of two runs (a prediction bound, as Bencher's thresholds are built from a metric's history).

A test with few recordings borrows from the device's other tests: its variance is raised toward the pooled
(median) variance of every entry in the same baselines directory (empirical Bayes shrinkage, as limma's moderated
variances; never lowered below its own estimate, so a noisy test keeps its noise). A test with one recording and
no other history is judged as before, without a noise floor; ``--edgeperf-update-baselines`` records twice by
default (``--edgeperf-update-passes``) so that a fresh set of baselines already knows its noise.

Pure functions over plain values: ``baseline/entry.py`` keeps the history, ``verdict/timing.py`` applies the floor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2

from pytest_edgeperf import stats

#: earlier comparable recordings an entry keeps besides its own: 7 recordings give the sd 6 degrees of freedom,
#: while the file grows by ~12 numbers per recording
HISTORY_LIMIT = 6
#: the minimum effect is this many run-to-run sds of the difference of two runs (sd * sqrt(2)): drift comes in
#: spells, heavier-tailed than a normal, so 3 rather than the 2.33 of a one-sided 1% normal bound
NOISE_SIGMAS = 3.0
#: pseudo degrees of freedom the device's pooled variance weighs in with (at most the pool's own)
PRIOR_DF = 4
#: share of the processes cut off each end of one run (Yuen's 20% trimming; verdict/location.py tests the same)
PROCESS_TRIM = 0.2
#: runs whose minimum timed time differs by more than this factor are not compared on timing, nor pooled in one
#: history (a 1 s run warms up less than a 10 s one)
BUDGET_RATIO = 2.0
#: environment keys that must match for an earlier recording to join an entry's history: a different model, runtime,
#: runtime version, thread count, input signature or machine starts the history afresh
HISTORY_KEYS = ("device", "runtime", "threads", "runtime_version", "model_sha256", "hostname", "cpu", "cpu_id",
                "cpu_count", "machine", "input_shape")

ProcessPairs = Sequence[tuple[float, float | None]]  # per worker process: (fast-half mean ms, reference ms or None)


def run_location(pairs: ProcessPairs, by_reference: bool) -> float | None:
    """One run's location: the 20%-trimmed mean of log(process time), each divided by its reference if asked.

    None when the run has no usable process (or lacks a reference that was asked for).
    """
    logs = []
    for lat, ref in pairs:
        if not lat or lat <= 0:
            continue
        if by_reference:
            if not ref or ref <= 0:
                return None
            logs.append(math.log(lat / ref))
        else:
            logs.append(math.log(lat))
    return stats.trimmed_mean(logs, PROCESS_TRIM) if logs else None


def _locations(recordings: Iterable[ProcessPairs], by_reference: bool) -> list[float]:
    return [v for v in (run_location(r, by_reference) for r in recordings) if v is not None]


def _variance(values: list[float]) -> tuple[float, int] | None:
    return (float(np.var(values, ddof=1)), len(values) - 1) if len(values) >= 2 else None


def own_variance(recordings: Iterable[ProcessPairs], by_reference: bool) -> tuple[float, int] | None:
    """(sample variance of the recordings' run locations, its degrees of freedom); None with < 2 usable runs."""
    return _variance(_locations(recordings, by_reference))


@dataclass(frozen=True)
class NoisePrior:
    """The pooled run-to-run variance of a device's tests: what a test with little history borrows."""

    variance: float
    df: int
    tests: int

    @classmethod
    def pool(cls, per_test: Iterable[tuple[float, int] | None]) -> NoisePrior | None:
        """The median of the tests' variances, each scaled by its chi-square median; None when no test has two
        recordings.

        A median, not a degrees-of-freedom weighted mean: one test recorded during a burst of other load (its
        recordings 7x apart) made the mean of a 96-test device 0.45 (sd 95% per run) while its median test moved
        by 22%; every test that borrows from the prior would inherit that one test's noise. A sample variance of
        d degrees of freedom has its median at ``chi2.median(d) / d`` of the true variance (0.45 for d=1), hence
        the scaling: when every test has the same noise the pooled value estimates it without bias.
        """
        usable = [(v, d) for v, d in (x for x in per_test if x is not None) if d > 0 and math.isfinite(v)]
        if not usable:
            return None
        scaled = [v / (float(chi2.median(d)) / d) for v, d in usable]
        return cls(float(np.median(scaled)), sum(d for _, d in usable), len(usable))


@dataclass(frozen=True)
class RunNoise:
    """A test's run-to-run noise, as the verdict uses it."""

    sd_log: float  # sd of one run's log location
    recordings: int  # this test's own usable recordings
    own_sd_log: float | None  # from those recordings alone (None with one)
    prior: NoisePrior | None

    @property
    def floor_pct(self) -> float:
        """The smallest change (percent) two single runs can show beyond this noise: NOISE_SIGMAS * sd * sqrt(2)."""
        return math.expm1(NOISE_SIGMAS * math.sqrt(2.0) * self.sd_log) * 100.0

    def describe(self) -> str:
        sd = math.expm1(self.sd_log) * 100.0
        if self.own_sd_log is None and self.prior is not None:
            where = f"pooled from {self.prior.tests} other test(s) of this device"
        else:
            where = f"{self.recordings} recordings"
            if self.prior is not None and self.own_sd_log is not None and self.sd_log > self.own_sd_log * 1.0001:
                where += f", raised toward {self.prior.tests} test(s) of this device"
        return f"run-to-run noise sd {sd:.1f}% ({where}) -> minimum effect {self.floor_pct:.1f}%"


def learn(recordings: Sequence[ProcessPairs], by_reference: bool, prior: NoisePrior | None) -> RunNoise | None:
    """The noise of one test from its recordings (newest first) and the device's prior; None if nothing is known."""
    values = _locations(recordings, by_reference)
    own, n = _variance(values), len(values)
    if own is None:
        if prior is None:
            return None
        return RunNoise(math.sqrt(prior.variance), n, None, prior)
    var, df = own
    if prior is None:
        return RunNoise(math.sqrt(var), n, math.sqrt(var), None)
    d0 = min(PRIOR_DF, prior.df)
    shrunk = (df * var + d0 * prior.variance) / (df + d0)
    return RunNoise(math.sqrt(max(var, shrunk)), n, math.sqrt(var), prior)


def budgets_comparable(a: Any, b: Any) -> bool:
    """True unless both minimum timed times are known and differ by more than BUDGET_RATIO."""
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return True
    if not (x > 0 and y > 0):
        return True
    return max(x, y) <= BUDGET_RATIO * min(x, y)


def history_comparable(old_env: Mapping[str, Any], new_env: Mapping[str, Any]) -> bool:
    """May a recording with ``old_env`` count toward the run-to-run noise of one with ``new_env``?"""
    for key in HISTORY_KEYS:
        if str(old_env.get(key)) != str(new_env.get(key)):
            return False
    old_inputs, new_inputs = old_env.get("inputs"), new_env.get("inputs")
    if old_inputs is not None and new_inputs is not None and (
            json.dumps(old_inputs, sort_keys=True) != json.dumps(new_inputs, sort_keys=True)):
        return False  # every input's shape and dtype (recordings from before it was kept have input_shape only)
    return budgets_comparable(old_env.get("min_time_s"), new_env.get("min_time_s"))
