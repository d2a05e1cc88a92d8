"""The isolated measurement process: load one model in one runtime, warm up, time batch-1 inferences, report raw values.

Run as ``python -m pytest_edgeperf.worker``. It reads one JSON request line on stdin and writes JSON event lines on
the protocol stream (the original stdout; the runtime's own prints are diverted to stderr so they can never corrupt
the protocol). Events, in order: ``loaded`` -> ``ready`` -> (waits for ``{"cmd": "go"}`` on stdin) -> ``done`` ->
optionally ``accuracy``; ``error`` at any point when the runtime refuses the model. A request with ``"blocks": true``
(an interleaved A/B comparison, paired.py) instead answers each ``{"cmd": "block", "time_s": T, "max_runs": N}``
with one ``block`` event (that turn's sample times) and ``{"cmd": "stop"}`` with ``done`` (and ``accuracy``).
A segfault or hang here costs one test, never the pytest session: the parent watches the process from outside.

The timing loop only calls the runtime and ``perf_counter``: inputs are prepared before it, the garbage collector
is paused during it (as pyperf does), and summaries are computed by the parent from the raw values.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import queue
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from pytest_edgeperf.worker.callables import load_callable

if TYPE_CHECKING:
    from pytest_edgeperf.frameworks.base import FrameworkAdapter
    from pytest_edgeperf.frameworks.signature import InputPlan, TensorSpec


def _read_status_mb(field: str) -> float | None:
    """VmRSS / VmHWM from /proc/self/status, in MB (kernel reports kB)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    if field == "VmHWM":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return None


class Protocol:
    """JSON lines to the parent on a private copy of the original stdout."""

    def __init__(self) -> None:
        self._out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # anything a runtime prints to stdout now lands in stderr
        sys.stdout = sys.stderr

    def send(self, event: str, **fields: Any) -> None:
        if event == "error":  # the parent says "out of memory, peak RSS X MB" when a MemoryError was the cause
            fields.setdefault("peak_rss_mb", _read_status_mb("VmHWM"))
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()


def _sched_totals_s() -> tuple[float, float] | None:
    """(time running, time runnable but waiting for a CPU) summed over this process's threads, from schedstat.

    The waiting share tells whether the machine was busy during the window: other load does not show in the
    latencies' spread alone, but it shows here (the kernel counts every wait on a run queue).
    """
    run = wait = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as fh:
                fields = fh.read().split()
            run += int(fields[0])
            wait += int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    return run / 1e9, wait / 1e9


def random_input(shape: tuple[int, ...], dtype: np.dtype, seed: int) -> np.ndarray:
    """One array of ``shape``: kept for scripts that time one static input (the worker uses ``generated_feed``)."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def time_plain(run: Callable[[], Any], min_samples: int, min_time_s: float, max_time_s: float,
               max_samples: int) -> tuple[list[float], list[float]]:
    """Time ``run`` until both minimums are met (or a cap is hit); returns (starts, durations) in seconds."""
    perf = time.perf_counter
    starts: list[float] = []
    durations: list[float] = []
    add_start, add_duration = starts.append, durations.append
    begin = perf()
    min_end, max_end = begin + min_time_s, begin + max_time_s
    n = 0
    while True:
        t0 = perf()
        run()
        t1 = perf()
        add_start(t0)
        add_duration(t1 - t0)
        n += 1
        if (n >= min_samples and t1 >= min_end) or t1 >= max_end or n >= max_samples:
            return starts, durations


def time_with_preprocessing(run_on: Callable[[Any], Any], prepare: Callable[[Any], Any],
                            raw_inputs: list[Any], min_samples: int, min_time_s: float, max_time_s: float,
                            max_samples: int) -> tuple[list[float], list[float], list[float]]:
    """Seed 001's throughput: each sample is preprocessing of a real input plus the inference."""
    perf = time.perf_counter
    starts: list[float] = []
    durations: list[float] = []
    pre: list[float] = []
    count = len(raw_inputs)
    begin = perf()
    min_end, max_end = begin + min_time_s, begin + max_time_s
    n = 0
    while True:
        raw = raw_inputs[n % count]
        t0 = perf()
        x = prepare(raw)
        t1 = perf()
        run_on(x)
        t2 = perf()
        starts.append(t0)
        durations.append(t2 - t0)
        pre.append(t1 - t0)
        n += 1
        if (n >= min_samples and t2 >= min_end) or t2 >= max_end or n >= max_samples:
            return starts, durations, pre


class Reference:
    """A fixed small model timed in short blocks between the model's samples, to track the machine's own speed.

    On a shared or drifting machine every run gets a slightly different CPU: the same model's fast-half time moved
    by 0.82% (sd) between processes on one thread here, with neighbouring processes alike (lag-1 autocorrelation
    +0.63: drift, not noise). The reference runs on one thread in the same runtime, so its time drifts with the
    model's; the model's time *relative to* the reference moved 0.34% (benchmarks/bench_reference.py --threads 1).
    """

    def __init__(self, runner: Callable[[], Any], block_runs: int, every_s: float) -> None:
        self.runner, self.block_runs, self.every_s = runner, block_runs, every_s
        self.starts: list[float] = []
        self.durations: list[float] = []

    def block(self) -> None:
        perf = time.perf_counter
        run, add_start, add_duration = self.runner, self.starts.append, self.durations.append
        for _ in range(self.block_runs):
            t0 = perf()
            run()
            t1 = perf()
            add_start(t0)
            add_duration(t1 - t0)


def time_interleaved(timer: Callable[..., tuple[list[float], ...]], reference: Reference, min_samples: int,
                     min_time_s: float, max_time_s: float, max_samples: int) -> tuple[list[float], ...]:
    """Run ``timer`` (time_plain or time_with_preprocessing, minus its budget) in chunks of ``reference.every_s``
    with a reference block after each chunk, until the overall budget is met; returns the timer's lists joined."""
    perf = time.perf_counter
    begin = perf()
    min_end, max_end = begin + min_time_s, begin + max_time_s
    joined: list[list[float]] | None = None
    n = 0
    while True:
        now = perf()
        chunk = max(0.0, min(reference.every_s, max_end - now))
        # a chunk takes at least one sample, at most what the overall sample budget has left
        parts = timer(1, chunk, chunk, max(1, max_samples - n))
        if joined is None:
            joined = [list(p) for p in parts]
        else:
            for whole, part in zip(joined, parts, strict=True):
                whole.extend(part)
        n = len(joined[1])
        end = joined[0][-1] + joined[1][-1]
        if (n >= min_samples and end >= min_end) or end >= max_end or n >= max_samples:
            return tuple(joined)
        reference.block()


#: PR_SET_PDEATHSIG from <linux/prctl.h>: the signal the kernel sends a process when its parent dies
_PR_SET_PDEATHSIG = 1
#: the parent's pid (client.PARENT_PID_ENV; not imported: the worker imports nothing of the parent side)
_PARENT_PID_ENV = "EDGEPERF_PARENT_PID"


def die_with_parent() -> None:
    """Make sure this worker never outlives pytest, even when pytest is killed with SIGKILL.

    On Linux the kernel is asked to SIGKILL us when the parent dies (``prctl(PR_SET_PDEATHSIG)``). The parent may
    already have died before that call: if our parent is no longer the pid it gave us, we leave at once. The
    portable fallback is ``ParentPipe``: our stdin closes when the parent goes.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    expected = os.environ.get(_PARENT_PID_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):
        _leave()


def _leave() -> None:
    """Go now, with whatever this process group started (the worker leads its own group: client.WorkerProcess)."""
    if os.getpgrp() == os.getpid():
        import signal

        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


class ParentPipe:
    """The parent's commands on stdin, read by a thread that sleeps in ``read`` (it costs the timing loop nothing).

    End of file means the parent is gone (killed, interrupted) or done with us: the worker then leaves at once,
    wherever its main thread is, even inside a hung runtime call that releases the GIL.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._watch, name="edgeperf-parent-pipe", daemon=True).start()

    def _watch(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._stream:
                self._lines.put(line)
        _leave()

    def wait_for_go(self) -> bool:
        return self.next_command().get("cmd") == "go"

    def next_command(self) -> dict[str, Any]:
        """The parent's next command (blocks until it comes; the parent going away ends the process instead)."""
        return json.loads(self._lines.get())


def main() -> int:
    """Run the protocol; a MemoryError anywhere (a runtime allocating during load) is reported as such."""
    proto = Protocol()
    try:
        return _run(proto)
    except MemoryError as exc:
        with contextlib.suppress(BaseException):  # with no memory left even this may fail: then the exit code says it
            proto.send("error", kind="out_of_memory", message=_one_line(exc))
        return 7


def _run(proto: Protocol) -> int:
    request = json.loads(sys.stdin.readline())
    parent = ParentPipe(sys.stdin)
    from pytest_edgeperf.frameworks import ModelLoadError

    sys_path = request.get("sys_path", [])
    threads = int(request["threads"])
    from pytest_edgeperf.frameworks.accelerators import AcceleratorUnavailable

    try:
        adapter = _make_adapter(request, sys_path)
    except MemoryError:
        raise
    except Exception as exc:  # a third-party adapter that does not import or construct: one line, like a bad model
        proto.send("error", kind="adapter", message=_one_line(exc))
        return 3
    adapter.configure(request.get("accelerator") or {})
    rss_before = _read_status_mb("VmRSS")
    t0 = time.perf_counter()
    try:
        adapter.load(Path(request["model_file"]), threads)
    except ModelLoadError as exc:
        proto.send("error", kind="model_rejected", message=str(exc))
        return 3
    except AcceleratorUnavailable as exc:  # a skip with this reason in the parent, never a CPU fallback
        proto.send("error", kind="accelerator_unavailable", message=str(exc))
        return 3
    load_time_s = time.perf_counter() - t0
    rss_after = _read_status_mb("VmRSS")
    try:
        declared = {"inputs": [t.to_json() for t in adapter.inputs], "outputs": [t.to_json() for t in adapter.outputs]}
    except Exception as exc:  # a runtime that cannot say its signature (OpenCV on a file nothing else reads)
        proto.send("error", kind="model_rejected", message=_one_line(exc))
        return 3
    proto.send("loaded", load_time_s=load_time_s, rss_before_load_mb=rss_before, rss_after_load_mb=rss_after,
               runtime_version=adapter.version(), signature=declared, input_layout=adapter.input_layout,
               provider=adapter.provider())

    reference, reference_error = None, None
    if request.get("reference"):
        try:
            reference = _load_reference(type(adapter), request["reference"], threads)
        except Exception as exc:  # a broken reference costs the normalisation, never the measurement
            reference_error = _one_line(exc)

    from pytest_edgeperf.frameworks.signature import SignatureError

    inputs = request.get("inputs") or {"kind": "random", "seed": 0}
    try:
        plan, prepare, raw_inputs, x = plan_inputs(adapter, inputs, request, "", sys_path)
    except SignatureError as exc:
        proto.send("error", kind="signature", message=str(exc))
        return 4
    except Exception as exc:  # a user's input function or dataset failed: report it as such, one line
        proto.send("error", kind="inputs", message=_one_line(exc))
        return 4

    runner = adapter.make_runner(x)
    try:
        t0 = time.perf_counter()
        runner()
        first_inference_s = time.perf_counter() - t0
        warmup_end = time.perf_counter() + float(request.get("warmup_s", 1.0))
        for _ in range(int(request.get("warmup_runs", 5))):
            runner()
        while time.perf_counter() < warmup_end:
            runner()
    except Exception as exc:
        proto.send("error", kind="inference", message=_one_line(exc))
        return 5
    proto.send("ready", first_inference_s=first_inference_s, inputs=[t.to_json() for t in plan.specs],
               notes=plan.notes)
    if request.get("blocks"):
        if prepare is None:
            def timer(*b: Any) -> tuple[list[float], ...]:
                return time_plain(runner, *b)
        else:
            run_on = adapter.run

            def timer(*b: Any) -> tuple[list[float], ...]:
                return time_with_preprocessing(run_on, prepare, raw_inputs, *b)
        return serve_blocks(proto, parent, timer, request, adapter, plan, sys_path)
    if request.get("wait_for_go", True) and not parent.wait_for_go():
        return 0

    budget = request["budget"]
    args = (int(budget["min_samples"]), float(budget["min_time_s"]), float(budget["max_time_s"]),
            int(budget.get("max_samples", 10_000_000)))
    sched_start = _sched_totals_s()
    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    wall_start_unix = time.time()
    wall_start = time.perf_counter()
    gc.disable()
    try:
        if prepare is None:
            if reference is None:
                starts, durations = time_plain(runner, *args)
            else:
                starts, durations = time_interleaved(lambda *b: time_plain(runner, *b), reference, *args)
            pre = [0.0] * len(durations)
        else:
            run_on = adapter.run
            if reference is None:
                starts, durations, pre = time_with_preprocessing(run_on, prepare, raw_inputs, *args)
            else:
                starts, durations, pre = time_interleaved(
                    lambda *b: time_with_preprocessing(run_on, prepare, raw_inputs, *b), reference, *args)
    except Exception as exc:  # the runtime or a user's prepare() failed mid-run: one line, as in warm-up
        gc.enable()
        proto.send("error", kind="inference", message=_one_line(exc))
        return 5
    finally:
        gc.enable()
    wall_end = time.perf_counter()
    usage_end = resource.getrusage(resource.RUSAGE_SELF)
    sched_end = _sched_totals_s()
    # Tell the parent at once, so its samplers and counters stop before we spend time serialising samples.
    proto.send("timed", count=len(durations))
    cpu_s = (usage_end.ru_utime - usage_start.ru_utime) + (usage_end.ru_stime - usage_start.ru_stime)
    proto.send("done", start_s=starts, latency_s=durations, preprocess_s=pre,
               window_start_s=wall_start, window_end_s=wall_end,
               window_start_unix_s=wall_start_unix + (starts[0] - wall_start) if starts else wall_start_unix,
               cpu_percent=100.0 * cpu_s / max(wall_end - wall_start, 1e-9),
               cpu_wait_pct=_wait_pct(sched_start, sched_end),
               peak_rss_mb=_read_status_mb("VmHWM"),
               reference_s=reference.durations if reference else [], reference_error=reference_error)

    return _send_accuracy(proto, request, adapter, plan, sys_path)


def serve_blocks(proto: Protocol, parent: ParentPipe, timer: Callable[..., tuple[list[float], ...]],
                 request: dict[str, Any], adapter: FrameworkAdapter, plan: InputPlan, sys_path: list[str]) -> int:
    """Time one short turn at each ``block`` command (the other arm's worker sleeps meanwhile), until ``stop``.

    Each turn is its own small timed window: at least one sample, then samples until ``time_s`` has passed
    (or ``max_runs``); the parent pairs the turns of the two arms (paired.py).
    """
    cpu_s = 0.0
    wall_s = 0.0
    while True:
        command = parent.next_command()
        if command.get("cmd") != "block":
            break
        time_s = float(command.get("time_s", 0.25))
        max_runs = int(command.get("max_runs", 10_000_000))
        sched_start = _sched_totals_s()
        usage_start = resource.getrusage(resource.RUSAGE_SELF)
        wall_start = time.perf_counter()
        gc.disable()
        try:
            parts = timer(1, time_s, time_s, max_runs)
        except Exception as exc:  # the runtime or a user's prepare() failed mid-run
            gc.enable()
            proto.send("error", kind="inference", message=_one_line(exc))
            return 5
        finally:
            gc.enable()
        wall_s += time.perf_counter() - wall_start
        usage_end = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s += (usage_end.ru_utime - usage_start.ru_utime) + (usage_end.ru_stime - usage_start.ru_stime)
        proto.send("block", latency_s=parts[1], start_s=parts[0],
                   cpu_wait_pct=_wait_pct(sched_start, _sched_totals_s()))
    proto.send("done", peak_rss_mb=_read_status_mb("VmHWM"), cpu_percent=100.0 * cpu_s / max(wall_s, 1e-9),
               python=sys.version.split()[0], executable=sys.executable)
    return _send_accuracy(proto, request, adapter, plan, sys_path)


def _send_accuracy(proto: Protocol, request: dict[str, Any], adapter: FrameworkAdapter, plan: InputPlan,
                   sys_path: list[str]) -> int:
    """The accuracy pass after timing, when the request asks for one: 0, or 6 when it failed (said in one line)."""
    if request.get("accuracy"):
        try:
            accuracy = _accuracy_pass(request["accuracy"], adapter, plan, sys_path)
        except Exception as exc:
            proto.send("error", kind="accuracy", message=_one_line(exc))
            return 6
        proto.send("accuracy", **accuracy)
    return 0


def _make_adapter(request: dict[str, Any], sys_path: list[str]) -> FrameworkAdapter:
    """The runtime's adapter, imported from the ``module:QualName`` (or ``file.py:QualName``) the parent sent.

    So one added through the hook (even from a conftest.py, found through ``sys_path``) runs here like a built-in
    one. A built-in is made by its name, as before: no user directory goes in front of ``sys.path`` for it.
    """
    from pytest_edgeperf.frameworks import FRAMEWORKS, FrameworkAdapter, get_adapter

    ref = request.get("adapter")
    if not ref or request["framework"] in FRAMEWORKS:  # plugins cannot take a built-in's name
        return get_adapter(request["framework"])
    cls = load_callable(ref, sys_path)
    if not (isinstance(cls, type) and issubclass(cls, FrameworkAdapter)):
        raise TypeError(f"{ref} is not a FrameworkAdapter subclass")
    return cls()


def _load_reference(runtime: str | type[FrameworkAdapter], spec: dict[str, Any], threads: int) -> Reference:
    """The reference model in the same runtime (a built-in's name, or the measured adapter's class), on one thread,
    warmed up like the model.

    A runtime whose thread count is process-wide (OpenCV) runs the reference on the model's thread count: one
    thread there would make the measured model single-threaded too.
    """
    from pytest_edgeperf.frameworks import get_adapter

    ref = runtime() if isinstance(runtime, type) else get_adapter(runtime)
    ref.load(Path(spec["model_file"]), threads if ref.process_wide_threads else 1)
    from pytest_edgeperf.frameworks.signature import resolve_inputs

    plan = resolve_inputs(ref.inputs, "the reference model")
    run = ref.make_runner(generated_feed(plan, plan.specs, 0))
    for _ in range(int(spec.get("warmup_runs", 20))):
        run()
    return Reference(run, int(spec.get("block_runs", 5)), float(spec.get("every_s", 0.1)))


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (numpy's private ``_ArrayMemoryError`` reads as MemoryError)."""
    name = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__
    lines = str(exc).strip().splitlines()
    return f"{name}: {lines[0]}" if lines else name


def _wait_pct(start: tuple[float, float] | None, end: tuple[float, float] | None) -> float | None:
    if start is None or end is None:
        return None
    run, wait = end[0] - start[0], end[1] - start[1]
    return 100.0 * wait / (run + wait) if run + wait > 0 else None


def plan_inputs(adapter: FrameworkAdapter, inputs: dict[str, Any], request: dict[str, Any], model_name: str,
                sys_path: list[str]) -> tuple[InputPlan, Callable[[Any], Any] | None, list[Any], Any]:
    """Resolve the model's inputs (shapes, dtypes, values) and make the first feed: (plan, prepare, raw, feed).

    One function for the worker and ``--edgeperf-disable``, so a disabled run feeds what a measured run would.
    ``model_name`` is "" in the worker: the parent's message already names the runtime and the model.
    """
    from pytest_edgeperf.frameworks.signature import resolve_inputs

    prepare: Callable[[Any], Any] | None = None
    raw_inputs: list[Any] = []
    plan = resolve_inputs(adapter.inputs, model_name, shapes=request.get("input_shapes"),
                          dtypes=request.get("input_dtypes"), values=request.get("input_values"),
                          open_ok=inputs["kind"] != "random")
    if inputs["kind"] == "random":
        x: Any = generated_feed(plan, plan.specs, int(inputs.get("seed", 0)))
    else:
        prepare, raw_inputs, x = _real_inputs(inputs, adapter, plan, model_name, sys_path)
    adapter.set_input_shapes({spec.name: spec.concrete_shape() for spec in plan.specs})
    return plan, prepare, raw_inputs, x


def generated_feed(plan: InputPlan, specs: list[TensorSpec], seed: int) -> dict[str, np.ndarray]:
    """Arrays for ``specs`` (resolved): the value given in ``input_values``, else generated by dtype; notes the
    inputs that got a fixed default rather than random data (an int input fed zeros may not be what it means)."""
    from pytest_edgeperf.frameworks.signature import default_note, generate_input

    feed = {}
    for spec in specs:
        value = plan.values.get(spec.name)
        feed[spec.name] = generate_input(spec, value, seed)
        note = default_note(spec) if value is None else None
        if note and note not in plan.notes:
            plan.notes.append(note)
    return feed


def _real_inputs(inputs: dict[str, Any], adapter: FrameworkAdapter, plan: InputPlan, model: str,
                 sys_path: list[str]) -> tuple[Callable[[Any], Any], list[Any], Any]:
    """Inputs that are prepared inside the timed window: images + a preprocessing spec, or a user's callable.

    Returns ``(prepare, raw inputs, the first prepared feed)``: prepare runs once here, on the first raw input,
    and that feed is checked against the model (names, shapes, dtypes) and closes its dynamic dimensions. The
    inputs the feed does not give get their ``input_values`` or a generated array, the same every sample.
    """
    from pytest_edgeperf.frameworks.signature import SignatureError, check_feed, to_input_dtype

    first_spec = plan.specs[0]
    if inputs["kind"] == "images":
        from pytest_edgeperf.accuracy.datasets import load_image
        from pytest_edgeperf.accuracy.preprocess import parse_preprocess, preprocess_image

        spec = parse_preprocess(inputs.get("preprocess") or {})
        raw = [load_image(Path(p)) for p in inputs["paths"]]
        layout = adapter.input_layout
        where = "the preprocessed images"

        def prepare(img: Any) -> np.ndarray:
            x = preprocess_image(img, spec)
            if layout == "NCHW" and x.ndim == 4 and x.shape[-1] in (1, 3, 4):
                x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            return to_input_dtype(x, first_spec)  # quantised with the model's scale and zero point

    elif inputs["kind"] == "callable":
        make = load_callable(inputs["ref"], sys_path)
        shapes = [tuple(d if isinstance(d, int) else None for d in s.shape) for s in plan.specs]
        if len(plan.specs) == 1:
            produced = make(shapes[0], str(first_spec.dtype))
        else:
            produced = make({s.name: shape for s, shape in zip(plan.specs, shapes, strict=True)},
                            {s.name: str(s.dtype) for s in plan.specs})
        raw = list(produced) if isinstance(produced, (list, tuple)) else [produced]
        if not raw:
            raise SignatureError(f"{model}: the inputs callable {inputs['ref']} returned no inputs")
        where = f"the inputs callable {inputs['ref']}"
        if inputs.get("prepare"):
            prepare = load_callable(inputs["prepare"], sys_path)
            where = f"prepare {inputs['prepare']}"
        else:
            def prepare(a: Any) -> Any:
                return a
    else:
        raise ValueError(f"unknown inputs kind {inputs['kind']!r}")

    def by_name(produced: Any) -> dict[str, Any]:
        if isinstance(produced, np.ndarray):
            return {first_spec.name: produced}
        if isinstance(produced, dict):
            return produced
        raise SignatureError(f"{model}: {where} gave a {type(produced).__name__}; give a numpy array (the first "
                             f"input) or {{input name: array}}")

    first = prepare(raw[0])
    given = check_feed(by_name(first), plan, model, where)
    if inputs["kind"] == "callable" and not inputs.get("prepare"):
        for item in raw[1:]:  # no prepare step: every raw input is a feed, checked before timing
            check_feed(by_name(item), plan, model, where)
    fixed = generated_feed(plan, [s for s in plan.specs if s.name not in given], int(inputs.get("seed", 0)))
    if not fixed:
        return prepare, raw, first
    inner = prepare

    def prepare_with_fixed(item: Any) -> dict[str, Any]:
        return {**fixed, **by_name(inner(item))}

    return prepare_with_fixed, raw, {**fixed, **given}


def _accuracy_pass(spec: dict[str, Any], adapter: FrameworkAdapter, plan: InputPlan,
                   sys_path: list[str]) -> dict[str, Any]:
    """MLPerf-style: accuracy over the whole evaluation set, in its own pass after the timed run.

    The image goes to the first input; any other input gets what it got while timing.
    """
    from pytest_edgeperf.worker.evaluation import evaluate_from_spec

    return evaluate_from_spec(spec, adapter, sys_path, fixed=generated_feed(plan, plan.specs[1:], 0))


if __name__ == "__main__":
    die_with_parent()
    sys.exit(main())
