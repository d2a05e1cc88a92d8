"""The object a test talks to (the ``edgeperf`` fixture): measure a model, compare variants, read results.

``measure()`` runs one isolated measurement, judges it against the marker's limits and the stored baseline, and
records what would fail the test; the failure itself is raised on the test's own report by the plugin (so a
regressed test never prints "passed").
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from tabulate import tabulate

from .config import Budget, MarkerSpec
from .measure import DeviceNotReady, Instruments, MeasureRequest, WorkerError, run_measurement
from .result import STATUS_OK, Result
from .session import Breach, EdgeperfSession


class EdgeperfFailure(Exception):
    """Fails the test with a one-line reason (worker crash, missing model): no traceback from our code."""


@dataclass
class Comparison:
    """A variant measured against its parent in the same test (seeds 000, 002, 003: speed-up and accuracy cost)."""

    variant: Result
    parent: Result
    speedup: float | None
    memory_ratio: float | None
    size_ratio: float | None
    accuracy_drop_pct: dict[str, float]

    def table(self) -> str:
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
                judge: bool = True) -> Result:
        """Measure ``model`` (default: the marker's) in this test's framework; returns the Result.

        ``label`` names a second measurement in the same test (e.g. "int8"); each label has its own baseline.
        ``inputs``: "random" (default), a dataset (folder or CSV, prepared with ``preprocess``), or
        "module:function" returning input arrays, which ``prepare`` ("module:function") turns into model inputs
        inside the timed window (so throughput includes preprocessing, as seed 001 measured it).
        """
        s = self._session.settings
        spec = self.spec
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
        model_file = model_file_for(name, model_path)
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
        floor = spec.min_freq_ghz if spec.min_freq_ghz is not None else self._session.floor_ghz
        test_id = self.nodeid + (f"::{label}" if label else "")
        req = MeasureRequest(
            test_id=test_id, framework=name, model=model_given, model_file=model_file, threads=threads,
            budget=budget, inputs=self._inputs(inputs or spec.inputs, preprocess or spec.preprocess, prepare),
            accuracy=self._accuracy(accuracy or spec.accuracy), sys_path=self._sys_path(), quick=s.quick,
            counters=bool(spec.counters if spec.counters is not None else s.counters),
            hotspots=bool(spec.hotspots if spec.hotspots is not None else s.hotspots),
            artifacts_dir=s.rootdir / ".edgeperf" / "hotspots" / _safe(test_id),
            processes=processes, reference_file=self._reference_file(name) if s.reference else None,
        )
        baseline = self._lookup_baseline(test_id) if judge else None
        inst = Instruments(
            device_name=self._session.profile.name, readers=self._session.readers, floor_ghz=floor,
            guard=self._session.guard_for(floor, self._progress), sample_hz=s.sample_hz,
            sensor_budget=s.sensor_budget,
            power_meter=self._session.power_meter, power_hz=s.power_hz, idle_s=s.idle_s,
            max_attempts=s.max_attempts, min_valid_fraction=s.min_valid_fraction,
            worker_timeout_s=s.worker_timeout_s, environment=dict(self._session.environment),
            lock_path=self._session.lock_path,
        )
        try:
            result = run_measurement(req, inst, self._progress)
        except WorkerError as exc:
            raise EdgeperfFailure(str(exc)) from None
        except DeviceNotReady as exc:
            message = str(exc)  # the guard's own line: "device not ready after 120 s: ..."
            if s.guard_fail:
                raise EdgeperfFailure(message) from None
            raise pytest.skip.Exception(message, _use_item_location=True) from None
        finally:
            if self._progress:
                self._progress.clear()
        result.notes.extend(n for n in self._session.unavailable if n not in result.notes)
        if s.update_baselines and s.update_passes > 1:
            result.notes.append(f"update pass {self._session.update_pass} of {s.update_passes}")
        self.results.append(result)
        self._session.results.append(result)
        self._check_limits(result)
        if judge:
            self._judge(result, baseline)
        return result

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
        return model_file_for(framework, Path(files.stem))

    def _lookup_baseline(self, test_id: str) -> Any:
        """Read this test's baseline before measuring: a corrupt file fails now, not after the whole budget."""
        from .baseline import BaselineError

        try:
            return self._session.store.lookup(test_id)
        except BaselineError as exc:
            if self._session.settings.update_baselines:
                self._session.baseline_errors.append(str(exc))
            raise EdgeperfFailure(str(exc)) from None

    def compare(self, variant: Result, parent: Result, *, min_speedup: float | None = None,
                max_memory_ratio: float | None = None, max_accuracy_drop_pct: float | None = None,
                accuracy_metric: str = "top1_pct", variant_size: int | None = None,
                parent_size: int | None = None) -> Comparison:
        """Gate an optimised variant on its parent: speed-up, memory, and accuracy cost, in one table.

        Gates not given here come from the marker (``min_speedup``, ``max_accuracy_drop_pct``).
        """
        if min_speedup is None:
            min_speedup = self.spec.min_speedup
        if max_accuracy_drop_pct is None:
            max_accuracy_drop_pct = self.spec.max_accuracy_drop_pct
        speedup = (variant.fps / parent.fps) if variant.fps and parent.fps else None
        memory_ratio = (variant.peak_rss_mb / parent.peak_rss_mb
                        if variant.peak_rss_mb and parent.peak_rss_mb else None)
        size_ratio = variant_size / parent_size if variant_size and parent_size else None
        drops = {k: parent.accuracy[k] - variant.accuracy[k] for k in parent.accuracy
                 if k in variant.accuracy and k.endswith("_pct")}
        comparison = Comparison(variant, parent, speedup, memory_ratio, size_ratio, drops)
        for extra, value in (("speedup_x", speedup), ("size_ratio", size_ratio), ("memory_ratio", memory_ratio)):
            if value is not None:
                variant.add_metric(extra, value)
        failures = []
        if min_speedup is not None and (speedup is None or speedup < min_speedup):
            shortfall = f"speed-up {_fmt(speedup, 'x')} < required {min_speedup:g}x"
            if self._session.settings.quick:  # a quick run's few samples cannot tell speeds apart: report only
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
        if failures:
            self._session.add_breach(self.nodeid, Breach(
                f"variant {_name(variant)} vs {_name(parent)}: " + "; ".join(failures), comparison.table()))
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
        for metric, limit, op in checks:
            if limit is None:
                continue
            value = values.get(metric)
            if value is None:
                rows.append([metric, f"{op} {limit:g}", "not measured", "NOT MEASURED"])
                continue
            ok = value >= limit if op == ">=" else value <= limit
            if not ok and self._session.settings.quick and metric in _TIMING_LIMITS:
                result.notes.append(f"quick run: {metric} {value:.4g} outside the limit {op} {limit:g} "
                                    "(informational only)")
            elif not ok:
                rows.append([metric, f"{op} {limit:g}", f"{value:.4g}", "LIMIT EXCEEDED"])
        if rows and result.status == STATUS_OK:
            table = tabulate(rows, headers=["metric", "limit", "measured", "verdict"], tablefmt="simple")
            first = rows[0]
            self._session.add_breach(self.nodeid, Breach(
                f"{result.framework} on {result.model}: {first[0]} was limited to {first[1]} but measured {first[2]}",
                table))

    def _judge(self, result: Result, entry: Any) -> None:
        from .verdict import format_verdict_table, judge, merge_tolerances

        s = self._session.settings
        tolerances = merge_tolerances(s.tolerances, self.spec.tolerance)
        verdict = judge(result, entry, tolerances, strict=s.strict and not s.update_baselines,
                        max_cpu_wait_pct=s.max_cpu_wait_pct, noise_prior=self._session.store.noise_prior)
        verdict.apply_to(result)
        if verdict.flags:
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

    def _sys_path(self) -> list[str]:
        paths = [str(self._session.settings.rootdir)]
        path = getattr(self._request.node, "path", None)
        if path is not None:
            paths.append(str(Path(path).parent))
        return paths


#: absolute limits on timing: informational in a quick run (memory, accuracy and energy limits still gate)
_TIMING_LIMITS = ("fps", "latency_p90_ms")

#: the machine-speed reference: a few 3x3 convolutions at 16x16, tens of microseconds on one thread
REFERENCE_MODEL = "tiny_cnn"


def _formats_for(framework: str) -> tuple[str, ...]:
    """The model format a runtime loads first (its adapter's preferred extension): what a zoo build must write."""
    from .frameworks import FRAMEWORKS, canonical_name

    return (FRAMEWORKS[canonical_name(framework)].extensions[0].lstrip("."),)


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
