"""The object a test talks to (the ``edgeperf`` fixture): measure a model, compare variants, read results.

``measure()`` runs one isolated measurement, judges it against the marker's limits and the stored baseline, and
records what would fail the test; the failure itself is raised on the test's own report by the plugin (so a
regressed test never prints "passed"). It delegates: settings layering to ``config``, model and input resolution
to ``resolve``, the instruments to ``session``, limits to ``limits``, and A/B comparisons to ``ab``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import resolve
from .ab.comparison import (
    Comparison,
    Gates,
    against_ref,
    compare_paired,
    compare_results,
    judge_against,
    timing_from_pairs,
)
from .config.marker import MarkerSpec
from .config.precedence import (
    MeasureArgumentError,
    MeasureArguments,
    clock_floor_ghz,
    marker_budget,
    measure_settings,
)
from .config.ranges import RANGES
from .config.settings import Budget
from .device.guard import DeviceNotReady
from .fileio import LockError
from .limits import LIMITS, Figures, limits_breach
from .measure import Instruments, MeasureRequest
from .resolve import REFERENCE_MODEL as REFERENCE_MODEL  # re-exported: benchmarks time the reference by its name
from .result import STATUS_OK, Result
from .session import Breach, EdgeperfFailure, EdgeperfSession
from .worker.client import AcceleratorUnavailableError, WorkerError

if TYPE_CHECKING:
    from .ab.estimate import PairedEstimate
    from .baseline import BaselineEntry
    from .report.progress import Progress
    from .verdict.outcome import TestVerdict
    from .worker.paired import PairedRun


class EdgeperfFixture:
    """Per-test handle: ``result = edgeperf.measure()``; figures for the test's own assertions."""

    def __init__(self, request: pytest.FixtureRequest, session: EdgeperfSession, spec: MarkerSpec,
                 framework: str | None, progress: Progress) -> None:
        self._request = request
        self._session = session
        self.spec = spec
        self.framework = framework
        self._progress = progress
        self.results: list[Result] = []
        self._pending_notes: list[str] = []  # said on the next result (--edgeperf-against: why not compared)

    @property
    def nodeid(self) -> str:
        return self._request.node.nodeid

    @property
    def result(self) -> Result | None:
        """The last measurement of this test."""
        return self.results[-1] if self.results else None

    @property
    def device(self) -> str:
        return self._session.profile.name

    @property
    def sustained_s(self) -> float | None:
        """Seconds of a sustained run (--edgeperf-sustained), None when not requested."""
        return self._session.settings.sustained_s

    @property
    def disabled(self) -> bool:
        """True under --edgeperf-disable: ``measure()`` returns results without figures (status 'disabled')."""
        return self._session.settings.disabled

    @property
    def quick(self) -> bool:
        """A smoke run (--edgeperf-quick): tiny budget, timing and speed-up gates informational."""
        return self._session.settings.quick

    @property
    def budget(self) -> Budget:
        """The budget ``measure()`` runs on before its own arguments: the session's (quick mode's tiny one
        ignores the marker's) with the marker's overrides. Suites assert sample counts against it."""
        return marker_budget(self.spec, self._session.settings)

    @property
    def cache_dir(self) -> Path:
        return self._session.settings.cache_dir

    # ---- measuring -----------------------------------------------------------------------------------------
    def measure(self, model: str | Path | None = None, *, framework: str | None = None, label: str | None = None,
                threads: int | None = None, inputs: str | None = None, preprocess: dict[str, Any] | None = None,
                prepare: str | None = None,
                accuracy: dict[str, Any] | None = None, min_samples: int | None = None,
                min_time_s: float | None = None, max_time_s: float | None = None,
                input_shapes: list[int] | dict[str, list[int]] | None = None,
                input_dtypes: dict[str, str] | None = None, input_values: dict[str, Any] | None = None,
                providers: Any = None, delegates: Any = None, backend: str | None = None,
                target: str | None = None, judge: bool = True) -> Result:
        """Measure ``model`` (default: the marker's) in this test's framework; returns the Result.

        ``label`` names a second measurement in the same test (e.g. "int8"); each label has its own baseline.
        Every measurement of a test needs its own id: a second call without a (new) label fails the test and
        asks for ``label=``, measuring nothing (two calls sharing an id would share one baseline entry).
        ``inputs``: "random" (default), a dataset (folder or CSV, prepared with ``preprocess``), or
        "module:function" returning input arrays, which ``prepare`` ("module:function") turns into model inputs
        inside the timed window (so throughput includes preprocessing, as the Pi 3 framework comparison measured
        it). ``input_shapes`` (a shape, or ``{input name: shape}``) resolves dynamic dimensions; ``input_dtypes``
        (``{name: dtype}``) and ``input_values`` (``{name: number or array}``) set what an input is fed. Each
        replaces the marker's argument of the same name.
        ``providers`` (ONNX Runtime), ``delegates`` (LiteRT; ``[]`` turns XNNPACK off) and ``backend``/``target``
        (OpenCV DNN) choose the accelerator path of their own runtime, replacing the marker's; one that is not
        available here skips the test (fails it under --edgeperf-strict).
        """
        s = self._session.settings
        given = MeasureArguments(
            threads=threads, inputs=inputs, preprocess=preprocess, prepare=prepare, accuracy=accuracy,
            min_samples=min_samples, min_time_s=min_time_s, max_time_s=max_time_s, input_shapes=input_shapes,
            input_dtypes=input_dtypes, input_values=input_values, providers=providers, delegates=delegates,
            backend=backend, target=target)
        req = self._build_request(model, framework, label, given)
        if s.disabled:  # --edgeperf-disable: one untimed inference in-process, no figures, nothing judged
            try:
                return self._run_disabled(req)
            except AcceleratorUnavailableError as exc:
                self._unavailable(str(exc))
        baseline = self._lookup_baseline(req.test_id) if judge else None
        against = None
        if s.against and judge:
            against = against_ref(req, s, self._pending_notes, self._session.device_notes)
        if against is not None:
            return self._measure_against(req, baseline, *against)
        from .measure import run_measurement

        with self._worker_errors():
            try:
                result = run_measurement(req, self._instruments(), self._progress)
            except AcceleratorUnavailableError as exc:
                self._unavailable(f"{req.framework} on {req.model}: {exc}")
        self._keep(result, self._session.unavailable + self._pending_notes)
        self._pending_notes.clear()
        self._check_limits(result)
        if judge:
            self._judge(result, baseline)
        return result

    def _build_request(self, model: str | Path | None, framework: str | None, label: str | None,
                       given: MeasureArguments) -> MeasureRequest:
        """What ``measure()`` (and each arm of ``compare()``) measures: the model resolved, the budget and inputs."""
        s = self._session.settings
        test_id = self.nodeid + (f"::{label}" if label else "")
        if any(r.test_id == test_id for r in self.results):
            said = f"label={label!r}" if label else "no label"
            raise EdgeperfFailure(f"edgeperf.measure() was called a second time with {said} in this test: give each "
                                  "measurement its own label= (e.g. label='int8'), so each has its own baseline")
        model_given = resolve.model_name(model, self.spec.model, s.cache_dir)
        name = resolve.runtime_name(framework or self.framework)
        try:
            m = measure_settings(self.spec, given, s, name)
        except MeasureArgumentError as exc:
            raise EdgeperfFailure(str(exc)) from None
        model_file = resolve.model_file(name, model_given, s, self._progress, m.input_shapes)
        return MeasureRequest(
            test_id=test_id, framework=name, model=model_given, model_file=model_file, threads=m.threads,
            budget=m.budget, inputs=resolve.inputs(m.inputs, m.preprocess, given.prepare, s, self._progress),
            accuracy=resolve.accuracy(m.accuracy, s, self._progress), sys_path=self._sys_path(), quick=s.quick,
            counters=m.counters, hotspots=m.hotspots, artifacts_dir=s.rootdir / ".edgeperf" / "hotspots" /
            _safe(test_id), processes=m.processes, worker_pairs=m.worker_pairs,
            reference_file=resolve.reference_file(name, s.cache_dir, self._session.unavailable) if m.reference
            else None, accelerator=m.accelerator, input_shapes=m.input_shapes, input_dtypes=m.input_dtypes,
            input_values=m.input_values)

    def _instruments(self) -> Instruments:
        """The session's instruments with this test's clock floor (the marker's, else the session's)."""
        floor = clock_floor_ghz(self.spec, self._session.settings, self._session.profile.floor_freq_ghz)
        return self._session.instruments_for(floor, self._progress, self._announce)

    @contextlib.contextmanager
    def _worker_errors(self) -> Iterator[None]:
        """A crashed or hung worker or a lock timeout is this test's one-line failure; a device never ready is a
        skip (a failure under --edgeperf-guard-fail). The progress line is cleared either way."""
        try:
            yield
        except (WorkerError, LockError) as exc:
            raise EdgeperfFailure(str(exc)) from None
        except DeviceNotReady as exc:
            message = str(exc)  # the guard's own line: "device not ready after 120 s: ..."
            if self._session.settings.guard_fail:
                raise EdgeperfFailure(message) from None
            raise pytest.skip.Exception(message, _use_item_location=True) from None
        finally:
            if self._progress:
                self._progress.clear()

    def _keep(self, result: Result, notes: list[str]) -> None:
        """A measured result: the session's notes on it, kept for this test and for the reports."""
        result.notes.extend(n for n in notes if n not in result.notes)
        self.results.append(result)
        self._session.add_result(result)

    def _run_disabled(self, req: MeasureRequest) -> Result:
        from .disabled import DisabledRunError, run_once

        try:
            result = run_once(req, self._session.profile.name, dict(self._session.environment))
        except DisabledRunError as exc:
            raise EdgeperfFailure(str(exc)) from None
        self.results.append(result)  # the test's own list only: a disabled result is in no report
        return result

    def _unavailable(self, reason: str) -> None:
        """A requested accelerator this machine lacks: a skip saying so, a failure under --edgeperf-strict."""
        if self._session.settings.strict:
            raise EdgeperfFailure(f"{reason} (--edgeperf-strict)") from None
        raise pytest.skip.Exception(reason, _use_item_location=True) from None

    def _lookup_baseline(self, test_id: str) -> BaselineEntry | None:
        """Read this test's baseline before measuring: a corrupt file fails now, not after the whole budget."""
        from .baseline import BaselineError

        try:
            return self._session.store.lookup(test_id)
        except BaselineError as exc:
            if self._session.settings.update_baselines:
                self._session.baseline_errors.append(str(exc))
            raise EdgeperfFailure(str(exc)) from None

    # ---- comparing -----------------------------------------------------------------------------------------
    def compare(self, variant: Result | str | Path, parent: Result | str | Path, *,
                min_speedup: float | None = None, max_slowdown_pct: float | None = None,
                max_memory_ratio: float | None = None, max_accuracy_drop_pct: float | None = None,
                accuracy_metric: str = "top1_pct", variant_size: int | None = None,
                parent_size: int | None = None, framework: str | None = None, threads: int | None = None,
                inputs: str | None = None, preprocess: dict[str, Any] | None = None, prepare: str | None = None,
                accuracy: dict[str, Any] | None = None, min_time_s: float | None = None,
                max_time_s: float | None = None,
                input_shapes: list[int] | dict[str, list[int]] | None = None,
                input_dtypes: dict[str, str] | None = None, input_values: dict[str, Any] | None = None,
                labels: tuple[str, str] = ("variant", "parent"), processes: int | None = None) -> Comparison:
        """Gate an optimised variant on its parent: speed-up, memory, and accuracy cost, in one table.

        Given two models (paths, ``zoo:``, ``cache:``), both are measured interleaved in short turns by two
        workers (paired.py) and the speed-up is judged with a 95% interval (compare.py): ``min_speedup=1.5``
        passes when the interval's lower bound is >= 1.5x, ``max_slowdown_pct=5`` fails when its upper bound is
        below 1/1.05 (shown more than 5% slower), passes when its lower bound is at or above it, and is
        INCONCLUSIVE between. The measuring arguments (framework, threads, inputs, ...) apply to both arms.
        Given two Results measured one after the other, the speed-up is their fps ratio (a point estimate).
        Gates not given here come from the marker (``min_speedup``, ``max_accuracy_drop_pct``).
        ``processes``: fresh worker pairs the turns are split across (default: the marker's ``processes``, else
        ``--edgeperf-processes`` as given, else 3); more pairs average more process layouts and narrow the
        interval, each costing a model load and warm-up per arm.
        """
        if isinstance(variant, Result) != isinstance(parent, Result):
            raise EdgeperfFailure("compare() takes two models (measured interleaved) or two Results (measured "
                                  "one after the other), not one of each")
        s = self._session.settings
        gates = Gates(min_speedup=self.spec.min_speedup if min_speedup is None else min_speedup,
                      max_slowdown_pct=max_slowdown_pct, max_memory_ratio=max_memory_ratio,
                      max_accuracy_drop_pct=self.spec.max_accuracy_drop_pct if max_accuracy_drop_pct is None
                      else max_accuracy_drop_pct, accuracy_metric=accuracy_metric)
        if isinstance(variant, Result):
            assert isinstance(parent, Result)
            comparison, breach = compare_results(variant, parent, gates, variant_size, parent_size, s)
        else:
            assert not isinstance(parent, Result)
            given = MeasureArguments(threads=threads, inputs=inputs, preprocess=preprocess, prepare=prepare,
                                     accuracy=accuracy, min_time_s=min_time_s, max_time_s=max_time_s,
                                     input_shapes=input_shapes, input_dtypes=input_dtypes, input_values=input_values)
            a = self._build_request(variant, framework, labels[0], given)
            b = self._build_request(parent, framework, labels[1], given)
            if processes is not None:  # the option's range (config/ranges.py), as the marker's processes=
                why = ("must be an integer" if isinstance(processes, bool) or not isinstance(processes, int)
                       else RANGES["processes"].violation(processes))
                if why is not None:
                    raise EdgeperfFailure(f"compare(processes={processes!r}): the worker pairs {why}")
                a = replace(a, worker_pairs=processes)
            if s.disabled:
                return Comparison(self._run_disabled(a), self._run_disabled(b), None, None, None, {})
            run = self._run_pair(a, b, labels)
            for result in (run.a, run.b):
                self._keep(result, self._session.unavailable)
            comparison, breach = compare_paired(run, a, b, labels, gates, variant_size, parent_size, s)
        if breach is not None:
            self._session.add_breach(self.nodeid, breach)
        return comparison

    def _run_pair(self, a: MeasureRequest, b: MeasureRequest, labels: tuple[str, str]) -> PairedRun:
        """Both arms interleaved; a crash, hang or lock timeout is this test's one-line failure."""
        from .worker.paired import run_paired

        with self._worker_errors():
            return run_paired(a, b, self._instruments(), self._progress,
                              python_b=self._session.settings.against_python, labels=labels,
                              blocks=a.worker_pairs)

    def _measure_against(self, req: MeasureRequest, baseline: BaselineEntry | None, ref_req: MeasureRequest,
                         ref: str) -> Result:
        """The model timed interleaved with REF's version: fps from the pairs, the rest against the baselines."""
        from .verdict.rules import merge_tolerances

        run = self._run_pair(req, ref_req, ("current", ref))
        result = run.a
        self._keep(result, self._session.unavailable)
        self._check_limits(result)
        tolerances = merge_tolerances(self._session.settings.tolerances, self.spec.tolerance)
        self._judge(result, baseline, paired=judge_against(run, ref, tolerances, self._session.settings))
        return result

    # ---- checks --------------------------------------------------------------------------------------------
    def _check_limits(self, result: Result) -> None:
        """The marker's absolute limits (limits.py); the ones broken fail the test with one table."""
        figures = Figures(result, result.metric_values(), self._session.settings.quick)
        failures = [failure for limit in LIMITS if (failure := limit(self.spec, figures)) is not None]
        if failures and result.status == STATUS_OK:
            self._session.add_breach(self.nodeid, limits_breach(result, failures))

    def _judge(self, result: Result, entry: BaselineEntry | None, paired: PairedEstimate | None = None) -> None:
        """The verdict against the stored baseline (fps against REF's model under --edgeperf-against)."""
        from .verdict.judge import judge
        from .verdict.rules import merge_tolerances

        s = self._session.settings
        tolerances = merge_tolerances(s.tolerances, self.spec.tolerance)
        verdict = judge(result, entry, tolerances, strict=s.strict and not s.update_baselines,
                        max_cpu_wait_pct=s.max_cpu_wait_pct, noise_prior=self._session.store.noise_prior)
        if paired is not None:
            timing_from_pairs(verdict, paired)
        verdict.apply_to(result)
        if verdict.flags:
            if any(f.startswith("machine busy: in this run") for f in verdict.flags):
                # the verdict's note says it with the limit and the consequence: one busy note, not two
                result.notes[:] = [n for n in result.notes if not n.startswith("the machine was busy: ")]
            result.notes.extend(f for f in verdict.flags if f not in result.notes)
        if s.update_baselines or not verdict.failed:
            return
        # a quick run's timing has too few samples to gate on; accuracy is exact, so it still does
        if s.quick and verdict.overall == "REGRESSION" and not any(
                m.kind == "accuracy" for m in verdict.regressed()):
            result.notes.append("quick run: timing verdicts are informational only")
            return
        self._session.add_breach(self.nodeid, _regression_breach(result, verdict, self._session.profile.name, paired))

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _announce(self, message: str) -> None:
        announce = getattr(self._progress, "announce", None)
        if announce is not None:
            announce(message)

    def _sys_path(self) -> list[str]:
        paths = [str(self._session.settings.rootdir)]
        path = getattr(self._request.node, "path", None)
        if path is not None:
            paths.append(str(Path(path).parent))
        return paths


def _regression_breach(result: Result, verdict: TestVerdict, device: str, paired: PairedEstimate | None) -> Breach:
    """A regression (or a missing baseline under --edgeperf-strict): the verdict's line and its table; an fps
    regression against REF's model (--edgeperf-against) with the interleaved pairs' table above it."""
    from .verdict.table import format_verdict_table

    what = ("regressed against" if verdict.overall == "REGRESSION"
            else "has no baseline (--edgeperf-strict) in")
    summary = verdict.summary_line()
    table = format_verdict_table(verdict)
    if table.startswith(summary):  # the title below already says it: no second copy
        table = table[len(summary):].lstrip("\n")
    if paired is not None and any(m.metric == "fps" for m in verdict.regressed()):
        from .ab.estimate import paired_table

        return Breach(f"{result.framework} on {result.model}: fps regressed vs {paired.b_name} (interleaved): "
                      f"{paired.describe()}", paired_table(paired) + "\n\n" + table)
    return Breach(f"{result.framework} on {result.model} {what} the {device} baselines: "
                  f"{summary.removeprefix('edgeperf: ')}", table)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:150]
