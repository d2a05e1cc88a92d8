"""The object a test talks to (the ``edgeperf`` fixture): measure a model, compare variants, read results.

``measure()`` runs one isolated measurement, judges it against the marker's limits and the stored baseline, and
records what would fail the test; the failure itself is raised on the test's own report by the plugin (so a
regressed test never prints "passed").
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from .compare import PairedEstimate
from .config import Budget, MarkerSpec
from .fileio import LockError
from .measure import (
    AcceleratorUnavailableError,
    DeviceNotReady,
    Instruments,
    MeasureRequest,
    WorkerError,
    run_measurement,
)
from .paired import PairedRun
from .result import STATUS_OK, Result
from .session import Breach, EdgeperfSession


class EdgeperfFailure(Exception):
    """Fails the test with a one-line reason (worker crash, missing model): no traceback from our code."""


@dataclass
class Comparison:
    """A variant measured against its parent in the same test (seeds 000, 002, 003: speed-up and accuracy cost).

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
            from .compare import paired_table

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


class EdgeperfFixture:
    """Per-test handle: ``result = edgeperf.measure()``; figures for the test's own assertions."""

    def __init__(self, request: pytest.FixtureRequest, session: EdgeperfSession, spec: MarkerSpec,
                 framework: str | None, progress: Any) -> None:
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
        s = self._session.settings
        if s.quick:
            return s.budget
        spec = self.spec
        return _budget_with(s.budget, spec.min_samples, spec.min_time_s, spec.max_time_s, spec.warmup_s)

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
        inside the timed window (so throughput includes preprocessing, as seed 001 measured it).
        ``input_shapes`` (a shape, or ``{input name: shape}``) resolves dynamic dimensions; ``input_dtypes``
        (``{name: dtype}``) and ``input_values`` (``{name: number or array}``) set what an input is fed. Each
        replaces the marker's argument of the same name.
        ``providers`` (ONNX Runtime), ``delegates`` (LiteRT; ``[]`` turns XNNPACK off) and ``backend``/``target``
        (OpenCV DNN) choose the accelerator path of their own runtime, replacing the marker's; one that is not
        available here skips the test (fails it under --edgeperf-strict).
        """
        s = self._session.settings
        test_id = self.nodeid + (f"::{label}" if label else "")
        if any(r.test_id == test_id for r in self.results):
            said = f"label={label!r}" if label else "no label"
            raise EdgeperfFailure(f"edgeperf.measure() was called a second time with {said} in this test: give each "
                                  "measurement its own label= (e.g. label='int8'), so each has its own baseline")
        req = self._build_request(model, framework=framework, label=label, threads=threads, inputs=inputs,
                                  preprocess=preprocess, prepare=prepare, accuracy=accuracy,
                                  min_samples=min_samples, min_time_s=min_time_s, max_time_s=max_time_s,
                                  input_shapes=input_shapes, input_dtypes=input_dtypes, input_values=input_values,
                                  providers=providers, delegates=delegates, backend=backend, target=target)
        if s.disabled:  # --edgeperf-disable: one untimed inference in-process, no figures, nothing judged
            try:
                return self._run_disabled(req)
            except AcceleratorUnavailableError as exc:
                self._unavailable(str(exc))
        baseline = self._lookup_baseline(req.test_id) if judge else None
        against = self._against_ref(req) if s.against and judge else None
        if against is not None:
            return self._measure_against(req, baseline, *against)
        inst = self._instruments()
        try:
            result = run_measurement(req, inst, self._progress)
        except AcceleratorUnavailableError as exc:
            self._unavailable(f"{req.framework} on {req.model}: {exc}")
        except (WorkerError, LockError) as exc:
            raise EdgeperfFailure(str(exc)) from None
        except DeviceNotReady as exc:
            message = str(exc)  # the guard's own line: "device not ready after 120 s: ..."
            if s.guard_fail:
                raise EdgeperfFailure(message) from None
            raise pytest.skip.Exception(message, _use_item_location=True) from None
        finally:
            if self._progress:
                self._progress.clear()
        result.notes.extend(n for n in self._session.unavailable + self._pending_notes if n not in result.notes)
        self._pending_notes.clear()
        self.results.append(result)
        self._session.add_result(result)
        self._check_limits(result)
        if judge:
            self._judge(result, baseline)
        return result

    def _build_request(self, model: str | Path | None, *, framework: str | None = None, label: str | None = None,
                       threads: int | None = None, inputs: str | None = None,
                       preprocess: dict[str, Any] | None = None, prepare: str | None = None,
                       accuracy: dict[str, Any] | None = None, min_samples: int | None = None,
                       min_time_s: float | None = None, max_time_s: float | None = None,
                       input_shapes: list[int] | dict[str, list[int]] | None = None,
                       input_dtypes: dict[str, str] | None = None,
                       input_values: dict[str, Any] | None = None, providers: Any = None, delegates: Any = None,
                       backend: str | None = None, target: str | None = None) -> MeasureRequest:
        """What ``measure()`` (and each arm of ``compare()``) measures: the model resolved, the budget and inputs."""
        s = self._session.settings
        spec = self.spec
        test_id = self.nodeid + (f"::{label}" if label else "")
        if any(r.test_id == test_id for r in self.results):
            said = f"label={label!r}" if label else "no label"
            raise EdgeperfFailure(f"edgeperf.measure() was called a second time with {said} in this test: give each "
                                  "measurement its own label= (e.g. label='int8'), so each has its own baseline")
        model_given = str(model) if model is not None else spec.model
        if model_given is not None and Path(model_given).is_absolute():
            with contextlib.suppress(ValueError):  # a generated model: show it by its cache-relative name
                model_given = "cache:" + str(Path(model_given).relative_to(s.cache_dir))
        if model_given is None:
            raise EdgeperfFailure("no model: give @pytest.mark.edgeperf(model=...) or edgeperf.measure(model)")
        name = framework or self.framework
        if name is None:
            raise EdgeperfFailure("no framework: request the 'framework' fixture or pass framework=")
        from .frameworks import UnknownFrameworkError, canonical_name, model_file_for

        try:
            name = canonical_name(name)
        except UnknownFrameworkError as exc:
            raise EdgeperfFailure(str(exc)) from None
        model_path = self._resolve_model(model_given, framework=name)
        model_file = model_file_for(name, model_path) or self._converted(name, model_path, model_given)
        if model_file is None:
            if model_path.suffix and model_path.exists():
                raise pytest.skip.Exception(f"{name} does not load {model_path.suffix} files ({model_given})",
                                            _use_item_location=True)
            siblings = list(model_path.parent.glob(model_path.name + ".*")) if model_path.parent.exists() else []
            if siblings or model_path.exists():
                raise pytest.skip.Exception(f"{name}: no file it can load for {model_given}",
                                            _use_item_location=True)
            raise EdgeperfFailure(f"model not found: {model_given} (looked for {model_path})")
        if model_file.stat().st_size == 0:
            raise EdgeperfFailure(f"model file is empty: {model_given}")

        budget = _budget_with(self.budget, min_samples, min_time_s, max_time_s, None)
        if s.sustained_s and spec.sustained_s:
            budget = replace(budget, min_time_s=s.sustained_s, max_time_s=s.sustained_s + 60)
        threads = threads or spec.threads or s.threads or _cpu_count()
        processes = s.processes if s.quick or spec.processes is None else spec.processes
        if s.sustained_s and spec.sustained_s:
            processes = 1  # a sustained run is one continuous run: heating up is what it measures
        test_id = self.nodeid + (f"::{label}" if label else "")
        signature = self._input_arguments(input_shapes=input_shapes, input_dtypes=input_dtypes,
                                          input_values=input_values)
        accelerator = self._accelerator(name, providers=providers, delegates=delegates, backend=backend,
                                        target=target)
        return MeasureRequest(
            test_id=test_id, framework=name, model=model_given, model_file=model_file, threads=threads,
            budget=budget, inputs=self._inputs(inputs or spec.inputs, preprocess or spec.preprocess, prepare),
            accuracy=self._accuracy(accuracy or spec.accuracy), sys_path=self._sys_path(), quick=s.quick,
            counters=bool(spec.counters if spec.counters is not None else s.counters),
            hotspots=bool(spec.hotspots if spec.hotspots is not None else s.hotspots),
            artifacts_dir=s.rootdir / ".edgeperf" / "hotspots" / _safe(test_id),
            processes=processes,
            reference_file=self._reference_file(name) if s.reference and not s.disabled else None,
            accelerator=accelerator, **signature,
        )

    def _instruments(self) -> Instruments:
        """The device lock, guard and samplers around this test's workers (the marker's clock floor, else the
        session's)."""
        s = self._session.settings
        spec = self.spec
        floor = spec.min_freq_ghz if spec.min_freq_ghz is not None else self._session.floor_ghz
        return Instruments(
            device_name=self._session.profile.name, readers=self._session.readers, floor_ghz=floor,
            guard=self._session.guard_for(floor, self._progress), sample_hz=s.sample_hz,
            sensor_budget=s.sensor_budget,
            power_meter=self._session.power_meter, power_hz=s.power_hz, idle_s=s.idle_s,
            max_attempts=s.max_attempts, min_valid_fraction=s.min_valid_fraction,
            worker_timeout_s=s.worker_timeout_s, environment=dict(self._session.environment),
            lock_path=self._session.lock_path, lock_timeout_s=s.lock_timeout_s, lock_announce=self._announce,
        )

    def _against_ref(self, req: MeasureRequest) -> tuple[MeasureRequest, str] | None:
        """--edgeperf-against=REF: REF's version of this model as a second request, when the model FILE changed.

        None (today's verdict) when it is unchanged, built by code, or REF's copy cannot be had; the reason is
        one line: a note on the result, or once for the session when git or REF itself is the problem.
        """
        from .gitref import GitRefError, check_ref, model_at_ref

        s = self._session.settings
        ref = s.against
        assert ref is not None
        if req.model.startswith(("zoo:", "cache:")):
            self._pending_notes.append(f"{req.model}: not comparable against {ref} (built by code); timing "
                                       f"judged against the stored baselines")
            return None
        try:
            check_ref(ref, s.rootdir)
        except GitRefError as exc:
            note = f"--edgeperf-against: {exc}; timing judged against the stored baselines"
            if note not in self._session.device_notes:
                self._session.device_notes.append(note)
            return None
        try:
            ref_file = model_at_ref(req.model_file, ref, s.cache_dir / "against")
        except GitRefError as exc:
            self._pending_notes.append(f"--edgeperf-against: {exc}; timing judged against the stored baselines")
            return None
        except OSError as exc:  # the cache is not writable
            self._pending_notes.append(f"--edgeperf-against: cannot write {ref}'s model ({exc}); timing judged "
                                       f"against the stored baselines")
            return None
        if ref_file is None:
            self._pending_notes.append(f"model unchanged since {ref}: judged against the stored baselines")
            return None
        return replace(req, test_id=f"{req.test_id}@{ref}", model=f"{req.model}@{ref}", model_file=ref_file), ref

    def _measure_against(self, req: MeasureRequest, baseline: Any, ref_req: MeasureRequest, ref: str) -> Result:
        """The model timed interleaved with REF's version: fps from the pairs, the rest against the baselines."""
        from .compare import judge_paired
        from .verdict.rules import merge_tolerances, rule_for, tolerance_for

        s = self._session.settings
        run = self._run_pair(req, ref_req, ("current", ref))
        result = run.a
        result.notes.extend(n for n in self._session.unavailable if n not in result.notes)
        self.results.append(result)
        self._session.add_result(result)
        self._check_limits(result)
        rule = rule_for("fps")
        assert rule is not None
        tolerance = tolerance_for("fps", rule, merge_tolerances(s.tolerances, self.spec.tolerance))
        est = judge_paired(run, max_slowdown_pct=tolerance, names=("current", ref))
        self._note_interpreters(run, ("current", ref))
        result.environment["paired_comparison"] = est.to_json()
        result.environment["against"] = {"ref": ref, "runtime_version": run.b.environment.get("runtime_version"),
                                         "python": run.b.environment.get("python"),
                                         "peak_rss_mb": run.b.peak_rss_mb}
        self._judge(result, baseline, paired=est)
        return result

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

    def _accelerator(self, framework: str, **given: Any) -> dict[str, Any]:
        """measure()'s accelerator arguments, checked, else the marker's; only those of ``framework``."""
        from .frameworks.accelerators import AcceleratorError, normalize, options_for

        return options_for(framework, self._overrides(given, normalize, AcceleratorError))

    def _converted(self, framework: str, model: Path, given: str) -> Path | None:
        """The model converted for a runtime that cannot read its format (ncnn from ONNX), cached; None if none.

        A converter that is not installed is a skip with the reason; a conversion that fails fails the test.
        """
        from .frameworks import ModelLoadError, adapters
        from .frameworks.base import ConverterMissing

        try:
            return adapters()[framework].convert(model, self.cache_dir / "converted")
        except ConverterMissing as exc:
            raise pytest.skip.Exception(f"{framework}: {exc}", _use_item_location=True) from None
        except ModelLoadError as exc:
            raise EdgeperfFailure(f"{framework} on {given}: {exc}") from None

    def _input_arguments(self, **given: Any) -> dict[str, Any]:
        """measure()'s input_shapes / input_dtypes / input_values, checked, else the marker's."""
        from .config import input_argument
        from .frameworks.signature import SignatureError

        return self._overrides(given, input_argument, SignatureError)

    def _overrides(self, given: dict[str, Any], check: Callable[[str, Any], Any],
                   error: type[Exception]) -> dict[str, Any]:
        """measure()'s arguments checked by ``check`` (its ``error`` is the test's one-line failure), else the
        marker's argument of the same name."""
        out = {}
        for name, value in given.items():
            if value is None:
                out[name] = getattr(self.spec, name)
                continue
            try:
                out[name] = check(name, value)
            except error as exc:
                raise EdgeperfFailure(f"measure() argument {name!r}: {exc}") from None
        return out

    def _reference_file(self, framework: str) -> Path | None:
        """The machine-speed reference model (``zoo:tiny_cnn``) in this runtime's format; None if it cannot be built."""
        from .frameworks import model_file_for
        from .models.build import ensure_zoo_model

        try:
            files = ensure_zoo_model(REFERENCE_MODEL, self.cache_dir / "models", formats=_formats_for(framework))
        except Exception as exc:  # the cache is not writable, onnx is missing: measure without it
            note = f"reference model unavailable ({exc}): timing is compared without correcting for machine speed"
            if note not in self._session.unavailable:
                self._session.unavailable.append(note)
            return None
        stem = Path(files.stem)
        try:
            return model_file_for(framework, stem) or self._converted(framework, stem, "the reference model")
        except (pytest.skip.Exception, EdgeperfFailure):  # no converter: measure without the reference
            return None

    def _lookup_baseline(self, test_id: str) -> Any:
        """Read this test's baseline before measuring: a corrupt file fails now, not after the whole budget."""
        from .baseline import BaselineError

        try:
            return self._session.store.lookup(test_id)
        except BaselineError as exc:
            if self._session.settings.update_baselines:
                self._session.baseline_errors.append(str(exc))
            raise EdgeperfFailure(str(exc)) from None

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
                labels: tuple[str, str] = ("variant", "parent")) -> Comparison:
        """Gate an optimised variant on its parent: speed-up, memory, and accuracy cost, in one table.

        Given two models (paths, ``zoo:``, ``cache:``), both are measured interleaved in short turns by two
        workers (paired.py) and the speed-up is judged with a 95% interval (compare.py): ``min_speedup=1.5``
        passes when the interval's lower bound is >= 1.5x, ``max_slowdown_pct=5`` fails when its upper bound is
        below 1/1.05 (shown more than 5% slower), passes when its lower bound is at or above it, and is
        INCONCLUSIVE between. The measuring arguments (framework, threads, inputs, ...) apply to both arms.
        Given two Results measured one after the other, the speed-up is their fps ratio (a point estimate).
        Gates not given here come from the marker (``min_speedup``, ``max_accuracy_drop_pct``).
        """
        if isinstance(variant, Result) != isinstance(parent, Result):
            raise EdgeperfFailure("compare() takes two models (measured interleaved) or two Results (measured "
                                  "one after the other), not one of each")
        if min_speedup is None:
            min_speedup = self.spec.min_speedup
        if max_accuracy_drop_pct is None:
            max_accuracy_drop_pct = self.spec.max_accuracy_drop_pct
        if not isinstance(variant, Result):
            assert not isinstance(parent, Result)
            arguments = {"framework": framework, "threads": threads, "inputs": inputs, "preprocess": preprocess,
                         "prepare": prepare, "accuracy": accuracy, "min_time_s": min_time_s,
                         "max_time_s": max_time_s, "input_shapes": input_shapes, "input_dtypes": input_dtypes,
                         "input_values": input_values}
            reqs = (self._build_request(variant, label=labels[0], **arguments),
                    self._build_request(parent, label=labels[1], **arguments))
            if self._session.settings.disabled:
                results = [self._run_disabled(req) for req in reqs]
                return Comparison(results[0], results[1], None, None, None, {})
            return self._compare_paired(reqs[0], reqs[1], labels, min_speedup=min_speedup,
                                        max_slowdown_pct=max_slowdown_pct, max_memory_ratio=max_memory_ratio,
                                        max_accuracy_drop_pct=max_accuracy_drop_pct,
                                        accuracy_metric=accuracy_metric, variant_size=variant_size,
                                        parent_size=parent_size)
        assert isinstance(parent, Result)
        size_ratio = variant_size / parent_size if variant_size and parent_size else None
        if self._session.settings.disabled:  # nothing was measured: only the file sizes compare, nothing gates
            return Comparison(variant, parent, None, None, size_ratio, {})
        speedup = (variant.fps / parent.fps) if variant.fps and parent.fps else None
        memory_ratio = (variant.peak_rss_mb / parent.peak_rss_mb
                        if variant.peak_rss_mb and parent.peak_rss_mb else None)
        drops = {k: parent.accuracy[k] - variant.accuracy[k] for k in parent.accuracy
                 if k in variant.accuracy and k.endswith("_pct")}
        comparison = Comparison(variant, parent, speedup, memory_ratio, size_ratio, drops)
        for extra, value in (("speedup_x", speedup), ("size_ratio", size_ratio), ("memory_ratio", memory_ratio)):
            if value is not None:
                variant.add_metric(extra, value)
        # the gates are the variant's limits: its reports say FAIL when one is breached
        quick = self._session.settings.quick
        for metric, limit, op, value in (("speedup_x", min_speedup, ">=", speedup),
                                         ("memory_ratio", max_memory_ratio, "<=", memory_ratio)):
            if limit is not None and not (quick and metric == "speedup_x"):  # quick: a note below, not a FAIL
                variant.add_limit(metric, op, limit, value)
        if max_accuracy_drop_pct is not None:
            variant.add_limit(f"{accuracy_metric}_drop_pp", "<=", max_accuracy_drop_pct,
                              drops.get(accuracy_metric))
        failures = []
        if min_speedup is not None and (speedup is None or speedup < min_speedup):
            shortfall = f"speed-up {_fmt(speedup, 'x')} < required {min_speedup:g}x"
            if quick:  # a quick run's few samples cannot tell speeds apart: report only
                variant.notes.append(f"quick run: {shortfall} (informational only)")
            else:
                failures.append(shortfall)
        if max_memory_ratio is not None and (memory_ratio is None or memory_ratio > max_memory_ratio):
            failures.append(f"memory ratio {_fmt(memory_ratio, 'x')} > allowed {max_memory_ratio:g}x")
        if max_accuracy_drop_pct is not None:
            drop = drops.get(accuracy_metric)
            if drop is None:
                failures.append(f"{accuracy_metric} was not measured on both sides")
            elif drop > max_accuracy_drop_pct:
                failures.append(f"{accuracy_metric} dropped {drop:.2f} points > allowed {max_accuracy_drop_pct:g}")
        if max_slowdown_pct is not None and (speedup is None or speedup < 1 / (1 + max_slowdown_pct / 100)):
            failures.append(f"fps {(speedup - 1) * 100:+.1f}% (point estimate of two separate runs) beyond the "
                            f"{max_slowdown_pct:g}% slowdown allowed" if speedup is not None
                            else "fps was not measured on both sides")
        if failures:
            self._session.add_breach(self.nodeid, Breach(
                f"variant {_name(variant)} vs {_name(parent)}: " + "; ".join(failures), comparison.table()))
        return comparison

    def _run_pair(self, a: MeasureRequest, b: MeasureRequest, labels: tuple[str, str]) -> PairedRun:
        """Both arms interleaved; a crash, hang or lock timeout is this test's one-line failure."""
        from .paired import run_paired

        s = self._session.settings
        try:
            return run_paired(a, b, self._instruments(), self._progress, python_b=s.against_python,
                              labels=labels)
        except (WorkerError, LockError) as exc:
            raise EdgeperfFailure(str(exc)) from None
        except DeviceNotReady as exc:
            if s.guard_fail:
                raise EdgeperfFailure(str(exc)) from None
            raise pytest.skip.Exception(str(exc), _use_item_location=True) from None
        finally:
            if self._progress:
                self._progress.clear()

    def _note_interpreters(self, run: PairedRun, names: tuple[str, str]) -> None:
        """--edgeperf-against-python: each arm's interpreter and runtime version, on the result and in the JSON."""
        if not self._session.settings.against_python:
            return
        arms = []
        for name, result in zip(names, (run.a, run.b), strict=True):
            env = result.environment
            arms.append(f"{name}: Python {env.get('python')} ({env.get('python_executable')}), {result.framework} "
                        f"{env.get('runtime_version')}")
        note = "interpreters: " + "; ".join(arms)
        if note not in run.a.notes:
            run.a.notes.append(note)

    def _compare_paired(self, a: MeasureRequest, b: MeasureRequest, labels: tuple[str, str], *,
                        min_speedup: float | None, max_slowdown_pct: float | None,
                        max_memory_ratio: float | None, max_accuracy_drop_pct: float | None,
                        accuracy_metric: str, variant_size: int | None, parent_size: int | None) -> Comparison:
        from .compare import judge_paired

        s = self._session.settings
        run = self._run_pair(a, b, labels)
        variant, parent = run.a, run.b
        for result in (variant, parent):
            result.notes.extend(n for n in self._session.unavailable if n not in result.notes)
            self.results.append(result)
            self._session.add_result(result)
        names = (a.model, b.model) if a.model != b.model else labels
        self._note_interpreters(run, names)
        est = judge_paired(run, min_speedup=min_speedup, max_slowdown_pct=max_slowdown_pct, names=names)
        variant_size = variant_size or a.model_file.stat().st_size
        parent_size = parent_size or b.model_file.stat().st_size
        size_ratio = variant_size / parent_size if variant_size and parent_size else None
        memory_ratio = (variant.peak_rss_mb / parent.peak_rss_mb
                        if variant.peak_rss_mb and parent.peak_rss_mb else None)
        drops = {k: parent.accuracy[k] - variant.accuracy[k] for k in parent.accuracy
                 if k in variant.accuracy and k.endswith("_pct")}
        comparison = Comparison(variant, parent, est.speedup, memory_ratio, size_ratio, drops, paired=est)
        for extra, value in (("speedup_x", est.speedup), ("speedup_low_x", est.low), ("speedup_high_x", est.high),
                             ("size_ratio", size_ratio), ("memory_ratio", memory_ratio)):
            if value is not None:
                variant.add_metric(extra, value)
        variant.environment["paired_comparison"] = est.to_json()
        failures = [f"{g.gate}: {g.reason}" for g in est.gates if g.verdict in ("FAIL", "REGRESSION")]
        if s.quick and failures:
            variant.notes.append("quick run: interleaved timing gates are informational only ("
                                 + "; ".join(failures) + ")")
            failures = []
        if max_memory_ratio is not None:
            ok = memory_ratio is not None and memory_ratio <= max_memory_ratio
            comparison.memory_verdict = f"{'PASS' if ok else 'FAIL'} (max {max_memory_ratio:g}x)"
            if not ok:
                failures.append(f"memory ratio {_fmt(memory_ratio, 'x')} > allowed {max_memory_ratio:g}x")
        if max_accuracy_drop_pct is not None:
            drop = drops.get(accuracy_metric)
            if drop is None:
                failures.append(f"{accuracy_metric} was not measured on both sides")
            elif drop > max_accuracy_drop_pct:
                failures.append(f"{accuracy_metric} dropped {drop:.2f} points > allowed {max_accuracy_drop_pct:g}")
        for gate in est.gates:
            note = f"{names[0]} vs {names[1]} ({gate.gate}): {gate.verdict}: {gate.reason}"
            if note not in variant.notes:
                variant.notes.append(note)
        if failures:
            self._session.add_breach(self.nodeid, Breach(
                f"{names[0]} vs {names[1]}, interleaved: " + "; ".join(failures),
                comparison.table()))
        return comparison

    # ---- checks --------------------------------------------------------------------------------------------
    def _check_limits(self, result: Result) -> None:
        spec = self.spec
        values = result.metric_values()
        checks = [
            ("fps", spec.min_fps, ">="), ("latency_p90_ms", spec.max_latency_ms, "<="),
            ("peak_memory_mb", spec.max_memory_mb, "<="), ("top1_pct", spec.min_top1_pct, ">="),
            ("top5_pct", spec.min_top5_pct, ">="), ("map50_pct", spec.min_map50_pct, ">="),
        ]
        if spec.max_energy_per_inference_mj is not None and "energy_per_inference_j" in values:
            values["energy_per_inference_mj"] = values["energy_per_inference_j"] * 1e3
            checks.append(("energy_per_inference_mj", spec.max_energy_per_inference_mj, "<="))
        rows = []
        quick = self._session.settings.quick
        for metric, limit, op in checks:
            if limit is None:
                continue
            value = values.get(metric)
            if quick and metric in _TIMING_LIMITS and value is not None:
                # a smoke run's timing is informational: a note, and no limit a report would call FAIL
                if not (value >= limit if op == ">=" else value <= limit):
                    result.notes.append(f"quick run: {metric} {value:.4g} outside the limit {op} {limit:g} "
                                        "(informational only)")
                continue
            if result.add_limit(metric, op, limit, value):  # kept on the result: every report shows FAIL
                continue
            if value is None:
                rows.append([metric, f"{op} {limit:g}", "not measured", "NOT MEASURED"])
            else:
                rows.append([metric, f"{op} {limit:g}", f"{value:.4g}", "LIMIT EXCEEDED"])
        if rows and result.status == STATUS_OK:
            table = tabulate(rows, headers=["metric", "limit", "measured", "verdict"], tablefmt="simple")
            first = rows[0]
            self._session.add_breach(self.nodeid, Breach(
                f"{result.framework} on {result.model}: {first[0]} was limited to {first[1]} but measured {first[2]}",
                table))

    def _judge(self, result: Result, entry: Any, paired: PairedEstimate | None = None) -> None:
        from .verdict.judge import judge
        from .verdict.rules import merge_tolerances
        from .verdict.table import format_verdict_table

        s = self._session.settings
        tolerances = merge_tolerances(s.tolerances, self.spec.tolerance)
        verdict = judge(result, entry, tolerances, strict=s.strict and not s.update_baselines,
                        max_cpu_wait_pct=s.max_cpu_wait_pct, noise_prior=self._session.store.noise_prior)
        if paired is not None:
            _timing_from_pairs(verdict, paired)
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
        what = ("regressed against" if verdict.overall == "REGRESSION"
                else "has no baseline (--edgeperf-strict) in")
        summary = verdict.summary_line()
        table = format_verdict_table(verdict)
        if table.startswith(summary):  # the title below already says it: no second copy
            table = table[len(summary):].lstrip("\n")
        if paired is not None and any(m.metric == "fps" for m in verdict.regressed()):
            from .compare import paired_table

            self._session.add_breach(self.nodeid, Breach(
                f"{result.framework} on {result.model}: fps regressed vs {paired.b_name} (interleaved): "
                f"{paired.describe()}", paired_table(paired) + "\n\n" + table))
            return
        self._session.add_breach(self.nodeid, Breach(
            f"{result.framework} on {result.model} {what} the {self._session.profile.name} baselines: "
            f"{summary.removeprefix('edgeperf: ')}", table))

    # ---- inputs ----------------------------------------------------------------------------------------------
    def _resolve_model(self, given: str, framework: str | None = None) -> Path:
        """A model name as the user wrote it -> a path or stem; a ``zoo:`` model is built in ``framework``'s format
        only (an ONNX Runtime user needs no TFLite exporter)."""
        if given.startswith("cache:"):
            return self.cache_dir / given[len("cache:"):]
        if given.startswith("zoo:"):
            from .models.build import ensure_zoo_model

            self._progress and self._progress(f"building {given} (cached in {self.cache_dir / 'models'})")
            try:
                files = ensure_zoo_model(given[4:], self.cache_dir / "models",
                                         formats=_formats_for(framework) if framework else None)
            except ValueError as exc:  # unknown name or bad builder arguments
                raise EdgeperfFailure(f"{given}: {exc}") from None
            return Path(files.stem)
        if given.startswith("pretrained:"):  # a model file inside an installed wheel (models/pretrained.py)
            from .models.pretrained import PRETRAINED, missing_reason

            key = given[len("pretrained:"):]
            if key not in PRETRAINED:
                raise EdgeperfFailure(f"{given}: unknown pretrained model (known: {', '.join(sorted(PRETRAINED))})")
            found = PRETRAINED[key].locate()
            if found is None:
                raise pytest.skip.Exception(missing_reason(key), _use_item_location=True)
            return found
        path = Path(given).expanduser()
        return path if path.is_absolute() else self._session.settings.rootdir / path

    def _inputs(self, inputs: str | None, preprocess: dict[str, Any] | None,
                prepare: str | None = None) -> dict[str, Any]:
        if inputs in (None, "random"):
            return {"kind": "random", "seed": 0}
        assert inputs is not None
        if ":" in inputs and not Path(inputs).exists():
            return {"kind": "callable", "ref": inputs, "prepare": prepare}
        from .datasets import ClassificationDataset, DatasetError

        path = self._resolve_model(inputs)
        try:
            dataset = (ClassificationDataset.from_csv(path) if path.suffix == ".csv"
                       else ClassificationDataset.from_folder(path))
        except DatasetError as exc:
            raise EdgeperfFailure(str(exc)) from None
        paths = [str(p) for p, _ in list(dataset)[:64]]
        return {"kind": "images", "paths": paths, "preprocess": preprocess or {}}

    def _accuracy(self, accuracy: dict[str, Any] | None) -> dict[str, Any] | None:
        if not accuracy:
            return None
        out = dict(accuracy)
        path = self._resolve_model(str(accuracy["dataset"]))
        out["dataset"] = str(path)
        # read the evaluation set's index now: a bad label or missing file fails before minutes of timing
        from .datasets import ClassificationDataset, DatasetError, DetectionDataset

        try:
            if out.get("task", "classification") == "detection":
                DetectionDataset.from_csv(path)
            elif path.suffix == ".csv":
                ClassificationDataset.from_csv(path)
            else:
                ClassificationDataset.from_folder(path)
        except DatasetError as exc:
            raise EdgeperfFailure(f"accuracy dataset: {exc}") from None
        return out

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


def _timing_from_pairs(verdict: Any, est: PairedEstimate) -> None:
    """--edgeperf-against: fps is judged from the interleaved pairs against REF's model (its row says "vs REF"),
    the other timing metrics are not judged (their baseline is another model); memory and accuracy stay."""
    from .compare import INCONCLUSIVE, REGRESSION
    from .verdict.outcome import overall as _overall

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

#: absolute limits on timing: informational in a quick run (memory, accuracy and energy limits still gate)
_TIMING_LIMITS = ("fps", "latency_p90_ms")

#: the machine-speed reference: a few 3x3 convolutions at 16x16, tens of microseconds on one thread
REFERENCE_MODEL = "tiny_cnn"


def _formats_for(framework: str) -> tuple[str, ...]:
    """The zoo format a runtime loads first (its adapter's preferred extension that the zoo writes): what a build
    must write. A runtime that reads neither (ncnn converts from ONNX; a hook-added one) gets ONNX."""
    from .frameworks import adapters, canonical_name

    built = ("onnx", "tflite")
    loads = [ext.lstrip(".") for ext in adapters()[canonical_name(framework)].extensions]
    return (next((fmt for fmt in loads if fmt in built), "onnx"),)


def _budget_with(budget: Budget, min_samples: int | None, min_time_s: float | None, max_time_s: float | None,
                 warmup_s: float | None) -> Budget:
    changes: dict[str, Any] = {}
    if min_samples is not None:
        changes["min_samples"] = min_samples
    if min_time_s is not None:
        changes["min_time_s"] = min_time_s
    if max_time_s is not None:
        changes["max_time_s"] = max_time_s
    if warmup_s is not None:
        changes["warmup_s"] = warmup_s
    budget = replace(budget, **changes)
    if budget.max_time_s < budget.min_time_s:
        budget = replace(budget, max_time_s=budget.min_time_s * 2)
    return budget


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _name(result: Result) -> str:
    """How a measurement is named in a comparison: its label if it has one, else its model."""
    _, _, label = result.test_id.rpartition("::")
    return label if label and "[" not in label and "/" not in label else result.model


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:150]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3g}{unit}"
