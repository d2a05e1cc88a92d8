"""Change points in each (test, device, runtime, metric) series of the history, classified by the metric's direction.

Detection is the approach MongoDB and Apache Otava take (a change point over the whole history rather than a
pairwise comparison with the previous run), with ``ruptures``' PELT as the segmenter: the series is scaled by a
robust estimate of its run-to-run noise (the MAD of successive differences, which a step or a slow drift barely
moves), PELT proposes the breakpoints, and each is kept only if the runs on its two sides differ by a
Mann-Whitney U test (p < ``alpha``, as asv's step detection checks a rank test) and by at least a minimum effect;
the weakest failing breakpoint is dropped and the rest re-tested until all hold. PELT cuts a slow drift into a
staircase of change points in one direction; consecutive ones whose levels in between keep moving the same way
(a stratified Mann-Kendall test, one-sided) are reported as ONE drift "from run X to run Y, total Z%"
(``merge_drifts``), while separate steps with flat levels between them stay separate change points. (MongoDB's own
``signal-processing-algorithms`` pins numpy < 2 and pulls in gevent, so it cannot share an environment with this
project's runtimes.)
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .db import HistoryError, tables

if TYPE_CHECKING:
    from sqlalchemy import Select, Table
    from sqlalchemy.engine import Engine

#: fewest runs on each side of a change point (and the fewest a series needs twice over)
DEFAULT_MIN_RUNS = 5
#: the rank test's threshold for keeping a breakpoint
DEFAULT_ALPHA = 0.01
#: smallest change reported, in % of the old level (accuracy: in percentage points, from the verdict's rule)
DEFAULT_MIN_CHANGE_PCT = 2.0
#: PELT's penalty per breakpoint, in units of log(n) on the noise-scaled series (BIC would be 2)
PENALTY_LOG_N = 3.0
#: same-direction change points are one drift when the levels between them trend that way (stratified Mann-Kendall
#: test over those levels, one-sided p below this) ...
DRIFT_ALPHA = 0.01
#: ... and those levels slide by at least this fraction of the steps beside them (Theil-Sen slope x length: a drift's
#: level slides about a step's worth before PELT cuts it again; a flat level with a chance trend, by the noise only)
DRIFT_MIN_SLIDE = 0.25

REFERENCE_METRIC = "reference_ms"  # the machine-speed reference model's time, timed between the samples

REGRESSION = "regression"
IMPROVEMENT = "improvement"
CHANGE = "change"  # a metric without a known direction (cpu_percent, reference_ms): shown, never gating

#: informational metrics with a direction but no verdict rule (so never gating)
_LOWER_IS_BETTER_EXTRA = ("latency_p99_ms", "load_time_s", "first_inference_ms", "preprocess_p50_ms",
                          "inference_p50_ms")


@dataclass(frozen=True, order=True)
class SeriesKey:
    test_id: str
    device: str
    runtime: str
    metric: str


@dataclass(frozen=True)
class Point:
    """One run's value of a series (the median when a run measured the test more than once)."""

    run_id: int
    commit: str | None
    created_unix: float
    value: float


@dataclass
class ChangePoint:
    key: SeriesKey
    index: int  # position in the series of the first run at the new level
    before: Point  # last run at the old level
    after: Point  # first run at the new level
    old_value: float  # median of the old level's runs
    new_value: float  # median of the new level's runs
    p_value: float
    kind: str
    gated: bool
    normalized: bool = False  # judged relative to the machine reference (values are at the median machine speed)
    acknowledged: bool = False
    steps: int = 1  # > 1: a drift, this many same-direction change points merged (``merge_drifts``)
    end_index: int | None = None  # a drift: position of the first run at its final level
    end: Point | None = None  # a drift: that run
    series_runs: int = 0  # runs in the series (for "run X of N")

    @property
    def is_drift(self) -> bool:
        return self.steps > 1

    @property
    def last_index(self) -> int:
        """Position of the first run at the final level (the change point itself for a step)."""
        return self.end_index if self.end_index is not None else self.index

    @property
    def last(self) -> Point:
        return self.end or self.after

    @property
    def change_pct(self) -> float:
        """For a drift: the total, from the level before its first step to the level after its last."""
        return (self.new_value - self.old_value) / abs(self.old_value) * 100 if self.old_value else math.inf

    @property
    def ref(self) -> str:
        """What an acknowledgement names: the first commit of the new level, or its run when git was unknown. For a
        drift the final level's: acknowledging accepts it as far as it went, and a further step reopens it."""
        return self.last.commit or f"run:{self.last.run_id}"

    def where(self) -> str:
        """'step at run 121 of 200' or 'drift over 10 steps from run 9 to run 186 of 200' (runs counted from 1)."""
        of = f" of {self.series_runs}" if self.series_runs else ""
        if self.is_drift:
            return f"drift over {self.steps} steps from run {self.index + 1} to run {self.last_index + 1}{of}"
        return f"step at run {self.index + 1}{of}"

    @property
    def id(self) -> str:
        text = "|".join((self.key.test_id, self.key.device, self.key.runtime, self.key.metric, str(self.after.run_id)))
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]

    def commit_range(self) -> str:
        return f"{_short(self.before.commit)}..{_short(self.last.commit)}"


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "?"


@dataclass(frozen=True)
class Direction:
    higher_is_better: bool | None  # None: unknown
    gated: bool
    accuracy_pp: float | None = None  # accuracy: minimum change in percentage points instead of %
    timing: bool = False  # judged relative to the machine-speed reference when every run timed it


def direction(metric: str) -> Direction:
    """From the verdict's rules (fps up is good, latency/memory up is bad, accuracy down is bad)."""
    from ..verdict.rules import rule_for

    rule = rule_for(metric)
    if rule is not None:
        return Direction(rule.higher_is_better, True, rule.tolerance if rule.kind == "accuracy" else None,
                         rule.kind == "timing")
    if metric in _LOWER_IS_BETTER_EXTRA:
        return Direction(False, False)
    return Direction(None, False)


# ---- detection ------------------------------------------------------------------------------------------------


def noise_sigma(values: np.ndarray) -> float:
    """Run-to-run noise: MAD of successive differences / sqrt(2), robust to steps, drifts and outliers."""
    diffs = np.diff(values)
    mad = float(np.median(np.abs(diffs - np.median(diffs)))) * 1.4826 / math.sqrt(2) if diffs.size else 0.0
    floor = 1e-6 * max(float(np.median(np.abs(values))), 1e-12)  # deterministic series (accuracy): any step counts
    return max(mad, floor)


def detect(values: list[float] | np.ndarray, *, min_runs: int = DEFAULT_MIN_RUNS, alpha: float = DEFAULT_ALPHA,
           min_change_pct: float = DEFAULT_MIN_CHANGE_PCT, min_change_abs: float | None = None
           ) -> list[tuple[int, float]]:
    """Breakpoints of a series as [(index of the first value at the new level, p-value)], oldest first."""
    import ruptures as rpt
    from scipy.stats import mannwhitneyu

    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2 * min_runs:
        return []
    z = (x - np.median(x)) / noise_sigma(x)
    z = np.clip(z, -1e6, 1e6)  # a deterministic series scaled by the tiny floor stays finite
    cuts = [b for b in rpt.Pelt(model="l2", min_size=min_runs, jump=1).fit(z).predict(pen=PENALTY_LOG_N * math.log(n))
            if b < n]

    def test(i: int) -> tuple[float, bool]:
        lo = cuts[i - 1] if i > 0 else 0
        hi = cuts[i + 1] if i + 1 < len(cuts) else n
        left, right = x[lo:cuts[i]], x[cuts[i]:hi]
        old, new = float(np.median(left)), float(np.median(right))
        if min_change_abs is not None:
            big = abs(new - old) >= min_change_abs
        else:
            big = old != 0 and abs(new - old) / abs(old) * 100 >= min_change_pct
        if np.ptp(left) == 0 and np.ptp(right) == 0:  # two constant levels: as certain as a rank test can be
            return (0.0 if old != new else 1.0), big
        p = float(mannwhitneyu(left, right, alternative="two-sided").pvalue)
        return p, big

    while cuts:
        results = [test(i) for i in range(len(cuts))]
        failing = [(p if big else 2.0 + p, i) for i, (p, big) in enumerate(results) if p >= alpha or not big]
        if not failing:
            return [(c, r[0]) for c, r in zip(cuts, results, strict=True)]
        del cuts[max(failing)[1]]  # the least convincing goes first; its neighbours are tested again on wider sides
    return []


def _mann_kendall(x: np.ndarray) -> tuple[float, float]:
    """Mann-Kendall S (concordant minus discordant pairs over time) and its variance without ties."""
    n = x.size
    s = float(np.sign(x[None, :] - x[:, None])[np.triu_indices(n, 1)].sum())
    return s, n * (n - 1) * (2 * n + 5) / 18


def merge_drifts(values: list[float] | np.ndarray, found: list[tuple[int, float]], *,
                 alpha: float = DRIFT_ALPHA, min_slide: float = DRIFT_MIN_SLIDE) -> list[list[int]]:
    """Group ``detect``'s breakpoints (positions in ``found``) into reported changes. A maximal run of consecutive
    breakpoints that move the level the same way is one drift when the levels between them keep sliding that way:
    the stratified (seasonal) Mann-Kendall test over those levels, one-sided p < ``alpha``, pools every level's
    trend, so a 10-step staircase is judged on all its runs at once; and the levels' Theil-Sen slide adds up to at
    least ``min_slide`` of their steps. Flat levels between separate steps fail it. Otherwise every breakpoint is a
    group of one (a step)."""
    from scipy.stats import norm, theilslopes

    x = np.asarray(values, dtype=float)
    bounds = [0] + [i for i, _ in found] + [x.size]
    levels = [float(np.median(x[bounds[k]:bounds[k + 1]])) for k in range(len(bounds) - 1)]
    signs = [np.sign(levels[j + 1] - levels[j]) for j in range(len(found))]
    runs: list[list[int]] = []
    for j, sign in enumerate(signs):
        if runs and sign != 0 and sign == signs[runs[-1][-1]]:
            runs[-1].append(j)
        else:
            runs.append([j])
    groups: list[list[int]] = []
    for run in runs:
        sign = signs[run[0]]
        s_sum = var_sum = slide = steps = 0.0
        for j in run[1:]:  # the level between breakpoint j-1 and j
            plateau = x[bounds[j]:bounds[j + 1]]
            s, var = _mann_kendall(plateau)
            s_sum, var_sum = s_sum + s, var_sum + var
            slide += float(theilslopes(plateau, np.arange(plateau.size)).slope) * (plateau.size - 1) * sign
            steps += min(abs(levels[j + 1] - levels[j]), abs(levels[j] - levels[j - 1]))
        if len(run) > 1 and var_sum > 0:
            z = (s_sum * sign - 1) / math.sqrt(var_sum)  # with continuity correction
            if float(norm.sf(z)) < alpha and slide >= min_slide * steps:
                groups.append(run)
                continue
        groups.extend([j] for j in run)
    return groups


def classify(metric: str, old: float, new: float) -> str:
    d = direction(metric)
    if d.higher_is_better is None or new == old:
        return CHANGE
    better = new > old if d.higher_is_better else new < old
    return IMPROVEMENT if better else REGRESSION


# ---- over the history -----------------------------------------------------------------------------------------


@dataclass
class Filters:
    test: str | None = None  # substring of the test id
    device: str | None = None
    runtime: str | None = None
    metrics: tuple[str, ...] = ()  # empty: every metric
    branch: str | None = None

    def where(self, query: Select, runs: Table, meas: Table) -> Select:
        """``query`` narrowed to the runs and measurements these filters select (the metric filter is the caller's:
        not every query reads the metrics table)."""
        if self.test:
            query = query.where(meas.c.test_id.contains(self.test, autoescape=True))
        if self.device:
            query = query.where(runs.c.device == self.device)
        if self.runtime:
            query = query.where(meas.c.runtime == self.runtime)
        if self.branch:
            query = query.where(runs.c.branch == self.branch)
        return query


def load_series(engine: Engine, filters: Filters | None = None) -> dict[SeriesKey, list[Point]]:
    """Every series in the history, its runs in the order they were measured; only measurements with status ok."""
    import sqlalchemy as sa

    f = filters or Filters()
    t = tables()
    runs, meas, metrics = t["runs"], t["measurements"], t["metrics"]
    query = (sa.select(meas.c.test_id, runs.c.device, meas.c.runtime, metrics.c.name, runs.c.id,
                       runs.c.commit_sha, runs.c.created_unix, metrics.c.value)
             .select_from(metrics.join(meas, metrics.c.measurement_id == meas.c.id)
                          .join(runs, meas.c.run_id == runs.c.id))
             .where(meas.c.status == "ok"))
    query = f.where(query, runs, meas)
    if f.metrics:
        query = query.where(metrics.c.name.in_(f.metrics))
    grouped: dict[SeriesKey, dict[int, list]] = defaultdict(dict)
    with engine.connect() as conn:
        for test_id, device, runtime, name, run_id, commit, created, value in conn.execute(query):
            key = SeriesKey(test_id, device, runtime, name)
            grouped[key].setdefault(run_id, [commit, created, []])[2].append(value)
    out: dict[SeriesKey, list[Point]] = {}
    for key, by_run in grouped.items():
        points = [Point(run_id, commit, float(created), float(statistics.median(vals)))
                  for run_id, (commit, created, vals) in by_run.items()]
        out[key] = sorted(points, key=lambda p: (p.created_unix, p.run_id))
    return out


@dataclass
class Ack:
    test_id: str
    device: str | None
    runtime: str | None
    metric: str | None
    commit: str

    def matches(self, cp: ChangePoint) -> bool:
        return (self.test_id == cp.key.test_id and self.device in (None, cp.key.device)
                and self.runtime in (None, cp.key.runtime) and self.metric in (None, cp.key.metric)
                and cp.ref.startswith(self.commit))


def load_acks(engine: Engine) -> list[Ack]:
    import sqlalchemy as sa

    acks = tables()["acks"]
    with engine.connect() as conn:
        return [Ack(*row) for row in conn.execute(sa.select(acks.c.test_id, acks.c.device, acks.c.runtime,
                                                               acks.c.metric, acks.c.commit_sha))]


@dataclass
class Analysis:
    series: dict[SeriesKey, list[Point]]
    changes: list[ChangePoint] = field(default_factory=list)

    def newest_by_series(self) -> dict[SeriesKey, ChangePoint]:
        out: dict[SeriesKey, ChangePoint] = {}
        for cp in self.changes:
            if cp.key not in out or cp.last_index > out[cp.key].last_index:
                out[cp.key] = cp
        return out

    def blocking(self) -> list[ChangePoint]:
        """Gated series whose newest change point is a regression nobody acknowledged: what fails the command."""
        return [cp for cp in self.newest_by_series().values()
                if cp.gated and cp.kind == REGRESSION and not cp.acknowledged]


def analyse(engine: Engine, filters: Filters | None = None, *, min_runs: int = DEFAULT_MIN_RUNS,
            alpha: float = DEFAULT_ALPHA, min_change_pct: float = DEFAULT_MIN_CHANGE_PCT) -> Analysis:
    f = filters or Filters()
    wanted = set(f.metrics)
    # timing is judged relative to the machine reference: load it even when only fps was asked for
    series = load_series(engine, replace(f, metrics=(*f.metrics, REFERENCE_METRIC)) if wanted else f)
    acks = load_acks(engine)
    analysis = Analysis({k: v for k, v in series.items() if not wanted or k.metric in wanted})
    for key, points in sorted(analysis.series.items()):
        d = direction(key.metric)
        values, normalized = machine_normalized(series, key, points, d)
        found = detect(values, min_runs=min_runs, alpha=alpha, min_change_pct=min_change_pct,
                       min_change_abs=d.accuracy_pp)
        bounds = [0] + [i for i, _ in found] + [len(values)]
        for group in merge_drifts(values, found):
            first, last = group[0], group[-1]
            index, end = found[first][0], found[last][0]
            old = float(np.median(values[bounds[first]:index]))
            new = float(np.median(values[end:bounds[last + 2]]))
            cp = ChangePoint(key, index, points[index - 1], points[index], old, new,
                             max(found[j][1] for j in group), classify(key.metric, old, new), d.gated, normalized,
                             steps=len(group), end_index=end if len(group) > 1 else None,
                             end=points[end] if len(group) > 1 else None, series_runs=len(values))
            cp.acknowledged = any(a.matches(cp) for a in acks)
            analysis.changes.append(cp)
    analysis.changes.sort(key=lambda cp: (cp.last.created_unix, cp.last.run_id), reverse=True)
    return analysis


def machine_normalized(series: dict[SeriesKey, list[Point]], key: SeriesKey, points: list[Point],
                       d: Direction) -> tuple[list[float], bool]:
    """A timing series relative to the machine-speed reference each run timed (``reference_ms``), as the verdict
    judges timing: a shared machine that was 10% slower for an hour moves the model and the reference alike, and
    the ratio stays. Scaled to the reference's median so values keep their unit. Raw when any run lacks it."""
    raw = [p.value for p in points]
    ref = series.get(SeriesKey(key.test_id, key.device, key.runtime, REFERENCE_METRIC))
    if not d.timing or not ref:
        return raw, False
    by_run = {p.run_id: p.value for p in ref}
    if not all(by_run.get(p.run_id, 0) > 0 for p in points):
        return raw, False
    r = np.array([by_run[p.run_id] for p in points])
    r = r / np.median(r)
    scaled = np.asarray(raw) * r if d.higher_is_better else np.asarray(raw) / r
    return [float(v) for v in scaled], True


def acknowledge(engine: Engine, analysis: Analysis, target: str, commit: str | None = None, *,
                note: str = "") -> list[ChangePoint]:
    """``ack ID`` (one change point) or ``ack TEST COMMIT`` (that test's change points whose new level starts at
    COMMIT, a prefix, on every device, runtime and metric). Returns what it acknowledged; HistoryError if nothing."""
    import time

    import sqlalchemy as sa

    from .db import write_with_retry

    if commit is None:
        cp = find_by_id(analysis, target)
        rows = [{"test_id": cp.key.test_id, "device": cp.key.device, "runtime": cp.key.runtime,
                 "metric": cp.key.metric, "commit_sha": cp.ref}]
        hits = [cp]
    else:
        tests = sorted({cp.key.test_id for cp in analysis.changes if target in cp.key.test_id})
        exact = [t for t in tests if t == target]
        if exact:
            tests = exact
        if not tests:
            raise HistoryError(f"no change point of a test matching {target!r} (list them with: edgeperf history "
                               "changes)")
        if len(tests) > 1:
            raise HistoryError(f"{target!r} matches {len(tests)} tests ({', '.join(tests[:3])}"
                               f"{' ...' if len(tests) > 3 else ''}); give the full test id")
        hits = [cp for cp in analysis.changes if cp.key.test_id == tests[0] and cp.ref.startswith(commit)]
        if not hits:
            refs = sorted({_short(cp.ref) for cp in analysis.changes if cp.key.test_id == tests[0]})
            raise HistoryError(f"{tests[0]}: no change point starts at commit {commit!r} (its change points start "
                               f"at: {', '.join(refs)})")
        rows = [{"test_id": tests[0], "device": None, "runtime": None, "metric": None, "commit_sha": commit}]
    now = time.time()
    acks = tables()["acks"]
    write_with_retry(engine, lambda conn: conn.execute(sa.insert(acks), [r | {"note": note, "acked_unix": now}
                                                                            for r in rows]))
    for cp in hits:
        cp.acknowledged = True
    return hits


def find_by_id(analysis: Analysis, cp_id: str) -> ChangePoint:
    hits = [cp for cp in analysis.changes if cp.id.startswith(cp_id)]
    if not hits:
        raise HistoryError(f"no change point has id {cp_id!r} (list them with: edgeperf history changes)")
    if len({cp.id for cp in hits}) > 1:
        raise HistoryError(f"id {cp_id!r} matches {len(hits)} change points; give more of it")
    return hits[0]
