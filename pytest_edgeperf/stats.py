"""Summaries and statistical tests on raw samples: the numbers the verdict and the reports stand on.

Everything here takes plain sequences of floats and returns plain Python values, so the verdict, the
baseline files and the reports can share one definition of "median", "p90" or "significant". The tests
themselves come from scipy.stats; this module only fixes how we call them (one-sided, which method,
what a too-small sample means) and adds Holm's step-down adjustment, which scipy does not ship.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

# Fewer values than this per side and a rank test says nothing useful (asv uses the same floor).
MIN_SAMPLES_FOR_TEST = 6
# pyperf's rule of thumb: a standard deviation of 10% of the mean or more makes a result "unstable".
UNSTABLE_REL_STDEV = 0.10
# Fewer samples than this and a p90 is mostly noise (MLPerf asks >= 64 queries before it trusts a p90).
MIN_STABLE_SAMPLES = 64


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Values as a 1-D float array without NaN/inf: a missing reading must not poison a summary."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """Describe a sample the way pytest-benchmark does (min ... ops) plus the percentiles we gate on.

    ``ops`` is 1 / mean, as in pytest-benchmark, so the dict can be written into its JSON unchanged
    when the values are seconds. An empty sample gives n=0 and None everywhere else.
    """
    arr = _clean(values)
    keys = ("min", "max", "mean", "stddev", "median", "q1", "q3", "iqr", "p90", "p99", "ops")
    if arr.size == 0:
        return {"n": 0, **dict.fromkeys(keys)}
    q1, median, q3, p90, p99 = (float(x) for x in np.percentile(arr, [25, 50, 75, 90, 99]))
    mean = float(arr.mean())
    return {
        "n": int(arr.size),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "mean": mean,
        "stddev": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "p90": p90,
        "p99": p99,
        "ops": 1.0 / mean if mean > 0 else None,
    }


def mann_whitney_greater(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """One-sided p-value for "x tends to be larger than y" (Mann-Whitney U, scipy).

    Returns 1.0 (no evidence) when either side has fewer than MIN_SAMPLES_FOR_TEST values or all values
    are tied, so a caller never mistakes "could not test" for "significant".
    """
    a, b = _clean(x), _clean(y)
    if a.size < MIN_SAMPLES_FOR_TEST or b.size < MIN_SAMPLES_FOR_TEST:
        return 1.0
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0
    # Exact p-values are O(n*m) memory; above a few dozen values the normal approximation is accurate.
    method = "exact" if a.size * b.size <= 2500 and not _has_ties(a, b) else "asymptotic"
    p = float(_st.mannwhitneyu(a, b, alternative="greater", method=method).pvalue)
    return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


def welch_greater(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, trim: float = 0.0) -> float:
    """One-sided p-value for "x has a larger (trimmed) mean than y": Welch's t-test, or with ``trim`` > 0 Yuen's
    trimmed-mean version of it (scipy); 1.0 when it cannot say.

    For a few values per side (one per worker process), where a rank test cannot reach a small p-value at all
    (3 against 3: its smallest one-sided p is 0.05). Trimming 20% makes one odd process out of five (seen here:
    one process 20% slower than its four siblings) unable to hide or fake a change on its own.
    """
    a, b = _clean(x), _clean(y)
    if a.size < 2 or b.size < 2:
        return 1.0
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 0.0 if a[0] > b[0] else 1.0  # no spread at all: the order is the answer
    with np.errstate(all="ignore"):
        p = float(_st.ttest_ind(a, b, equal_var=False, alternative="greater", trim=trim).pvalue)
    return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


def trimmed_mean(values: Sequence[float] | np.ndarray, trim: float) -> float | None:
    """Mean after cutting ``trim`` of the values off each end (scipy); None when empty."""
    arr = _clean(values)
    if arr.size == 0:
        return None
    return float(_st.trim_mean(arr, trim))


def _has_ties(a: np.ndarray, b: np.ndarray) -> bool:
    both = np.concatenate([a, b])
    return np.unique(both).size < both.size


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Comparing each adjusted value with alpha keeps the chance of *any* false alarm among the family at or
    below alpha (family-wise error), without Bonferroni's full penalty. Needed because one test checks
    fps, p50 and p90 latency together, and each extra metric is another chance to cry wolf.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return [float(v) for v in adjusted]


def stability_warning(
    values: Sequence[float] | np.ndarray,
    *,
    min_samples: int = MIN_STABLE_SAMPLES,
    max_rel_stdev: float = UNSTABLE_REL_STDEV,
) -> str | None:
    """A one-line warning when a sample looks unstable (pyperf's spirit), else None.

    Not a failure: a noisy sample still gets judged (the rank test accounts for spread), but a user who
    sees the warning knows why a verdict came out INCONCLUSIVE or why the p-value is large.
    """
    arr = _clean(values)
    if arr.size < min_samples:
        return f"only {arr.size} samples (< {min_samples}): the result may be unstable"
    mean = float(arr.mean())
    if mean == 0:
        return None
    rel = float(arr.std(ddof=1)) / abs(mean)
    if rel >= max_rel_stdev:
        limit = max_rel_stdev * 100
        return f"stdev is {rel * 100:.0f}% of the mean (>= {limit:.0f}%): the result may be unstable"
    return None


def fast_half_mean(values: Sequence[float] | np.ndarray) -> float | None:
    """Mean of the faster (smaller) half of the values; None when empty.

    The location statistic the timing verdict decides on. Other processes on a shared machine only ever add
    time, and mostly to the slow half, so the slow half is left out; averaging the whole fast half (rather
    than taking one low percentile such as p1) uses half the values instead of 1% of them, which matters
    for slow models with ~100 samples per run. Its run-to-run spread in benchmarks/bench_verdict.py was
    the smallest of p1..median with 2 threads and close to p1's with 1 thread.
    """
    arr = np.sort(_clean(values))
    if arr.size == 0:
        return None
    return float(arr[: max(1, (arr.size + 1) // 2)].mean())


def percent_change(baseline: float, current: float) -> float | None:
    """(current - baseline) / |baseline| in percent; None when the baseline is zero (no meaningful ratio)."""
    if baseline == 0 or not math.isfinite(baseline) or not math.isfinite(current):
        return None
    return (current - baseline) / abs(baseline) * 100.0


#: fewer (A, B) pairs than this and a paired interval is too wide to say anything (t with 2 degrees of freedom)
MIN_PAIRS = 3


def paired_speedup(a_times: Sequence[float] | np.ndarray, b_times: Sequence[float] | np.ndarray,
                   confidence: float = 0.95) -> tuple[float, float, float] | None:
    """Speed-up of A over B (B's time / A's time) from paired turns, with a two-sided ``confidence`` interval.

    A paired t-interval on the per-pair log ratios log(b_i / a_i): each pair's two turns ran back to back, so
    the machine's drift is mostly common to both and cancels in the ratio. ``(estimate, low, high)``, or None
    with fewer than MIN_PAIRS usable pairs. Identical pairs give a zero-width interval.
    """
    d = _log_ratios(a_times, b_times)
    if d.size < MIN_PAIRS:
        return None
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    half = float(_st.t.ppf(0.5 + confidence / 2, d.size - 1)) * se
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def paired_p_above(a_times: Sequence[float] | np.ndarray, b_times: Sequence[float] | np.ndarray,
                   speedup: float, alternative: str) -> float:
    """One-sided p-value of the paired t-test on log ratios against a speed-up of ``speedup``.

    ``alternative="greater"``: evidence that A's speed-up over B exceeds ``speedup``; ``"less"``: that it falls
    short of it. 1.0 when it cannot be tested (too few pairs).
    """
    d = _log_ratios(a_times, b_times)
    if d.size < MIN_PAIRS:
        return 1.0
    target = math.log(speedup)
    if np.ptp(d) == 0:  # no spread: the side of the target is the answer
        above = d[0] > target
        return 0.0 if above == (alternative == "greater") else 1.0
    with np.errstate(all="ignore"):
        p = float(_st.ttest_1samp(d, target, alternative=alternative).pvalue)
    return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


def _log_ratios(a_times: Sequence[float] | np.ndarray, b_times: Sequence[float] | np.ndarray) -> np.ndarray:
    a, b = np.asarray(a_times, dtype=float), np.asarray(b_times, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    return np.log(b[keep]) - np.log(a[keep])
