"""Environment gating: what makes two runs not comparable at all, or not comparable on timing.

Why: anything that makes a comparison untrustworthy must give INCONCLUSIVE, never REGRESSION: a gate that cries
wolf gets switched off. Nothing is judged when the result is not "ok" or the environments differ in what defines the
workload (device, runtime, threads, inputs, accelerator). Timing alone is not judged when the baseline of the
``host`` profile was recorded on another machine, when a worker queued for a CPU (a busy machine), or when the two
runs were timed for very different lengths; accuracy and memory still are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_edgeperf.result import STATUS_OK, comparable_environment
from pytest_edgeperf.verdict import noise

if TYPE_CHECKING:
    from pytest_edgeperf.baseline import BaselineEntry
    from pytest_edgeperf.result import Result

# Environment keys that make two runs incomparable when they differ: a different input shape or dtype is another
# workload (INCONCLUSIVE with a note), never a regression. "inputs" (name, shape, dtype of each input as measured)
# is compared only where both sides have it; older baselines have "input_shape" (the first input) alone.
#: ``provider`` (the accelerator path that ran: ONNX Runtime's providers, a LiteRT delegate, OpenCV's backend/target)
#: and ``accelerator`` (what was asked for, with its options) too: CUDA against the CPU is no regression
INCOMPARABLE_KEYS = ("device", "runtime", "threads", "input_shape", "inputs", "provider", "accelerator")
# Keys whose change is worth a flag but does not stop the comparison.
FLAGGED_KEYS = ("runtime_version", "model_sha256")
#: for the ``host`` profile (any Linux machine), what identifies the machine whose timing a baseline holds
#: (device/environment.py); a key missing on either side (a baseline from before it was recorded) is not compared
HOST_IDENTITY_KEYS = ("cpu", "cpu_id", "machine", "cpu_count", "hostname")
#: timing is judged only between runs whose minimum timed time (``environment["min_time_s"]``) differs by at most
#: this factor: a much shorter run warms up less and its processes see seconds, not the tens of seconds of
#: the machine's drift the baseline's processes were spread over (a 1 s run against 10 s baselines raised a false
#: -19% fps alarm, see benchmarks/README.md)
BUDGET_RATIO = noise.BUDGET_RATIO


@dataclass(frozen=True)
class Gate:
    """What the two environments allow the judge to decide, and the notes that say why not."""

    blocked: str = ""  # nothing is judged: the result is not ok, or the workloads differ
    timing_blocked: str = ""  # timing is not judged (another machine, a busy one, another budget): the whole reason
    timing_note: str = ""  # the short form each timing metric's row shows
    flags: tuple[str, ...] = ()  # the test's notes, in the order the table lists them


def environment_gate(current: Result, baseline: BaselineEntry, max_cpu_wait_pct: float) -> Gate:
    """Compare both sides' environments and busy-ness: what may be judged, and every difference worth a note.

    Why separate from the decisions: whether two runs are comparable is a question about the runs, not about any
    metric, and its answer (with its notes) is the same for every row of the table.
    """
    flags: list[str] = []
    env_now, env_base = comparable_environment(current), baseline.environment
    blocked = ""
    if current.status != STATUS_OK:
        reason = f" ({current.status_reason})" if current.status_reason else ""
        blocked = f"result is {current.status}{reason}"
    elif diffs := _environment_differences(env_now, env_base, INCOMPARABLE_KEYS):
        blocked = "incomparable environment: " + ", ".join(diffs)
    if blocked:
        flags.append(blocked)
    if baseline.quick:
        flags.append("baseline was recorded by a quick run")
    for diff in _environment_differences(env_now, env_base, FLAGGED_KEYS):
        if diff.startswith("model_sha256"):
            flags.append("model changed since baseline (sha256 "
                         f"{str(env_base.get('model_sha256'))[:12]} -> "
                         f"{str(env_now.get('model_sha256'))[:12]})")
        else:
            key, change = diff.split(" ", 1)
            flags.append(f"{key.replace('_', ' ')} changed since baseline ({change})")

    # "host" is not a hardware class like pi3: its timing is comparable only on the machine that recorded it
    timing_blocked, timing_note = "", ""
    host_diffs = (_environment_differences(env_now, env_base, HOST_IDENTITY_KEYS)
                  if str(env_now.get("device")) == "host" else [])
    if host_diffs:
        timing_blocked = ("host baseline recorded on another machine (" + ", ".join(host_diffs) + "): timing is "
                          "judged only on the machine that recorded it; accuracy and memory still are")
        timing_note = "recorded on another machine"
    # A worker that queued for a CPU shared the machine with other load: its times say more about that load
    # than about the model (bench_verdict.py under a 1-core CPU hog: waits 38-49% vs 0.4-1.2% idle, and 3% of
    # A/A pairs failed while 74% of 10% slowdowns hid in the spread). Timing is then not judged either way.
    elif busy := _busy(current.cpu_wait_pct, baseline.metrics.get("cpu_wait_pct"), max_cpu_wait_pct):
        timing_blocked, timing_note = busy, "machine busy"
    elif budget := _budget_mismatch(env_now.get("min_time_s"), env_base.get("min_time_s")):
        timing_blocked, timing_note = budget, "different timing budget"
    if timing_blocked:
        flags.append(timing_blocked)
    return Gate(blocked, timing_blocked, timing_note, tuple(flags))


def _environment_differences(
    current: Mapping[str, Any], baseline: Mapping[str, Any], keys: tuple[str, ...]
) -> list[str]:
    """``key old -> new`` for each of ``keys`` both sides have and that differs (JSON values, compared as text)."""
    diffs: dict[str, str] = {}
    for key in keys:
        a, b = baseline.get(key), current.get(key)
        if key == "inputs":
            a, b = _input_signature(a), _input_signature(b)
        if a is not None and b is not None and str(a) != str(b):
            diffs[key] = f"{key} {a} -> {b}"
    if "inputs" in diffs:
        diffs.pop("input_shape", None)  # the full signature says it already
    return list(diffs.values())


def _input_signature(inputs: object) -> str | None:
    """``name 1x3x224x224 float32; ...``: the measured inputs in a form a note can show (quantisation left out)."""
    if not isinstance(inputs, list) or not inputs:
        return None
    parts = []
    for spec in inputs:
        if not isinstance(spec, Mapping):
            return str(inputs)
        shape = "x".join(str(d) for d in spec.get("shape") or []) or "scalar"
        parts.append(f"{spec.get('name')} {shape} {spec.get('dtype')}")
    return "; ".join(parts)


def _busy(now_pct: float | None, base_pct: float | None, limit: float) -> str:
    """Why timing cannot be judged because a side's worker waited for a CPU more than ``limit`` %, or ""."""
    for side, pct in (("this run", now_pct), ("the baseline", base_pct)):
        if pct is not None and pct > limit:
            return (f"machine busy: in {side} the worker waited for a CPU {pct:.0f}% of its runnable time "
                    f"(limit {limit:g}%, --edgeperf-max-cpu-wait); timing is not judged")
    return ""


def _budget_mismatch(now_s: Any, base_s: Any) -> str:
    """Why timing cannot be judged because the two runs were timed for very different lengths, or "".

    Both are ``environment["min_time_s"]`` as stored (JSON: a number, or missing in an older baseline).
    """
    if noise.budgets_comparable(now_s, base_s):  # also a baseline from before the budget was recorded
        return ""
    now, base = float(now_s), float(base_s)
    return (f"different timing budget: this run timed for at least {now:g} s, the baseline for {base:g} s; "
            f"timing is judged only within a factor {BUDGET_RATIO:g} (--edgeperf-min-time={base:g} to compare, "
            "or record a baseline at this budget)")
