"""One measurement, end to end: guard -> worker processes -> samplers around the timed windows -> Result.

The parent (pytest) never imports a runtime: it starts ``python -m pytest_edgeperf.worker``, waits for it to load and
warm up, starts the sensor / power / counter samplers, tells the worker to go, and stops the samplers when the
worker reports its raw samples. A measurement is several such workers one after another (``processes``, sharing
the budget), each also timing the machine-speed reference model between its samples, so the verdict can see how far
separate runs of the same model disagree and how fast the machine was (see verdict.location_change).
Samples that overlap a throttled or under-clocked period are marked invalid; if
too many are, the guard cools the device and the measurement is repeated a bounded number of times, after which
the result is INCONCLUSIVE (never a regression).

Here is the attempt loop only: the worker's two sides are in worker/ (client.py here, child.py there), the
instruments follow one start/stop protocol (instruments.py), the device lock is device/lock.py and the power
readings join the timeline in power/join.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .config.settings import BUSY_CPU_WAIT_PCT, Budget
from .device.guard import DeviceNotReady
from .device.lock import Progress, device_lock
from .fileio import file_sha256
from .instruments import Instrument, Running
from .result import STATUS_INCONCLUSIVE, STATUS_OK, Result, Samples, TimelinePoint
from .worker.client import WorkerProcess

if TYPE_CHECKING:
    from .device.guard import ThermalGuard
    from .device.readers import DeviceReaders
    from .power import PowerSampler, PowerTrace
    from .power.base import PowerMeter


@dataclass
class MeasureRequest:
    """What to measure: one model file in one runtime with one budget."""

    test_id: str
    framework: str
    model: str  # as the user gave it (reported as given)
    model_file: Path  # resolved file this runtime loads
    threads: int
    budget: Budget
    inputs: dict[str, Any] = field(default_factory=lambda: {"kind": "random", "seed": 0})
    accuracy: dict[str, Any] | None = None
    sys_path: list[str] = field(default_factory=list)
    quick: bool = False
    counters: bool = False
    hotspots: bool = False
    artifacts_dir: Path | None = None
    processes: int = 1  # worker processes sharing the budget (the verdict compares them, see verdict.py)
    worker_pairs: int | None = None  # an interleaved A/B run's worker pairs (None: paired.auto_blocks)
    reference_file: Path | None = None  # the machine-speed reference model for this runtime, or None
    #: what resolves the model's inputs (frameworks/signature.py): a shape or {name: shape}, {name: dtype},
    #: {name: value}; JSON-ready, checked by config/marker.py and config/precedence.py
    input_shapes: list[int] | dict[str, list[int]] | None = None
    input_dtypes: dict[str, str] | None = None
    input_values: dict[str, Any] | None = None
    #: the accelerator path asked for (frameworks/accelerators.py: providers, delegates, backend/target), JSON-ready
    accelerator: dict[str, Any] = field(default_factory=dict)


@dataclass
class Instruments:
    """Everything around the worker that reads the device; a None part is absent (then it is not measured).

    No defaults here: the session builds them once from ``Settings`` (session.instruments_from), which holds them.
    """

    device_name: str
    readers: DeviceReaders | None
    floor_ghz: float | None
    guard: ThermalGuard | None
    sample_hz: float
    sensor_budget: float
    power_meter: PowerMeter | None
    power_hz: float
    idle_s: float
    max_attempts: int
    min_valid_fraction: float
    worker_timeout_s: float
    environment: dict[str, Any]
    lock_path: Path | None
    lock_timeout_s: float | None
    lock_announce: Progress | None  # says, even in a CI log, that the device lock is busy and who holds it


# ---- the measurement -------------------------------------------------------------------------------------------


def run_measurement(req: MeasureRequest, inst: Instruments, progress: Progress | None = None) -> Result:
    """Measure ``req`` on the device, repeating throttled attempts; raises WorkerError or DeviceNotReady."""
    model_sha = file_sha256(req.model_file)
    result = Result(test_id=req.test_id, framework=req.framework, model=req.model, device=inst.device_name,
                    quick=req.quick, threads=req.threads)
    result.environment = {**inst.environment, "device": inst.device_name, "runtime": req.framework,
                          "threads": req.threads, "model_sha256": model_sha, "model_file": req.model_file.name,
                          # the timing budget asked for (all processes together): the verdict compares timing only
                          # between runs of a similar length (verdict.BUDGET_RATIO)
                          "min_time_s": float(req.budget.min_time_s)}
    if req.accelerator:
        result.environment["accelerator"] = req.accelerator
    describe = f"{req.framework} on {req.model}"
    why = ""
    with device_lock(inst.lock_path, progress, inst.lock_timeout_s, inst.lock_announce):
        for attempt in range(1, inst.max_attempts + 1):
            try:
                _one_attempt(req, inst, result, describe, progress)
            except DeviceNotReady as exc:
                if attempt == 1:
                    raise
                # the device did not cool down for a retry: the throttled attempt stands, as INCONCLUSIVE
                result.status = STATUS_INCONCLUSIVE
                result.status_reason = f"{why} and the device did not cool down for attempt {attempt}: {exc}"
                break
            result.attempts = attempt
            needed = req.budget.min_samples
            valid = result.valid_count
            fraction = valid / max(len(result.samples), 1)
            reasons = ", ".join(f"{k}: {v}" for k, v in result.invalid_reasons.items() if v)
            if valid >= needed and fraction >= inst.min_valid_fraction:
                result.status = STATUS_OK
                if result.invalid_count:
                    _add_note(result, f"{result.invalid_count} of {len(result.samples)} samples excluded: taken "
                                      f"while throttled or below the clock floor ({reasons})")
                break
            why = (f"{result.invalid_count} of {len(result.samples)} samples were taken while throttled or below "
                   f"the clock floor ({reasons})")
            if attempt < inst.max_attempts:
                result.notes.append(f"attempt {attempt}: {why}; cooling down and measuring again")
                continue
            result.status = STATUS_INCONCLUSIVE
            result.status_reason = f"{why} after {attempt} attempt{'s' if attempt > 1 else ''}"
    return result


def _one_attempt(req: MeasureRequest, inst: Instruments, result: Result, describe: str,
                 progress: Progress | None) -> None:
    if inst.guard is not None:
        outcome = inst.guard.wait_until_ready()
        result.notes.extend(n for n in outcome.notes if n not in result.notes)
        if not outcome.ready:
            raise DeviceNotReady(outcome.reason)
    readers = inst.readers
    if readers is not None:
        result.device_start = readers.snapshot()

    idle_w = None
    if inst.power_meter is not None and inst.idle_s > 0:
        from .power import measure_idle_w

        try:
            idle_w = measure_idle_w(inst.power_meter, inst.idle_s, inst.power_hz)
        except Exception as exc:
            result.notes.append(f"idle power unavailable: {exc}")

    processes = max(1, req.processes)
    budget = per_process_budget(req.budget, processes)
    around_all = Running(result.notes)  # the instruments around every process's window: the power sampler
    meter = inst.power_meter
    if meter is not None:
        from .power import PowerSampler

        # at least 5 readings inside the shortest window (a quick run is 0.2 s), at most 100 Hz
        power_hz = min(max(inst.power_hz, 5.0 / max(budget.min_time_s, 0.05)), 100.0)
        around_all.start(POWER_SAMPLER, lambda: PowerSampler(meter, rate_hz=power_hz))
    power = cast("PowerSampler | None", around_all.get(POWER_SAMPLER))
    runs: list[_ProcessRun] = []
    try:
        for index in range(processes):
            runs.append(_run_one_process(req, inst, budget, index, processes, describe, progress, result, power))
    finally:
        trace = cast("PowerTrace | None", around_all.stop_all().get(POWER_SAMPLER))
        around_all.abandon()

    _combine_processes(result, runs)
    if readers is not None:
        result.device_end = readers.snapshot()
        _note_sticky_throttle(result, readers)
    result.invalid_reasons = {}
    if result.timeline:
        from .device.timeline import achieved_rate_hz, effective_period_s, invalidate_samples

        # judge validity by the gaps actually seen: slow readers stretch them beyond 1 / sample_hz
        period = effective_period_s(result.timeline, 1.0 / inst.sample_hz if inst.sample_hz > 0 else 0.0)
        result.invalid_reasons = invalidate_samples(result.samples, result.timeline, inst.floor_ghz, period)
        rate = achieved_rate_hz(result.timeline)
        if rate is not None and rate < 0.5 * inst.sample_hz:
            _add_note(result, f"the sensor sampler reached {rate:.1f} Hz of the {inst.sample_hz:g} Hz asked "
                              f"(slow readers); samples within {period:.2f} s of a bad reading were excluded")
    if trace is not None:
        _attach_power(result, trace, idle_w, [(r.window_start_s, r.window_end_s, r.count) for r in runs])


def per_process_budget(budget: Budget, processes: int) -> Budget:
    """Each of ``processes`` workers times its share of the budget (same samples and seconds in all)."""
    if processes <= 1:
        return budget
    from dataclasses import replace

    return replace(budget, min_samples=max(1, -(-budget.min_samples // processes)),
                   min_time_s=budget.min_time_s / processes, max_time_s=budget.max_time_s / processes,
                   warmup_s=max(min(MIN_WARMUP_S, budget.warmup_s), budget.warmup_s / processes),
                   max_samples=max(1, -(-budget.max_samples // processes)))


#: a worker process warms up at least this long (or the whole warm-up asked, if shorter) when it is shared out
MIN_WARMUP_S = 0.25


@dataclass
class _ProcessRun:
    """What one worker process measured (combined into the Result by ``_combine_processes``)."""

    done: dict[str, Any]
    timeline: list[TimelinePoint]
    loaded: dict[str, Any]
    ready: dict[str, Any]

    @property
    def window_start_s(self) -> float:
        return float(self.done["window_start_s"])

    @property
    def window_end_s(self) -> float:
        return float(self.done["window_end_s"])

    @property
    def count(self) -> int:
        return len(self.done["latency_s"])


def _run_one_process(req: MeasureRequest, inst: Instruments, budget: Budget, index: int, processes: int,
                     describe: str, progress: Progress | None, result: Result,
                     power: PowerSampler | None) -> _ProcessRun:
    """Start one worker, time its share of the budget with the sensor sampler around it, collect its samples.

    Counters, the hotspot profile and the accuracy pass run in the first process only: they do not depend on
    which process measures them, and repeating them would only cost time.
    """
    first = index == 0
    from .frameworks import adapter_ref

    request = {
        "framework": req.framework, "adapter": adapter_ref(req.framework), "model_file": str(req.model_file),
        "threads": req.threads,
        "warmup_s": budget.warmup_s, "warmup_runs": budget.warmup_runs,
        "budget": {"min_samples": budget.min_samples, "min_time_s": budget.min_time_s,
                   "max_time_s": budget.max_time_s, "max_samples": budget.max_samples},
        "inputs": req.inputs, "accuracy": req.accuracy if first else None, "sys_path": req.sys_path,
        "wait_for_go": True,
        "reference": {"model_file": str(req.reference_file)} if req.reference_file else None,
        "input_shapes": req.input_shapes, "input_dtypes": req.input_dtypes, "input_values": req.input_values,
        "accelerator": req.accelerator,
    }
    which = f" (process {index + 1} of {processes})" if processes > 1 else ""
    worker = WorkerProcess(request, describe)
    around = Running(result.notes)  # the instruments around this process's timed window
    timed: dict[str, Any] = {}  # the worker's "timed" event: the counter session reads its count when stopped
    try:
        if progress:
            progress(f"{req.test_id}: loading {req.model_file.name} in {req.framework}{which}")
        loaded = worker.expect("loaded", inst.worker_timeout_s, "while loading the model")
        if progress:
            progress(f"{req.test_id}: warming up{which}")
        ready = worker.expect("ready", inst.worker_timeout_s, "during warm-up")
        for what, build in _instruments_for(req, inst, first, worker.pid, timed, power, result):
            around.start(what, build)
        if progress:
            progress(f"{req.test_id}: timing{which} (>= {budget.min_samples} samples, >= {budget.min_time_s:g} s)")
        worker.go()
        min_s = budget.min_time_s
        tick = (lambda elapsed: progress(f"{req.test_id}: timing{which} {elapsed:.0f} s of >= {min_s:g} s "
                                         f"(>= {budget.min_samples} samples)")) if progress else None
        timed.update(worker.expect("timed", budget.max_time_s + inst.worker_timeout_s, "while timing", tick))
        measured = around.stop_all()
        timeline = cast("list[TimelinePoint]", measured.get(SENSOR_SAMPLER, []))
        if COUNTER_SESSION in measured:
            result.counters = cast("dict[str, Any]", measured[COUNTER_SESSION])
            result.notes.extend(f"hardware counters: {n}" for n in result.counters.get("notes", []))
            if processes > 1:
                result.notes.append(f"hardware counters: counted in the first of {processes} worker processes")
        if HOTSPOT_RECORDER in measured:
            result.counters["hotspots"] = measured[HOTSPOT_RECORDER]
        done = worker.expect("done", inst.worker_timeout_s, "while reporting its samples")
        if req.accuracy and first:
            if progress:
                progress(f"{req.test_id}: accuracy pass")
            acc = worker.expect("accuracy", inst.worker_timeout_s + 600, "during the accuracy pass")
            result.accuracy = {k: v for k, v in acc.items() if k != "event" and isinstance(v, (int, float))}
    except BaseException:  # Ctrl-C, SIGTERM (plugin.py) or any failure here: the worker goes now, not after a wait
        worker.kill()
        raise
    finally:
        around.abandon()
        worker.close()
    return _ProcessRun(done=done, timeline=timeline, loaded=loaded, ready=ready)


#: the instruments' names: the note when one cannot start says "<name> could not start: <why>"
SENSOR_SAMPLER = "the sensor sampler"
POWER_SAMPLER = "the power sampler"
COUNTER_SESSION = "perf stat"
HOTSPOT_RECORDER = "perf record"


def _instruments_for(req: MeasureRequest, inst: Instruments, first: bool, pid: int, timed: dict[str, Any],
                     power: PowerSampler | None,
                     result: Result) -> list[tuple[str, Callable[[], Instrument[object]]]]:
    """The instruments to start around one process's timed window, by name, each with how to build it.

    Counters and hot spots are wanted of the first process only; counters that cannot count here are said
    (in the result and its notes) instead of started.
    """
    wanted: list[tuple[str, Callable[[], Instrument[object]]]] = []
    readers = inst.readers
    if readers is not None and inst.sample_hz > 0:
        from .device.timeline import TimelineSampler

        wanted.append((SENSOR_SAMPLER, lambda: TimelineSampler(readers, rate_hz=inst.sample_hz, pid=pid,
                                                               command_budget=inst.sensor_budget)))
    if req.counters and first:
        from .counters import CounterSession

        session = CounterSession(pid=pid, inferences=lambda: int(timed.get("count", 0)),
                                 power=power.readings_so_far if power is not None else None)
        ok, why = session.available()
        if ok:
            wanted.append((COUNTER_SESSION, lambda: session))
        else:
            result.counters = {"unavailable": why}
            result.notes.append(f"hardware counters unavailable: {why}")
    if req.hotspots and first:
        from .counters import HotspotRecorder

        hotspots_dir = req.artifacts_dir or Path(tempfile.mkdtemp(prefix="edgeperf-hotspots-"))
        wanted.append((HOTSPOT_RECORDER, lambda: HotspotRecorder(pid=pid, out_dir=hotspots_dir)))
    return wanted


def _combine_processes(result: Result, runs: list[_ProcessRun]) -> None:
    """One Result from the processes: samples joined (with their process index), the rest as documented.

    Load time, memory after load and the first inference come from the first process (the one that loaded
    the model from a cold start, as a single-process run does); peak memory is the highest of them.
    """
    first = runs[0]
    result.load_time_s = first.loaded["load_time_s"]
    result.rss_before_load_mb = first.loaded["rss_before_load_mb"]
    result.rss_after_load_mb = first.loaded["rss_after_load_mb"]
    result.first_inference_s = first.ready["first_inference_s"]
    result.environment["runtime_version"] = first.loaded["runtime_version"]
    if first.loaded.get("provider"):  # the accelerator path that ran, as the runtime says (verdict: comparable key)
        result.environment["provider"] = first.loaded["provider"]
    # the inputs as measured (dynamic dims resolved): part of what a baseline is comparable with (verdict.py)
    inputs = first.ready.get("inputs") or []
    result.environment["inputs"] = inputs
    if inputs:
        result.environment["input_shape"] = inputs[0]["shape"]
    signature = first.loaded.get("signature") or {}
    result.environment["outputs"] = signature.get("outputs", [])
    declared = {spec["name"]: spec["shape"] for spec in signature.get("inputs", [])}
    if any(declared.get(spec["name"]) != spec["shape"] for spec in inputs):
        result.environment["declared_inputs"] = signature.get("inputs", [])
    for note in first.ready.get("notes") or []:
        _add_note(result, note)
    result.environment["processes"] = len(runs)
    multi = len(runs) > 1
    samples = Samples()
    for index, run in enumerate(runs):
        done = run.done
        samples.start_s.extend(done["start_s"])
        samples.latency_s.extend(done["latency_s"])
        samples.preprocess_s.extend(done["preprocess_s"])
        samples.reference_s.extend(done.get("reference_s") or [])
        if multi:
            samples.process.extend([index] * len(done["latency_s"]))
            samples.reference_process.extend([index] * len(done.get("reference_s") or []))
    samples.valid = [True] * len(samples.latency_s)
    result.samples = samples
    result.window_start_s = first.window_start_s
    result.window_end_s = runs[-1].window_end_s
    result.window_start_unix_s = first.done["window_start_unix_s"]
    result.timeline = [p for run in runs for p in run.timeline]
    weights = [max(run.window_end_s - run.window_start_s, 0.0) for run in runs]
    result.cpu_percent = _weighted_mean([run.done.get("cpu_percent") for run in runs], weights)
    result.cpu_wait_pct = _weighted_mean([run.done.get("cpu_wait_pct") for run in runs], weights)
    peaks = [run.done["peak_rss_mb"] for run in runs if run.done.get("peak_rss_mb") is not None]
    result.peak_rss_mb = max(peaks) if peaks else None
    result.process_peak_rss_mb = [float(v) for v in peaks]
    if result.cpu_wait_pct is not None and result.cpu_wait_pct > BUSY_CPU_WAIT_PCT:
        _add_note(result, f"the machine was busy: the worker waited for a CPU {result.cpu_wait_pct:.0f}% of "
                          f"its runnable time; timing comparisons are less trustworthy")
    errors = {run.done.get("reference_error") for run in runs} - {None}
    if errors:
        _add_note(result, f"reference model unavailable ({sorted(errors)[0]}): timing is compared without "
                          f"correcting for the machine's speed")
    if multi:
        result.windows = [[run.window_start_s, run.window_end_s] for run in runs]


def _weighted_mean(values: list[float | None], weights: list[float]) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
    total = sum(w for _, w in pairs)
    if not pairs:
        return None
    if total <= 0:
        return sum(v for v, _ in pairs) / len(pairs)
    return sum(v * w for v, w in pairs) / total


def _add_note(result: Result, note: str) -> None:
    if note not in result.notes:
        result.notes.append(note)


def _note_sticky_throttle(result: Result, readers: DeviceReaders) -> None:
    start, end = result.device_start.get("throttled_raw"), result.device_end.get("throttled_raw")
    if end is None:
        return
    from .device.readers import ThrottleState

    before = None if start is None else ThrottleState(int(start))
    for message in ThrottleState(int(end)).run_notes(before):
        _add_note(result, message)


def _attach_power(result: Result, trace: PowerTrace, idle_w: float | None,
                  windows: list[tuple[float, float, int]]) -> None:
    from .power import combine_power, summarize_power
    from .power.join import join_power

    summaries = [summarize_power(trace, start, end, count, idle_w) for start, end, count in windows]
    summary = combine_power(summaries, accuracy=result.accuracy or None)
    result.power = summary
    # a repeated (throttled) attempt replaces the power figures, so it replaces an earlier attempt's note too
    result.notes[:] = [n for n in result.notes if not n.startswith(("power unavailable: ", "power estimated: "))]
    if "unavailable" in summary:
        result.notes.append(f"power unavailable: {summary['unavailable']}")
    elif summary.get("estimated_windows"):
        result.notes.append(f"power estimated: {summary['estimated_windows']} of {summary['windows']} process windows "
                            f"({summary['estimated_s']:.2f} of {summary['window_s']:.2f} s) had too few power samples "
                            "of their own and were given the other windows' mean power")
    # power readings join the timeline (nearest reading) so one chart can show them together
    result.timeline = join_power(result.timeline, trace)
