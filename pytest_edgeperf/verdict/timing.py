"""The timing decision: fps and latency percentiles, judged on raw samples and on the runs' processes.

A change must exceed the minimum effect (the tolerance, default 5%, or the run-to-run noise when that is larger)
AND be significant in a one-sided Mann-Whitney U test, Holm-adjusted across the test's timing metrics (as asv does,
plus a family-wise correction so judging fps, p50 and p90 together does not multiply false alarms), AND, with
several worker processes a side, be significant between the processes (``location.py``).

Why the fast half: the effect is measured on the mean of the faster half of the latencies and the rank test runs on
the faster half of each side, because on a shared machine other processes only ever *add* time, mostly to the slow
half, while more work per inference moves every sample. The fast-half mean replaced the 1st percentile because it
uses half the samples instead of 1% of them (a 10 s run of a 100 ms model on a Pi has ~100 samples: its p1 is its
minimum), and in benchmarks/bench_verdict.py (real plugin runs on a loaded 2-core machine) it moved less between
runs with 2 threads (sd 7.2% vs 11.2%, 22 runs) and about as little with 1 thread (2.0% vs 1.7%, 12 runs; not a
significant difference). The table still shows the median-based change the user knows (fps = 1 / median); the note
gives the fast-half change that decided. p90 latency must pass its own tolerance and the fast half must have moved
too.

Between recordings (``noise.py``): the processes of one run lie within seconds, while a shared machine drifts over
minutes, so the baseline also keeps its last few comparable recordings and the minimum effect becomes the larger of
the tolerance and three sds of that run-to-run noise for a difference of two runs, borrowing from the device's other
tests when the test itself has few recordings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgeperf import stats
from pytest_edgeperf.verdict import noise
from pytest_edgeperf.verdict.location import LocationChange, location_change
from pytest_edgeperf.verdict.outcome import IMPROVED, INCONCLUSIVE, PASS, REGRESSION, MetricVerdict

if TYPE_CHECKING:
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.result import Measured, Result

#: the device's pooled run-to-run variance by whether it is machine-normalised (``BaselineStore.noise_prior``)
NoisePriorSource = Callable[[bool], noise.NoisePrior | None]

DEFAULT_ALPHA = 0.01
# Valid samples each side before a timing metric is judged; a p90 needs more (MLPerf: >= 64 for p90).
MIN_TIMING_SAMPLES = 10
MIN_TAIL_SAMPLES = 64
TAIL_METRICS = ("latency_p90_ms", "latency_p99_ms")
#: the machine reference corrects drift of a few percent; when it moved more than this between the two runs the
#: machine was in another state (a slow spell of the VM's host, another clock) that does not scale every model
#: alike: in one suite run the reference was 37% faster and OpenCV SqueezeNet 27% faster, which divided out would
#: have read as a 25% regression. Timing is then INCONCLUSIVE.
MAX_MACHINE_SHIFT_PCT = 15.0


def judge_timing(
    metrics: Sequence[MetricVerdict],
    current: Result,
    baseline: BaselineEntry,
    *,
    alpha: float = DEFAULT_ALPHA,
    noise_prior: NoisePriorSource | None = None,
) -> list[str]:
    """Decide each timing metric in place (verdict, note, p-value, noise floor); return the notes for the test.

    Why one function for all of them: the rank tests' p-values are Holm-adjusted across the test's timing metrics,
    and the between-run location and the run-to-run noise are learnt once and shared, so no metric can be decided
    before every one has its raw p-value.
    """
    flags: list[str] = []
    # Timing metrics first get their raw one-sided p-values, then Holm across them, then the decision.
    pending: list[tuple[MetricVerdict, float, float]] = []
    warned = False
    location: LocationChange | None = None
    for mv in metrics:
        if shortfall := _too_few_samples(mv.metric, current, baseline):
            mv.verdict, mv.note = INCONCLUSIVE, shortfall
            continue
        if not warned and (warning := stats.stability_warning(current.metric_samples(mv.metric))):
            flags.append(f"{mv.metric}: {warning}")
            warned = True
        if location is None:
            location = location_change(current, baseline)
            if location.note_flag:
                flags.append(location.note_flag)
        pending.append((mv, _rank_p_value(current, baseline, location), location.change_pct or 0.0))
    if location is None:
        return flags

    adjusted = stats.holm_adjust([p for _, p, _ in pending])
    location_tol = min((mv.tolerance or 0.0 for mv, _, _ in pending if mv.metric != "latency_p90_ms"), default=5.0)
    shift = location.machine_pct
    prior = noise_prior(location.normalized) if noise_prior is not None else None
    run_noise = noise.learn(baseline.recordings(), location.normalized, prior)
    noise_floor = run_noise.floor_pct if run_noise is not None else 0.0
    if run_noise is not None and noise_floor > location_tol:
        flags.append(f"timing: {run_noise.describe()}, above the {location_tol:g}% tolerance")
    machine_shifted = shift is not None and abs(shift) > MAX_MACHINE_SHIFT_PCT
    if shift is not None and machine_shifted:
        flags.append(f"machine speed changed: the reference model ran {abs(shift):.0f}% "
                     f"{'slower' if shift > 0 else 'faster'} than at the baseline (limit {MAX_MACHINE_SHIFT_PCT:g}%); "
                     "timing is not judged: re-run on a steady machine")
    for (mv, _raw_p, floor_pct), p_adj in zip(pending, adjusted, strict=True):
        # both tests must agree: the samples' rank test (Holm) and, with several processes, the processes'
        mv.p_value = p_adj if location.p_value is None else max(p_adj, location.p_value)
        mv.noise_floor_pct = noise_floor if run_noise is not None else None
        mv.verdict, mv.note = _decide(mv, p_adj, floor_pct, location, location_tol=location_tol,
                                      noise_floor=noise_floor, machine_shifted=machine_shifted, alpha=alpha)
    return flags


def _too_few_samples(name: str, current: Measured, baseline: Measured) -> str:
    """Why a timing metric cannot be judged for want of valid samples on a side, or ""."""
    now_s, base_s = current.metric_samples(name), baseline.metric_samples(name)
    need = MIN_TAIL_SAMPLES if name in TAIL_METRICS else MIN_TIMING_SAMPLES
    n_now = 0 if now_s is None else len(now_s)
    n_base = 0 if base_s is None else len(base_s)
    if min(n_now, n_base) < need:
        return f"too few valid samples (now {n_now}, baseline {n_base}; need {need})"
    return ""


def _rank_p_value(current: Measured, baseline: Measured, location: LocationChange) -> float:
    """One-sided rank test on the faster half of each side's latencies (each scaled by its machine-speed reference
    when both have one), in the direction the location moved."""
    slower = location.change_pct > 0
    low_now = _faster_half(current.metric_samples("latency_p50_ms")) / location.scale_now
    low_base = _faster_half(baseline.metric_samples("latency_p50_ms")) / location.scale_base
    return stats.mann_whitney_greater(*((low_now, low_base) if slower else (low_base, low_now)))


def _faster_half(values: np.ndarray | None) -> np.ndarray:
    """The faster half of the latencies: the rank test then ignores the interference-dominated tail."""
    arr = np.sort(np.asarray(values, dtype=float))
    return arr[: max(stats.MIN_SAMPLES_FOR_TEST, (arr.size + 1) // 2)]


def _decide(mv: MetricVerdict, p_adj: float, floor_pct: float, location: LocationChange, *, location_tol: float,
            noise_floor: float, machine_shifted: bool, alpha: float) -> tuple[str, str]:
    """(verdict, note) of one timing metric: every test must agree before it is a regression or an improvement."""
    p_process = location.p_value
    change = mv.change_pct if mv.change_pct is not None else 0.0
    tol = mv.tolerance or 0.0
    if mv.metric in TAIL_METRICS:
        # A tail metric: its own change must pass its tolerance, and the fast half must have moved
        # (beyond the location tolerance and the run-to-run noise) too, else the tail moved because of
        # other processes.
        beyond = abs(change) > tol and abs(floor_pct) > max(location_tol, noise_floor)
        within_noise = abs(change) > tol and abs(floor_pct) > location_tol and not beyond
    else:
        beyond = abs(floor_pct) > max(tol, noise_floor)
        within_noise = abs(floor_pct) > tol and not beyond
    floor_worse = floor_pct > 0
    floor_note = location.describe()
    raw_pct = location.raw_change_pct
    if machine_shifted:
        return INCONCLUSIVE, f"machine speed changed; {floor_note}"
    if within_noise:
        return PASS, f"within the run-to-run noise (minimum effect {noise_floor:.1f}%); {floor_note}"
    if not beyond:
        return PASS, f"within the minimum effect; {floor_note}"
    if p_adj >= alpha:
        return PASS, f"not significant (p >= {alpha:g}, Holm-adjusted); {floor_note}"
    if p_process is not None and p_process >= alpha:
        return PASS, f"not significant between processes (Yuen-Welch p = {p_process:.2g}); {floor_note}"
    if location.normalized and raw_pct is not None and (raw_pct > 0) != floor_worse:
        # relative to the reference it moved one way, in raw time the other: only the machine can say which
        return INCONCLUSIVE, f"raw and machine-relative changes disagree (raw {raw_pct:+.1f}%); {floor_note}"
    return (REGRESSION if floor_worse else IMPROVED), floor_note
