"""One measurement's settings from the layers that may set them: ``measure()``'s keywords > the marker's arguments >
the session's ``Settings`` (the command line over the ini file over the defaults, already folded in by
options.py) > the device profile (the clock floor). ``measure_settings`` applies that order for one measurement;
``budget_with`` and ``marker_budget`` lay one budget over another. Kept apart so the precedence is written down in
one place, over the already validated marker and settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..errors import EdgeperfError
from .marker import INPUT_ARGUMENTS, MarkerSpec, input_argument
from .settings import Budget, Settings


@dataclass(frozen=True)
class MeasureArguments:
    """What a test passed to ``measure()`` (or ``compare()``, for both arms) for one measurement; None: not given."""

    threads: int | None = None
    inputs: str | None = None
    preprocess: dict[str, Any] | None = None
    prepare: str | None = None
    accuracy: dict[str, Any] | None = None
    min_samples: int | None = None
    min_time_s: float | None = None
    max_time_s: float | None = None
    input_shapes: list[int] | dict[str, list[int]] | None = None
    input_dtypes: dict[str, str] | None = None
    input_values: dict[str, Any] | None = None
    #: as a user wrote them (checked by frameworks/accelerators.py in ``measure_settings``)
    providers: Any = None
    delegates: Any = None
    backend: str | None = None
    target: str | None = None


class MeasureArgumentError(EdgeperfError, ValueError):
    """A ``measure()`` argument that cannot be used; the message names it (the test fails with this one line)."""


@dataclass(frozen=True)
class MeasureSettings:
    """One measurement's settings, each from the first layer that sets it (``measure_settings``)."""

    budget: Budget
    threads: int
    processes: int
    #: worker pairs of an interleaved A/B run: the marker's ``processes``, else --edgeperf-processes as given, else
    #: None (paired.auto_blocks); quick mode keeps its default
    worker_pairs: int | None
    inputs: str | None
    preprocess: dict[str, Any] | None
    accuracy: dict[str, Any] | None
    counters: bool
    hotspots: bool
    reference: bool  # time the machine-speed reference model between samples
    input_shapes: list[int] | dict[str, list[int]] | None
    input_dtypes: dict[str, str] | None
    input_values: dict[str, Any] | None
    accelerator: dict[str, Any]  # the accelerator arguments of this framework only (empty: its default path)


def measure_settings(spec: MarkerSpec, given: MeasureArguments, settings: Settings, framework: str) -> MeasureSettings:
    """``measure()``'s keywords over the marker's arguments over the session's settings, for ``framework``.

    Quick mode keeps its tiny budget and one process whatever the marker says (``measure()``'s own budget still
    applies); a sustained run (marker ``sustained_s`` with --edgeperf-sustained) is one process for the given time.
    Raises MeasureArgumentError for an input or accelerator keyword that is not valid.
    """
    s = settings
    budget = budget_with(marker_budget(spec, s), given.min_samples, given.min_time_s, given.max_time_s, None)
    processes = s.processes if s.quick or spec.processes is None else spec.processes
    if s.sustained_s and spec.sustained_s:
        budget = replace(budget, min_time_s=s.sustained_s, max_time_s=s.sustained_s + 60)
        processes = 1  # a sustained run is one continuous run: heating up is what it measures
    signature = _overrides(spec, given, INPUT_ARGUMENTS, input_argument, "signature")
    from ..frameworks.accelerators import ACCELERATOR_ARGUMENTS, normalize, options_for

    accelerator = options_for(framework, _overrides(spec, given, tuple(ACCELERATOR_ARGUMENTS), normalize,
                                                    "accelerators"))
    return MeasureSettings(
        budget=budget, threads=given.threads or spec.threads or s.threads or cpu_count(), processes=processes,
        worker_pairs=None if s.quick else spec.processes if spec.processes is not None else s.processes_given,
        inputs=given.inputs or spec.inputs, preprocess=given.preprocess or spec.preprocess,
        accuracy=given.accuracy or spec.accuracy,
        counters=bool(spec.counters if spec.counters is not None else s.counters),
        hotspots=bool(spec.hotspots if spec.hotspots is not None else s.hotspots),
        reference=s.reference and not s.disabled, accelerator=accelerator, **signature)


def _overrides(spec: MarkerSpec, given: MeasureArguments, names: tuple[str, ...],
               check: Callable[[str, Any], Any], errors: str) -> dict[str, Any]:
    """``measure()``'s arguments ``names`` checked by ``check``, else the marker's argument of the same name.

    ``errors``: which module's error ``check`` raises ("signature" or "accelerators"), turned into one line.
    """
    if errors == "signature":
        from ..frameworks.signature import SignatureError as error
    else:
        from ..frameworks.accelerators import AcceleratorError as error  # type: ignore[assignment]
    out = {}
    for name in names:
        value = getattr(given, name)
        if value is None:
            out[name] = getattr(spec, name)
            continue
        try:
            out[name] = check(name, value)
        except error as exc:
            raise MeasureArgumentError(f"measure() argument {name!r}: {exc}") from None
    return out


def marker_budget(spec: MarkerSpec, settings: Settings) -> Budget:
    """The session's budget with the marker's overrides (quick mode's tiny budget ignores the marker's)."""
    if settings.quick:
        return settings.budget
    return budget_with(settings.budget, spec.min_samples, spec.min_time_s, spec.max_time_s, spec.warmup_s)


def budget_with(budget: Budget, min_samples: int | None, min_time_s: float | None, max_time_s: float | None,
                warmup_s: float | None) -> Budget:
    """``budget`` with the given fields replaced; a maximum below the minimum time becomes twice the minimum."""
    changes: dict[str, float] = {}
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


def clock_floor_ghz(spec: MarkerSpec | None, settings: Settings, profile_floor_ghz: float | None) -> float | None:
    """The CPU clock floor below which samples do not count: the marker's ``min_freq_ghz`` > --edgeperf-min-freq
    (or its ini key) > the device profile's floor."""
    for floor in (spec.min_freq_ghz if spec is not None else None, settings.min_freq_ghz):
        if floor is not None:
            return floor
    return profile_floor_ghz


def cpu_count() -> int:
    """The CPUs this process may run on (the default thread count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
