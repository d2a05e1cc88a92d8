"""Interleaved A/B measurement: two long-lived workers, each with its model loaded and warm, taking short turns.

Stored baselines compare runs minutes or days apart, and a shared machine drifts in between; timing both versions
alternately in the same window cancels most of that drift (Abedi and Brecht, ICPE 2017; Bulej et al., ICPE 2020).
Each arm runs in its own worker process (``python -m pytest_edgeperf.worker`` with ``"blocks": true``), so a
crash or hang costs that comparison, never the session; the parent tells one worker at a time to time a turn of
``turn_s`` seconds, in ABBA order (pairs alternate AB, BA: linear drift within a pair cancels), with equal turns for
both arms. A turn holds at least MIN_TURN_RUNS inferences of the slower arm (timed in a discarded warm-up turn), so
a slow model gets longer turns and fewer pairs from the same budget. Each turn is summarised by its fast-half mean
(stats.fast_half_mean); a pair's two turns give one log ratio, and compare.py judges the ratio from the pairs.

One worker per arm rather than one process holding both models: the short turns then cost one pipe round trip
each (well under a millisecond), while a segfaulting runtime or a model that hangs still kills only its own arm.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Budget
from ..device.guard import DeviceNotReady
from ..device.lock import Progress, device_lock
from ..fileio import file_sha256
from ..result import STATUS_OK, Result, Samples
from ..stats import fast_half_mean
from .client import WorkerProcess

if TYPE_CHECKING:
    from ..measure import Instruments, MeasureRequest

#: the longest turn for a fast model: short enough that the machine's drift within a pair is small (the check in
#: issue 18 used it); a slow model's turns grow past it to hold MIN_TURN_RUNS inferences
MAX_TURN_S = 0.25
#: the shortest turn: a pipe round trip and the first sample's cache misses stay a small share of it
MIN_TURN_S = 0.02
#: inferences a turn holds at least (from the warm-up turn's per-inference time): a fast-half mean of fewer
#: samples is too noisy (squeezenet1_1 in 0.08 s turns of 3-4 inferences gave interval half-widths of ~14%)
MIN_TURN_RUNS = 10
#: at least this many pairs, however short the budget (a paired t-interval on 5 degrees of freedom)
MIN_RUN_PAIRS = 6
#: the turns are sized so that a budget holds about this many pairs
TARGET_PAIRS = 12

@dataclass
class PairedRun:
    """Both arms' Results and, per pair, each arm's turn statistic (fast-half mean of the turn's sample times)."""

    a: Result
    b: Result
    a_turn_s: list[float]
    b_turn_s: list[float]
    turn_s: float
    wall_s: float
    order: list[str] = field(default_factory=list)  # "AB" or "BA" per pair

    @property
    def pairs(self) -> int:
        return len(self.a_turn_s)


def plan_turns(budget: Budget, per_inference_s: float = 0.0) -> tuple[int, float]:
    """(pairs, seconds per turn) for a budget: both arms together time ``min_time_s``, in equal turns.

    A turn lasts ``min_time_s / (2 * TARGET_PAIRS)`` within [MIN_TURN_S, MAX_TURN_S], and never less than
    MIN_TURN_RUNS inferences of the slower arm (``per_inference_s``, from the warm-up turn): a slow model gets
    longer turns and so fewer pairs from the same budget (at least MIN_RUN_PAIRS; the run then outlasts
    ``min_time_s``, up to ``max_time_s``).
    """
    total = max(budget.min_time_s, 2 * MIN_RUN_PAIRS * MIN_TURN_S)
    turn_s = min(MAX_TURN_S, max(MIN_TURN_S, total / (2 * TARGET_PAIRS)))
    if math.isfinite(per_inference_s) and per_inference_s > 0:
        turn_s = max(turn_s, MIN_TURN_RUNS * per_inference_s)
    return max(MIN_RUN_PAIRS, round(total / (2 * turn_s))), turn_s


def _pair_cores(index: int, threads: int) -> set[int] | None:
    """The CPUs both arms' workers run on during pair ``index``: ``threads`` of the allowed ones, moving on by one
    each pair; None (no pinning) when that would be all of them or the platform cannot pin.

    Left to the scheduler, each worker tends to stay on one core, and on a shared or virtual machine cores differ
    in speed (another job, a busy hyperthread sibling): an A/A comparison of a fast model then showed a steady
    +-2-3% with a 0.1% interval. Within a pair both arms run on the same cores, and across pairs every core is used.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if threads >= len(allowed):
        return None
    return {allowed[(index + j) % len(allowed)] for j in range(max(1, threads))}


def _pin(pid: int, cores: set[int] | None) -> None:
    """Every thread of process ``pid`` onto ``cores`` (a runtime's thread pool too); best effort."""
    if cores is None:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended, or pinning is not permitted: it runs unpinned
            os.sched_setaffinity(tid, cores)


def _per_inference_s(turn: dict[str, Any]) -> float:
    """The median time per inference in a (warm-up) turn, 0 when it holds none."""
    times = sorted(turn.get("latency_s") or [])
    return times[len(times) // 2] if times else 0.0

def _request(req: MeasureRequest, budget: Budget) -> dict[str, Any]:
    return {
        "framework": req.framework, "model_file": str(req.model_file), "threads": req.threads,
        "warmup_s": budget.warmup_s, "warmup_runs": budget.warmup_runs, "budget": {},
        "inputs": req.inputs, "accuracy": req.accuracy, "sys_path": req.sys_path, "blocks": True,
        "input_shapes": req.input_shapes, "input_dtypes": req.input_dtypes, "input_values": req.input_values,
    }


def run_paired(a: MeasureRequest, b: MeasureRequest, inst: Instruments, progress: Progress | None = None,
               python_b: str | None = None, labels: tuple[str, str] = ("A", "B")) -> PairedRun:
    """Measure ``a`` and ``b`` interleaved under the device lock and one thermal-guard wait.

    Raises WorkerError naming the arm whose worker crashed, hung or refused its model (the other arm's worker
    is stopped), or DeviceNotReady when the guard gives up. ``python_b`` runs B's worker under another interpreter.
    """
    start = time.monotonic()
    with device_lock(inst.lock_path, progress, inst.lock_timeout_s, inst.lock_announce):
        notes: list[str] = []
        if inst.guard is not None:
            outcome = inst.guard.wait_until_ready()
            notes.extend(outcome.notes)
            if not outcome.ready:
                raise DeviceNotReady(outcome.reason)
        workers: list[WorkerProcess] = []
        try:
            for req, label, python in ((a, labels[0], None), (b, labels[1], python_b)):
                describe = f"{req.framework} on {req.model} ({label})"
                workers.append(WorkerProcess(_request(req, a.budget), describe, python=python))
            loaded, ready = [], []
            for worker, req in zip(workers, (a, b), strict=True):
                if progress:
                    progress(f"{a.test_id}: loading {req.model_file.name} in {req.framework} ({worker.describe})")
                loaded.append(worker.expect("loaded", inst.worker_timeout_s, "while loading the model"))
            for worker in workers:
                ready.append(worker.expect("ready", inst.worker_timeout_s, "during warm-up"))
            turns: list[list[dict[str, Any]]] = [[], []]
            order: list[str] = []
            # one discarded turn each: the arm that warmed up first has idled while the other loaded; its
            # per-inference time sizes the turns (at least MIN_TURN_RUNS inferences of the slower arm)
            pairs, turn_s = plan_turns(a.budget)
            per_inference = 0.0
            for worker in workers:
                worker.send({"cmd": "block", "time_s": turn_s})
                warm = worker.expect("block", turn_s + inst.worker_timeout_s, "while timing")
                per_inference = max(per_inference, _per_inference_s(warm))
            pairs, turn_s = plan_turns(a.budget, per_inference)
            timeout = turn_s + inst.worker_timeout_s
            deadline = time.monotonic() + a.budget.max_time_s
            index = 0
            while True:
                sequence = (0, 1) if index % 2 == 0 else (1, 0)
                cores = _pair_cores(index, a.threads)
                for worker in workers:
                    _pin(worker.pid, cores)
                for arm in sequence:
                    workers[arm].send({"cmd": "block", "time_s": turn_s})
                    turns[arm].append(workers[arm].expect("block", timeout, "while timing"))
                order.append("AB" if sequence == (0, 1) else "BA")
                index += 1
                if progress:
                    progress(f"{a.test_id}: interleaved A/B, pair {index} of {pairs} ({turn_s:g} s turns)")
                counts = [sum(len(t["latency_s"]) for t in arm_turns) for arm_turns in turns]
                enough = index >= pairs and min(counts) >= a.budget.min_samples
                if enough or (time.monotonic() >= deadline and index >= MIN_RUN_PAIRS):
                    break
            done, accuracy = [], []
            for worker in workers:
                worker.send({"cmd": "stop"})
                done.append(worker.expect("done", inst.worker_timeout_s, "while reporting"))
            for worker, req in zip(workers, (a, b), strict=True):
                accuracy.append(worker.expect("accuracy", inst.worker_timeout_s + 600, "during the accuracy pass")
                                if req.accuracy else {})
        except BaseException:
            for worker in workers:
                worker.kill()
            raise
        finally:
            for worker in workers:
                worker.close()
    results = []
    for i, (req, arm) in enumerate(((a, 0), (b, 1))):
        result = _arm_result(req, inst, loaded[arm], ready[arm], turns[arm], done[arm], accuracy[arm],
                             workers[arm].peak_rss_mb)
        result.notes.extend(n for n in notes if n not in result.notes)
        result.environment["paired_arm"] = labels[i]
        results.append(result)
    stat = [[fast_half_mean(t["latency_s"]) or math.nan for t in arm_turns] for arm_turns in turns]
    return PairedRun(results[0], results[1], stat[0], stat[1], turn_s, time.monotonic() - start, order)


def _arm_result(req: MeasureRequest, inst: Instruments, loaded: dict[str, Any], ready: dict[str, Any],
                turns: list[dict[str, Any]], done: dict[str, Any], accuracy: dict[str, Any],
                sampled_peak_mb: float | None) -> Result:
    """One arm as a Result: every turn's samples joined (all valid: no sensor timeline in an interleaved run)."""
    result = Result(test_id=req.test_id, framework=req.framework, model=req.model, device=inst.device_name,
                    quick=req.quick, threads=req.threads, status=STATUS_OK)
    result.environment = {**inst.environment, "device": inst.device_name, "runtime": req.framework,
                          "threads": req.threads, "model_sha256": file_sha256(req.model_file),
                          "model_file": req.model_file.name, "min_time_s": float(req.budget.min_time_s),
                          "runtime_version": loaded.get("runtime_version"), "inputs": ready.get("inputs") or [],
                          "python": done.get("python"), "python_executable": done.get("executable"),
                          "turns": len(turns)}
    samples = Samples()
    for turn in turns:
        samples.start_s.extend(turn["start_s"])
        samples.latency_s.extend(turn["latency_s"])
    samples.preprocess_s = [0.0] * len(samples.latency_s)
    samples.valid = [True] * len(samples.latency_s)
    result.samples = samples
    if samples.start_s:
        result.window_start_s = samples.start_s[0]
        result.window_end_s = samples.start_s[-1] + samples.latency_s[-1]
    result.load_time_s = loaded.get("load_time_s")
    result.rss_before_load_mb = loaded.get("rss_before_load_mb")
    result.rss_after_load_mb = loaded.get("rss_after_load_mb")
    result.first_inference_s = ready.get("first_inference_s")
    peaks = [v for v in (done.get("peak_rss_mb"), sampled_peak_mb) if isinstance(v, (int, float))]
    result.peak_rss_mb = max(peaks) if peaks else None
    waits = [t["cpu_wait_pct"] for t in turns if isinstance(t.get("cpu_wait_pct"), (int, float))]
    result.cpu_wait_pct = sum(waits) / len(waits) if waits else None
    result.cpu_percent = done.get("cpu_percent")
    result.accuracy = {k: v for k, v in accuracy.items() if k != "event" and isinstance(v, (int, float))}
    result.notes.extend(ready.get("notes") or [])
    return result

