"""Interleaved A/B measurement: two long-lived workers, each with its model loaded and warm, taking short turns.

Stored baselines compare runs minutes or days apart, and a shared machine drifts in between; timing both versions
alternately in the same window cancels most of that drift (Abedi and Brecht, ICPE 2017; Bulej et al., ICPE 2020).
Each arm runs in its own worker process (``python -m pytest_edgeperf.worker`` with ``"blocks": true``), so a
crash or hang costs that comparison, never the session; the parent tells one worker at a time to time a turn of
``turn_s`` seconds, in ABBA order (pairs alternate AB, BA: linear drift within a pair cancels), with equal turns for
both arms. A turn holds at least MIN_TURN_RUNS inferences of the slower arm (timed in a discarded warm-up turn), so
a slow model gets longer turns and fewer pairs from the same budget. Each turn is summarised by its fast-half mean
(stats.fast_half_mean); a pair's two turns give one log ratio, and compare.py judges the ratio from the pairs.

The pairs are split across several fresh worker pairs (each block starts a new A and B worker, warms both, runs its
share of the pairs and stops them; which arm starts first alternates per block). Two processes of the same model
differ by a steady few percent (memory layout, where the allocator put the buffers: issue 18's A/A runs showed
+2.8% with a 0.9% interval from one pair of workers), and no number of turns within one pair of processes averages
that out; several pairs of processes do, and estimate.py's interval counts the spread between them. So the number
of worker pairs is what narrows the interval, and it is bought cheaply: only the first pair warms up for the
budget's warm-up, the later ones for REWARM_S, and unless the caller fixes the number (``processes=``) it is
chosen after the first pair from what a pair cost (auto_blocks): MAX_BLOCKS when starting one is cheap next to
the timing budget, fewer (at least MIN_BLOCKS) when the model loads slowly or the budget is short.

One worker per arm rather than one process holding both models: the short turns then cost one pipe round trip
each (well under a millisecond), while a segfaulting runtime or a model that hangs still kills only its own arm.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config.settings import Budget
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
#: fresh worker pairs a comparison is split across, at least and at most, when the caller does not fix it: two
#: processes of the same model differ by a steady 0.3-2.8% (memory layout, where the allocator put the buffers;
#: issue 18, benchmarks/bench_layout.py), which only several processes per arm average out and show in the
#: interval. 8 against 3 on this project's 2-core VM (bench_ab.py, 6 configurations x 2 trials, same budget): the
#: measured slowdown's sd across trials 0.73-0.84% against 1.4-1.5%, +5% flagged at a 1% gate 10/12 against 8/12
MIN_BLOCKS = 3
MAX_BLOCKS = 8
#: the extra worker pairs may cost up to this many times the timing budget (their start, load, warm-up and
#: discarded turn): 8 pairs of resnet50@64 here cost 1.84x one stored-baseline measurement
BLOCK_COST_SHARE = 2.0
#: pairs each worker pair runs at least (its own spread of log ratios)
MIN_BLOCK_PAIRS = 2
#: the warm-up (seconds) of every worker pair after the first, at most: the first pair warms up for the budget's
#: warmup_s (1 s by default) and measures the per-inference time; the later ones only need their own caches and
#: allocator warm, which the warm-up runs and the discarded turn give. A 1 s warm-up was most of a worker pair's
#: cost (resnet50@64 here: start and load 0.23-0.39 s, warm-up 1.02 s, a 0.125 s turn 0.13 s)
REWARM_S = 0.1

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
    block: list[int] = field(default_factory=list)  # per pair, the index of the worker pair that timed it

    @property
    def pairs(self) -> int:
        return len(self.a_turn_s)

    @property
    def blocks(self) -> int:
        """How many worker pairs (fresh A and B processes) the pairs came from."""
        return len(set(self.block)) if self.block else 1


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


def block_shares(pairs: int, blocks: int) -> list[int]:
    """How many pairs each of ``blocks`` worker pairs runs: ``pairs`` split as evenly as possible, at least
    MIN_BLOCK_PAIRS each (so a block has a within-block spread of its own)."""
    blocks = max(1, blocks)
    base, extra = divmod(max(pairs, blocks * MIN_BLOCK_PAIRS), blocks)
    return [max(MIN_BLOCK_PAIRS, base + (1 if i < extra else 0)) for i in range(blocks)]


def auto_blocks(pairs: int, turn_s: float, start_s: float) -> int:
    """How many worker pairs a comparison runs when the caller does not say: as many (MIN_BLOCKS to MAX_BLOCKS) as
    keep the extra pairs' cost within BLOCK_COST_SHARE times the timing (``pairs`` pairs of two ``turn_s`` turns).

    ``start_s`` is what the first pair took to start and load both workers; a later pair adds that, REWARM_S of
    warm-up and one discarded turn per arm.
    """
    per_block = max(start_s, 0.0) + REWARM_S + 2 * turn_s  # > 0: REWARM_S is
    timing = 2 * pairs * turn_s
    return max(MIN_BLOCKS, min(MAX_BLOCKS, 1 + int(BLOCK_COST_SHARE * timing / per_block)))


def run_paired(a: MeasureRequest, b: MeasureRequest, inst: Instruments, progress: Progress | None = None,
               python_b: str | None = None, labels: tuple[str, str] = ("A", "B"),
               blocks: int | None = None) -> PairedRun:
    """Measure ``a`` and ``b`` interleaved under the device lock and one thermal-guard wait, in ``blocks`` fresh
    worker pairs (see the module docstring) that share the budget's pairs; None: auto_blocks after the first.

    Raises WorkerError naming the arm whose worker crashed, hung or refused its model (the other arm's worker
    is stopped), or DeviceNotReady when the guard gives up. ``python_b`` runs B's worker under another interpreter.
    """
    start = time.monotonic()
    fixed = blocks is not None
    # auto: settled after the first worker pair, which is never the last (MIN_BLOCKS >= 2)
    blocks = max(1, blocks) if blocks is not None else MIN_BLOCKS
    reqs = (a, b)
    with device_lock(inst.lock_path, progress, inst.lock_timeout_s, inst.lock_announce):
        notes: list[str] = []
        if inst.guard is not None:
            outcome = inst.guard.wait_until_ready()
            notes.extend(outcome.notes)
            if not outcome.ready:
                raise DeviceNotReady(outcome.reason)
        turns: list[list[dict[str, Any]]] = [[], []]
        order: list[str] = []
        block_of: list[int] = []
        loaded: list[dict[str, Any]] = [{}, {}]
        ready: list[dict[str, Any]] = [{}, {}]
        done: list[list[dict[str, Any]]] = [[], []]
        accuracy: list[dict[str, Any]] = [{}, {}]
        peaks: list[list[float]] = [[], []]
        pairs, turn_s = plan_turns(a.budget)
        shares: list[int] = []
        deadline = math.inf
        index = 0
        for block in itertools.count():
            if block >= blocks:  # auto_blocks may change ``blocks`` after the first worker pair
                break
            block_start = time.monotonic()
            first = block % 2  # the arm started, loaded and timed first: alternates per block
            last = block == blocks - 1
            arms = (first, 1 - first)
            workers: dict[int, WorkerProcess] = {}
            try:
                for arm in arms:
                    req = reqs[arm]
                    describe = f"{req.framework} on {req.model} ({labels[arm]})"
                    request = _request(req, a.budget)
                    if block > 0:
                        request["warmup_s"] = min(a.budget.warmup_s, REWARM_S)
                    if not last:  # the accuracy pass runs once, in the last block
                        request["accuracy"] = None
                    workers[arm] = WorkerProcess(request, describe, python=python_b if arm == 1 else None)
                got_loaded, got_ready = {}, {}
                for arm in arms:
                    if progress:
                        of = f" of {blocks}" if fixed or block else ""  # auto: unknown until the first pair ran
                        progress(f"{a.test_id}: loading {reqs[arm].model_file.name} in {reqs[arm].framework} "
                                 f"({workers[arm].describe}), worker pair {block + 1}{of}")
                    got_loaded[arm] = workers[arm].expect("loaded", inst.worker_timeout_s, "while loading the model")
                start_s = time.monotonic() - block_start
                for arm in arms:
                    got_ready[arm] = workers[arm].expect("ready", inst.worker_timeout_s, "during warm-up")
                if block == 0:
                    loaded, ready = [got_loaded[0], got_loaded[1]], [got_ready[0], got_ready[1]]
                # one discarded turn each: the arm that warmed up first has idled while the other loaded; in the
                # first block its per-inference time sizes the turns (at least MIN_TURN_RUNS of the slower arm)
                per_inference = 0.0
                for arm in arms:
                    workers[arm].send({"cmd": "block", "time_s": turn_s})
                    warm = workers[arm].expect("block", turn_s + inst.worker_timeout_s, "while timing")
                    per_inference = max(per_inference, _per_inference_s(warm))
                if block == 0:
                    pairs, turn_s = plan_turns(a.budget, per_inference)
                    if not fixed:
                        blocks = auto_blocks(pairs, turn_s, start_s)
                    shares = block_shares(pairs, blocks)
                    deadline = time.monotonic() + a.budget.max_time_s
                timeout = turn_s + inst.worker_timeout_s
                in_block = 0
                while True:
                    sequence = arms if in_block % 2 == 0 else arms[::-1]
                    cores = _pair_cores(index, a.threads)
                    for worker in workers.values():
                        _pin(worker.pid, cores)
                    for arm in sequence:
                        workers[arm].send({"cmd": "block", "time_s": turn_s})
                        turns[arm].append(workers[arm].expect("block", timeout, "while timing"))
                    order.append("AB" if sequence == (0, 1) else "BA")
                    block_of.append(block)
                    index += 1
                    in_block += 1
                    if progress:
                        progress(f"{a.test_id}: interleaved A/B, pair {index} of {sum(shares)} "
                                 f"(worker pair {block + 1} of {blocks}, {turn_s:g} s turns)")
                    counts = [sum(len(t["latency_s"]) for t in arm_turns) for arm_turns in turns]
                    enough = in_block >= shares[block] and (not last or min(counts) >= a.budget.min_samples)
                    if enough or (time.monotonic() >= deadline and in_block >= MIN_BLOCK_PAIRS):
                        break
                for arm in arms:
                    workers[arm].send({"cmd": "stop"})
                    done[arm].append(workers[arm].expect("done", inst.worker_timeout_s, "while reporting"))
                if last:
                    for arm in arms:
                        if reqs[arm].accuracy:
                            accuracy[arm] = workers[arm].expect("accuracy", inst.worker_timeout_s + 600,
                                                                "during the accuracy pass")
            except BaseException:
                for worker in workers.values():
                    worker.kill()
                raise
            finally:
                for arm, worker in workers.items():
                    worker.close()
                    if isinstance(worker.peak_rss_mb, (int, float)):
                        peaks[arm].append(worker.peak_rss_mb)
    results = []
    for arm, req in enumerate(reqs):
        result = _arm_result(req, inst, loaded[arm], ready[arm], turns[arm], done[arm], accuracy[arm],
                             max(peaks[arm]) if peaks[arm] else None)
        result.notes.extend(n for n in notes if n not in result.notes)
        result.environment["paired_arm"] = labels[arm]
        result.environment["worker_pairs"] = blocks
        results.append(result)
    stat = [[fast_half_mean(t["latency_s"]) or math.nan for t in arm_turns] for arm_turns in turns]
    return PairedRun(results[0], results[1], stat[0], stat[1], turn_s, time.monotonic() - start, order, block_of)


def _arm_result(req: MeasureRequest, inst: Instruments, loaded: dict[str, Any], ready: dict[str, Any],
                turns: list[dict[str, Any]], dones: list[dict[str, Any]], accuracy: dict[str, Any],
                sampled_peak_mb: float | None) -> Result:
    """One arm as a Result: every turn's samples joined (all valid: no sensor timeline in an interleaved run); load
    figures from the first worker, the peak memory over all of this arm's workers, CPU use averaged over them."""
    done = dones[-1] if dones else {}
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
    peaks = [v for v in [d.get("peak_rss_mb") for d in dones] + [sampled_peak_mb] if isinstance(v, (int, float))]
    result.peak_rss_mb = max(peaks) if peaks else None
    waits = [t["cpu_wait_pct"] for t in turns if isinstance(t.get("cpu_wait_pct"), (int, float))]
    result.cpu_wait_pct = sum(waits) / len(waits) if waits else None
    cpu = [d["cpu_percent"] for d in dones if isinstance(d.get("cpu_percent"), (int, float))]
    result.cpu_percent = sum(cpu) / len(cpu) if cpu else None
    result.accuracy = {k: v for k, v in accuracy.items() if k != "event" and isinstance(v, (int, float))}
    result.notes.extend(ready.get("notes") or [])
    return result

