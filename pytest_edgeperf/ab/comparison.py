"""A/B in one test: a variant against its parent (``edgeperf.compare()``) and, with --edgeperf-against=REF, a
changed model file against REF's version of it.

The fixture measures (two models are run interleaved by paired.py); this module turns the two Results into a
``Comparison``, its gates and the test's failure (a ``Breach``). Judging the pairs' speed-up with its interval is
compare.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..config.settings import Settings
from ..measure import MeasureRequest
from ..result import Result
from ..session import Breach
from ..worker.paired import PairedRun
from .estimate import PairedEstimate

if TYPE_CHECKING:
    from ..verdict.outcome import TestVerdict


@dataclass
class Comparison:
    """A variant measured against its parent in the same test (the YOLO optimisation, low-rank and ChangSafe
    pruning studies: speed-up and accuracy cost).

    ``paired`` is set when both were measured interleaved (``compare()`` given two models): the speed-up then
    has a 95% interval and each gate a verdict; without it ``speedup`` is a point estimate of two separate runs.
    """

    variant: Result
    parent: Result
    speedup: float | None
    memory_ratio: float | None
    size_ratio: float | None
    accuracy_drop_pct: dict[str, float]
    paired: PairedEstimate | None = None
    memory_verdict: str = ""

    @property
    def speedup_interval(self) -> tuple[float, float] | None:
        """The 95% interval of the speed-up (interleaved comparisons only)."""
        if self.paired is None or self.paired.low is None or self.paired.high is None:
            return None
        return self.paired.low, self.paired.high

    def table(self) -> str:
        if self.paired is not None:
            from .estimate import paired_table

            extra = [["peak memory MB", _fmt(self.variant.peak_rss_mb), _fmt(self.parent.peak_rss_mb),
                      _fmt(self.memory_ratio, "x"), "", "", self.memory_verdict or "-"]]
            if self.size_ratio is not None:
                extra.append(["model size", "", "", _fmt(self.size_ratio, "x"), "", "", "-"])
            for key, drop in self.accuracy_drop_pct.items():
                extra.append([key, _fmt(self.variant.accuracy.get(key)), _fmt(self.parent.accuracy.get(key)),
                              f"{-drop:+.2f} points", "", "", "-"])
            return paired_table(self.paired, extra)
        rows = [["speed-up (fps ratio)", _fmt(self.speedup, "x")],
                ["peak memory ratio", _fmt(self.memory_ratio, "x")]]
        if self.size_ratio is not None:
            rows.append(["model size ratio", _fmt(self.size_ratio, "x")])
        for key, drop in self.accuracy_drop_pct.items():
            rows.append([f"{key} drop (points)", f"{drop:+.2f}"])
        return tabulate(rows, headers=["variant vs parent", "value"], tablefmt="simple")


@dataclass(frozen=True)
class Gates:
    """What ``compare()`` requires of the variant (None: not gated); the marker's when not given to compare()."""

    min_speedup: float | None
    max_slowdown_pct: float | None
    max_memory_ratio: float | None
    max_accuracy_drop_pct: float | None
    accuracy_metric: str


def compare_results(variant: Result, parent: Result, gates: Gates, variant_size: int | None,
                    parent_size: int | None, settings: Settings) -> tuple[Comparison, Breach | None]:
    """Two Results measured one after the other: the speed-up is their fps ratio (a point estimate)."""
    size_ratio = variant_size / parent_size if variant_size and parent_size else None
    if settings.disabled:  # nothing was measured: only the file sizes compare, nothing gates
        return Comparison(variant, parent, None, None, size_ratio, {}), None
    speedup = (variant.fps / parent.fps) if variant.fps and parent.fps else None
    memory_ratio = _memory_ratio(variant, parent)
    drops = _accuracy_drops(variant, parent)
    comparison = Comparison(variant, parent, speedup, memory_ratio, size_ratio, drops)
    for extra, value in (("speedup_x", speedup), ("size_ratio", size_ratio), ("memory_ratio", memory_ratio)):
        if value is not None:
            variant.add_metric(extra, value)
    # the gates are the variant's limits: its reports say FAIL when one is breached
    quick = settings.quick
    for metric, limit, op, value in (("speedup_x", gates.min_speedup, ">=", speedup),
                                     ("memory_ratio", gates.max_memory_ratio, "<=", memory_ratio)):
        if limit is not None and not (quick and metric == "speedup_x"):  # quick: a note below, not a FAIL
            variant.add_limit(metric, op, limit, value)
    if gates.max_accuracy_drop_pct is not None:
        variant.add_limit(f"{gates.accuracy_metric}_drop_pp", "<=", gates.max_accuracy_drop_pct,
                          drops.get(gates.accuracy_metric))
    failures = []
    if gates.min_speedup is not None and (speedup is None or speedup < gates.min_speedup):
        shortfall = f"speed-up {_fmt(speedup, 'x')} < required {gates.min_speedup:g}x"
        if quick:  # a quick run's few samples cannot tell speeds apart: report only
            variant.notes.append(f"quick run: {shortfall} (informational only)")
        else:
            failures.append(shortfall)
    if gates.max_memory_ratio is not None and (memory_ratio is None or memory_ratio > gates.max_memory_ratio):
        failures.append(f"memory ratio {_fmt(memory_ratio, 'x')} > allowed {gates.max_memory_ratio:g}x")
    failures.extend(_accuracy_failures(drops, gates))
    slowdown = gates.max_slowdown_pct
    if slowdown is not None and (speedup is None or speedup < 1 / (1 + slowdown / 100)):
        failures.append(f"fps {(speedup - 1) * 100:+.1f}% (point estimate of two separate runs) beyond the "
                        f"{slowdown:g}% slowdown allowed" if speedup is not None
                        else "fps was not measured on both sides")
    if not failures:
        return comparison, None
    return comparison, Breach(f"variant {_name(variant)} vs {_name(parent)}: " + "; ".join(failures),
                              comparison.table())


def compare_paired(run: PairedRun, a: MeasureRequest, b: MeasureRequest, labels: tuple[str, str], gates: Gates,
                   variant_size: int | None, parent_size: int | None,
                   settings: Settings) -> tuple[Comparison, Breach | None]:
    """Two models measured interleaved: the speed-up from the pairs with its 95% interval, and the gates on it."""
    from .estimate import judge_paired

    variant, parent = run.a, run.b
    names = (a.model, b.model) if a.model != b.model else labels
    note_interpreters(run, names, settings)
    est = judge_paired(run, min_speedup=gates.min_speedup, max_slowdown_pct=gates.max_slowdown_pct, names=names)
    variant_size = variant_size or a.model_file.stat().st_size
    parent_size = parent_size or b.model_file.stat().st_size
    size_ratio = variant_size / parent_size if variant_size and parent_size else None
    memory_ratio = _memory_ratio(variant, parent)
    drops = _accuracy_drops(variant, parent)
    comparison = Comparison(variant, parent, est.speedup, memory_ratio, size_ratio, drops, paired=est)
    for extra, value in (("speedup_x", est.speedup), ("speedup_low_x", est.low), ("speedup_high_x", est.high),
                         ("size_ratio", size_ratio), ("memory_ratio", memory_ratio)):
        if value is not None:
            variant.add_metric(extra, value)
    variant.environment["paired_comparison"] = est.to_json()
    failures = [f"{g.gate}: {g.reason}" for g in est.gates if g.verdict in ("FAIL", "REGRESSION")]
    if settings.quick and failures:
        variant.notes.append("quick run: interleaved timing gates are informational only ("
                             + "; ".join(failures) + ")")
        failures = []
    if gates.max_memory_ratio is not None:
        ok = memory_ratio is not None and memory_ratio <= gates.max_memory_ratio
        comparison.memory_verdict = f"{'PASS' if ok else 'FAIL'} (max {gates.max_memory_ratio:g}x)"
        if not ok:
            failures.append(f"memory ratio {_fmt(memory_ratio, 'x')} > allowed {gates.max_memory_ratio:g}x")
    failures.extend(_accuracy_failures(drops, gates))
    for gate in est.gates:
        note = f"{names[0]} vs {names[1]} ({gate.gate}): {gate.verdict}: {gate.reason}"
        if note not in variant.notes:
            variant.notes.append(note)
    if not failures:
        return comparison, None
    return comparison, Breach(f"{names[0]} vs {names[1]}, interleaved: " + "; ".join(failures), comparison.table())


def note_interpreters(run: PairedRun, names: tuple[str, str], settings: Settings) -> None:
    """--edgeperf-against-python: each arm's interpreter and runtime version, on the result and in the JSON."""
    if not settings.against_python:
        return
    arms = []
    for name, result in zip(names, (run.a, run.b), strict=True):
        env = result.environment
        arms.append(f"{name}: Python {env.get('python')} ({env.get('python_executable')}), {result.framework} "
                    f"{env.get('runtime_version')}")
    note = "interpreters: " + "; ".join(arms)
    if note not in run.a.notes:
        run.a.notes.append(note)


# ---- --edgeperf-against=REF ----------------------------------------------------------------------------------------


def against_ref(req: MeasureRequest, settings: Settings, notes: list[str],
                session_notes: list[str]) -> tuple[MeasureRequest, str] | None:
    """--edgeperf-against=REF: REF's version of this model as a second request, when the model FILE changed.

    None (today's verdict) when it is unchanged, built by code, or REF's copy cannot be had; the reason is
    one line: a note for the result (``notes``), or once for the session (``session_notes``) when git or REF
    itself is the problem.
    """
    from .against import ref_model
    from .gitref import GitRefError, check_ref

    ref = settings.against
    assert ref is not None
    try:
        check_ref(ref, settings.rootdir)
    except GitRefError as exc:
        note = f"--edgeperf-against: {exc}; timing judged against the stored baselines"
        if note not in session_notes:
            session_notes.append(note)
        return None
    try:
        ref_file = ref_model(req.model, req.model_file, ref, settings.rootdir, settings.cache_dir)  # against.py
    except GitRefError as exc:
        notes.append(f"--edgeperf-against: {exc}; timing judged against the stored baselines")
        return None
    except OSError as exc:  # the cache is not writable
        notes.append(f"--edgeperf-against: cannot write {ref}'s model ({exc}); timing judged against the stored "
                     f"baselines")
        return None
    if ref_file is None:
        notes.append(f"model unchanged since {ref}: judged against the stored baselines")
        return None
    return replace(req, test_id=f"{req.test_id}@{ref}", model=f"{req.model}@{ref}", model_file=ref_file), ref


def judge_against(run: PairedRun, ref: str, tolerances: dict[str, float], settings: Settings) -> PairedEstimate:
    """The model's fps against REF's from the interleaved pairs, the fps tolerance as the allowed slowdown; kept in
    the result's environment (``paired_comparison``, ``against``) for the reports."""
    from ..verdict.rules import rule_for, tolerance_for
    from .estimate import judge_paired

    rule = rule_for("fps")
    assert rule is not None
    est = judge_paired(run, max_slowdown_pct=tolerance_for("fps", rule, tolerances), names=("current", ref))
    note_interpreters(run, ("current", ref), settings)
    result = run.a
    result.environment["paired_comparison"] = est.to_json()
    result.environment["against"] = {"ref": ref, "runtime_version": run.b.environment.get("runtime_version"),
                                     "python": run.b.environment.get("python"), "peak_rss_mb": run.b.peak_rss_mb}
    return est


def timing_from_pairs(verdict: TestVerdict, est: PairedEstimate) -> None:
    """--edgeperf-against: fps is judged from the interleaved pairs against REF's model (its row says "vs REF"),
    the other timing metrics are not judged (their baseline is another model); memory and accuracy stay."""
    from ..verdict.outcome import overall as _overall
    from .estimate import INCONCLUSIVE, REGRESSION

    gate = est.gates[0] if est.gates else None
    for m in verdict.metrics:
        if m.kind != "timing":
            continue
        if m.metric != "fps" or gate is None:
            m.verdict, m.note = "-", f"timing judged by fps vs {est.b_name} (interleaved)"
            continue
        m.baseline, m.current = est.b_fps, est.a_fps
        m.change_pct = None if est.speedup is None else (est.speedup - 1) * 100
        m.change_abs = None if est.a_fps is None or est.b_fps is None else est.a_fps - est.b_fps
        m.p_value, m.noise_floor_pct = gate.p_value, None
        m.verdict = {REGRESSION: "REGRESSION", INCONCLUSIVE: "INCONCLUSIVE"}.get(gate.verdict, "PASS")
        ratio = "n/a" if est.speedup is None else f"{est.speedup:.3g}x"
        m.note = f"vs {est.b_name} (interleaved): ratio {ratio} {est.interval_text()}"
    verdict.overall = _overall([m.verdict for m in verdict.metrics]) if verdict.overall != "NO_BASELINE" \
        else verdict.overall


def _memory_ratio(variant: Result, parent: Result) -> float | None:
    return variant.peak_rss_mb / parent.peak_rss_mb if variant.peak_rss_mb and parent.peak_rss_mb else None


def _accuracy_drops(variant: Result, parent: Result) -> dict[str, float]:
    """Percentage points each accuracy metric both measured fell from the parent to the variant."""
    return {k: parent.accuracy[k] - variant.accuracy[k] for k in parent.accuracy
            if k in variant.accuracy and k.endswith("_pct")}


def _accuracy_failures(drops: dict[str, float], gates: Gates) -> list[str]:
    if gates.max_accuracy_drop_pct is None:
        return []
    drop = drops.get(gates.accuracy_metric)
    if drop is None:
        return [f"{gates.accuracy_metric} was not measured on both sides"]
    if drop > gates.max_accuracy_drop_pct:
        return [f"{gates.accuracy_metric} dropped {drop:.2f} points > allowed {gates.max_accuracy_drop_pct:g}"]
    return []


def _name(result: Result) -> str:
    """How a measurement is named in a comparison: its label if it has one, else its model."""
    _, _, label = result.test_id.rpartition("::")
    return label if label and "[" not in label and "/" not in label else result.model


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}{unit}"
