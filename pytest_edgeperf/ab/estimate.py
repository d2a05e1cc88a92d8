"""Judging an interleaved A/B run: the speed-up of A over B from the pairs, its 95% interval, and the gates on it.

The ratio is fps(A) / fps(B) = B's turn time / A's turn time, estimated from the pairs' log ratios, which come in
blocks: each block is one pair of worker processes (3 to 8 of them, paired.auto_blocks). Two processes of the same
model differ by a steady few percent (memory layout, allocator placement), so the pairs of one block share an offset
that more turns never average out; a plain paired t on all pairs treated that offset as a real difference (issue
18: an A/A run read +2.8% [+1.9, +3.7]). So the estimate is the mean over blocks of each block's mean log ratio, and its
standard error is the larger of two (block_estimate):

* between blocks: var(block means) / k, on k-1 degrees of freedom: the random-effects (one-way ANOVA) error of the
  mean of k block means, which holds the process-to-process spread as well as the turn noise;
* within blocks: the pooled within-block variance s_w^2 times sum(1/n_j) / k^2, on N-k degrees of freedom: what the
  turn noise alone gives the same mean.

In a balanced design that is max(MSB, MSW) / N, the one-way random-effects estimate with the between-process
variance truncated at zero: when blocks disagree more than their turns predict (MSB > MSW), the processes differ
and the interval widens to the k-1 degrees of freedom of the blocks (a steady process offset widens the interval
instead of becoming a false alarm); when they do not, the turns' many degrees of freedom are kept and the interval
is as narrow as one long run's. With one block it is the plain paired t-interval.
The gates are read on that two-sided 95% interval, so each is a one-sided
test at 2.5%:

* ``min_speedup=S`` ("A is faster than B by at least S times, with confidence"): PASS when the interval's lower
  bound is >= S; otherwise FAIL (the speed-up is below S, or not shown to reach it).
* ``max_slowdown_pct=P`` ("A is not slower than B by more than P%"): the speed-up limit is L = 1 / (1 + P/100).
  PASS when the lower bound is >= L (shown within P%); REGRESSION when the upper bound is < L (shown slower
  than P%); INCONCLUSIVE when the interval holds L (the run cannot tell): reported, not failing, as everywhere
  else in the plugin a noisy measurement never fails a test by itself.

Only fps is judged from the pairs, so there is no family of tests to adjust (Holm) for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as st
from tabulate import tabulate

from ..stats import MIN_PAIRS
from ..worker.paired import PairedRun

PASS = "PASS"
FAIL = "FAIL"
REGRESSION = "REGRESSION"
INCONCLUSIVE = "INCONCLUSIVE"
NO_GATE = "-"
#: outcomes that fail the test
FAILING = frozenset({FAIL, REGRESSION})


@dataclass
class GateVerdict:
    """One gate on the paired speed-up: what was asked, the one-sided p-value, the outcome and why."""

    gate: str  # "min speed-up 1.5x", "max slowdown 5%"
    p_value: float | None
    verdict: str
    reason: str


@dataclass
class PairedEstimate:
    """fps(A) / fps(B) from an interleaved run, with its 95% interval and the gates judged on it."""

    a_name: str
    b_name: str
    a_fps: float | None
    b_fps: float | None
    speedup: float | None
    low: float | None
    high: float | None
    pairs: int
    turn_s: float
    wall_s: float
    gates: list[GateVerdict] = field(default_factory=list)
    blocks: int = 1  # worker pairs the pairs came from
    df: float | None = None  # degrees of freedom of the interval (blocks - 1 when the processes differ)

    @property
    def verdict(self) -> str:
        verdicts = [g.verdict for g in self.gates]
        for name in (FAIL, REGRESSION, INCONCLUSIVE, PASS):
            if name in verdicts:
                return name
        return NO_GATE

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    def interval_text(self) -> str:
        if self.low is None or self.high is None:
            return "n/a"
        return f"[{self.low:.3g}x, {self.high:.3g}x]"

    def describe(self) -> str:
        """``fps 812 vs 401: 2.03x [1.98x, 2.07x] (95%, 20 pairs)``: the one-line figure for titles and notes."""
        if self.speedup is None:
            return f"fps {self.a_name} vs {self.b_name}: too few pairs ({self.pairs}) to estimate a ratio"
        return (f"fps {_num(self.a_fps)} vs {_num(self.b_fps)}: ratio {self.speedup:.3g}x {self.interval_text()} "
                f"(95% interval, {self.pairs} pairs in {self.blocks} worker pairs; "
                f"{_change(self.speedup)})")

    def to_json(self) -> dict[str, object]:
        return {"a": self.a_name, "b": self.b_name, "a_fps": self.a_fps, "b_fps": self.b_fps,
                "speedup": self.speedup, "low": self.low, "high": self.high, "pairs": self.pairs,
                "turn_s": self.turn_s, "wall_s": self.wall_s, "verdict": self.verdict, "worker_pairs": self.blocks,
                "df": self.df,
                "gates": [g.__dict__ for g in self.gates]}


@dataclass(frozen=True)
class BlockEstimate:
    """The mean log ratio log(b/a) over blocks, its standard error and degrees of freedom (module docstring)."""

    mean: float
    se: float
    df: float
    blocks: int
    between: bool  # the between-block error was the larger: the processes differed

    def interval(self, confidence: float = 0.95) -> tuple[float, float, float]:
        """(speed-up, low, high) of A over B."""
        half = float(st.t.ppf(0.5 + confidence / 2, self.df)) * self.se
        return math.exp(self.mean), math.exp(self.mean - half), math.exp(self.mean + half)

    def p_above(self, speedup: float, alternative: str) -> float:
        """One-sided p-value against a speed-up of ``speedup``: ``"greater"`` asks whether A's speed-up over B
        exceeds it, ``"less"`` whether it falls short of it."""
        delta = self.mean - math.log(speedup)
        if self.se == 0:  # no spread: the side of the target is the answer
            return 0.0 if (delta > 0) == (alternative == "greater") else 1.0
        t = delta / self.se
        p = float(st.t.sf(t, self.df) if alternative == "greater" else st.t.cdf(t, self.df))
        return 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)


def block_estimate(a_times: Sequence[float], b_times: Sequence[float],
                   blocks: Sequence[int] | None = None) -> BlockEstimate | None:
    """The speed-up's log, standard error and degrees of freedom from per-pair turn statistics and each pair's
    block (worker pair); None with fewer than stats.MIN_PAIRS usable pairs or no spread to estimate from."""
    a, b = np.asarray(a_times, dtype=float), np.asarray(b_times, dtype=float)
    labels = np.asarray(blocks if blocks is not None and len(blocks) == a.size else [0] * a.size)
    keep = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if int(keep.sum()) < MIN_PAIRS:
        return None
    d = np.log(b[keep]) - np.log(a[keep])
    groups = [d[labels[keep] == label] for label in np.unique(labels[keep])]
    k = len(groups)
    means = np.array([g.mean() for g in groups])
    sizes = np.array([g.size for g in groups], dtype=float)
    df_w = float(sum(g.size - 1 for g in groups))
    within = None
    if df_w > 0:
        s2_w = float(sum(((g - g.mean()) ** 2).sum() for g in groups)) / df_w
        within = s2_w * float((1.0 / sizes).sum()) / k**2
    between = float(means.var(ddof=1)) / k if k >= 2 else None
    mean = float(means.mean())
    if between is not None and (within is None or between > within):
        return BlockEstimate(mean, math.sqrt(between), k - 1, k, True)
    if within is None:
        return None
    return BlockEstimate(mean, math.sqrt(within), df_w, k, False)


def judge_paired(run: PairedRun, *, min_speedup: float | None = None, max_slowdown_pct: float | None = None,
                 names: tuple[str, str] = ("A", "B")) -> PairedEstimate:
    """The speed-up of ``run.a`` over ``run.b`` and each gate's outcome (see the module docstring)."""
    be = block_estimate(run.a_turn_s, run.b_turn_s, run.block)
    speedup, low, high = be.interval() if be is not None else (None, None, None)
    out = PairedEstimate(names[0], names[1], run.a.fps, run.b.fps, speedup, low, high, run.pairs, run.turn_s,
                         run.wall_s, blocks=run.blocks, df=be.df if be is not None else None)

    def p_above(limit: float, alternative: str) -> float:
        return be.p_above(limit, alternative) if be is not None else 1.0
    if min_speedup is not None:
        gate = f"min speed-up {min_speedup:g}x"
        p = p_above(min_speedup, "greater")
        if low is None or high is None:
            out.gates.append(GateVerdict(gate, None, FAIL, f"too few pairs ({run.pairs}) to show a speed-up"))
        elif low >= min_speedup:
            out.gates.append(GateVerdict(gate, p, PASS, f"speed-up {speedup:.3g}x {out.interval_text()} is at "
                                                        f"least {min_speedup:g}x"))
        else:
            how = "is below" if high < min_speedup else "is not shown to reach"
            out.gates.append(GateVerdict(gate, p, FAIL, f"speed-up {speedup:.3g}x {out.interval_text()} {how} "
                                                        f"the required {min_speedup:g}x"))
    if max_slowdown_pct is not None:
        gate = f"max slowdown {max_slowdown_pct:g}%"
        limit = 1.0 / (1.0 + max_slowdown_pct / 100.0)
        if low is None or high is None or speedup is None:
            out.gates.append(GateVerdict(gate, None, INCONCLUSIVE, f"too few pairs ({run.pairs}) to judge"))
        else:
            figure = f"fps ratio {speedup:.3g}x {out.interval_text()} ({(speedup - 1) * 100:+.1f}%)"
            if low >= limit:
                p = p_above(limit, "greater")
                verdict, why = PASS, f"{figure}, within the {max_slowdown_pct:g}% slowdown allowed"
            elif high < limit:
                p = p_above(limit, "less")
                verdict, why = REGRESSION, f"{figure}, slower than the {max_slowdown_pct:g}% allowed"
            else:
                p = p_above(limit, "less")
                verdict, why = INCONCLUSIVE, (f"{figure}: the interval holds the {max_slowdown_pct:g}% limit, this "
                                              f"run cannot tell")
            out.gates.append(GateVerdict(gate, p, verdict, why))
    return out


def _change(speedup: float) -> str:
    return f"fps {(speedup - 1) * 100:+.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def paired_rows(est: PairedEstimate) -> list[list[str]]:
    """Table rows for the paired fps: one per gate (or one without a gate)."""
    ratio = "n/a" if est.speedup is None else f"{est.speedup:.3g}x"
    gates = est.gates or [GateVerdict("", None, NO_GATE, "")]
    return [["fps", _num(est.a_fps), _num(est.b_fps), ratio, est.interval_text(), _p(g.p_value),
             f"{g.verdict} ({g.gate})" if g.gate else g.verdict] for g in gates]


def paired_table(est: PairedEstimate, extra: list[list[str]] | None = None) -> str:
    """Each arm, the ratio, its 95% interval, the p-value and the verdict; ``extra`` rows (memory, accuracy)."""
    rows = paired_rows(est) + (extra or [])
    table = tabulate(rows, headers=["metric", est.a_name, est.b_name, "ratio", "95% interval", "p", "verdict"],
                     tablefmt="simple", disable_numparse=True)
    return (f"{table}\ninterleaved: {est.pairs} pairs of {est.turn_s:.3g} s turns (ABBA) in {est.blocks} worker "
            f"pairs, {est.wall_s:.1f} s in all; "
            f"p is one-sided, for the gate's question")
