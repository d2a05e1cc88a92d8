"""One measurement, end to end: guard -> worker processes -> samplers around the timed windows -> Result.

The parent (pytest) never imports a runtime: it starts ``python -m pytest_edgeperf.worker``, waits for it to load and
warm up, starts the sensor / power / counter samplers, tells the worker to go, and stops the samplers when the
worker reports its raw samples. A measurement is several such workers one after another (``processes``, sharing
the budget), each also timing the machine-speed reference model between its samples, so the verdict can see how far
separate runs of the same model disagree and how fast the machine was (see verdict.location_change).
Samples that overlap a throttled or under-clocked period are marked invalid; if
too many are, the guard cools the device and the measurement is repeated a bounded number of times, after which
the result is INCONCLUSIVE (never a regression).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import BUSY_CPU_WAIT_PCT, Budget
from .errors import EdgeperfError
from .fileio import LockTimeout, exclusive_lock, file_sha256, private_directory
from .result import STATUS_INCONCLUSIVE, STATUS_OK, Result, Samples, TimelinePoint

if TYPE_CHECKING:
    from .device.readers import DeviceReaders
    from .guard import ThermalGuard
    from .power.base import PowerMeter

Progress = Callable[[str], None]



class WorkerError(EdgeperfError):
    """The worker crashed, hung, or the runtime refused the model; the message is one line for the test report."""


class AcceleratorUnavailableError(WorkerError):
    """The requested provider, delegate or backend is not available here (the test skips; fails when strict)."""


class DeviceNotReady(EdgeperfError):
    """The thermal guard gave up; carries the guard's reason (with the last readings)."""


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
    reference_file: Path | None = None  # the machine-speed reference model for this runtime, or None
    #: what resolves the model's inputs (frameworks/signature.py): a shape or {name: shape}, {name: dtype},
    #: {name: value}; JSON-ready, checked by config.py
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


# ---- the worker process ----------------------------------------------------------------------------------------


class WorkerProcess:
    """A running ``pytest_edgeperf.worker`` with a reader thread, so every wait has a deadline (a hang is a kill).

    The worker runs in its own process group (a kill takes whatever it started) and dies with pytest: it asks the
    kernel for SIGKILL when its parent goes (Linux), and kills itself when its stdin pipe from us closes (anywhere).
    """

    def __init__(self, request: dict[str, Any], describe: str, python: str | None = None) -> None:
        """``python``: the interpreter to run the worker under (another venv's, --edgeperf-against-python)."""
        self.describe = describe
        self.phase = "starting"
        self.peak_rss_mb: float | None = None  # the highest VmHWM seen while it ran (or that it reported)
        self._stderr = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - closed in close()
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        package_parent = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        env[PARENT_PID_ENV] = str(os.getpid())  # the worker checks it still has this parent (worker.die_with_parent)
        self._oom_kills_at_start = oom_kill_count()
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", "pytest_edgeperf.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            text=True, bufsize=1, start_new_session=True,
        )
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._events.put(json.loads(line))
            except ValueError:
                continue
        self._events.put(None)

    def expect(self, event: str, timeout_s: float, phase: str,
               tick: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Wait for ``event``; a crash, an error event or the deadline becomes a one-line WorkerError.

        ``tick(elapsed_s)`` is called about once a second while waiting (the live progress line).
        """
        self.phase = phase
        start = time.monotonic()
        deadline = start + timeout_s
        next_tick = start + 1.0
        self._sample_memory()
        try:
            while True:
                try:
                    message = self._events.get(timeout=max(0.0, min(0.25, deadline - time.monotonic())))
                    break
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        raise
                    self._sample_memory()
                    if tick is not None and time.monotonic() >= next_tick:
                        next_tick += 1.0
                        tick(time.monotonic() - start)
        except queue.Empty:
            raise WorkerError(self._hang_message(timeout_s)) from None
        if message is None:
            raise WorkerError(self._crash_message())
        if message.get("event") == "error":
            if isinstance(message.get("peak_rss_mb"), (int, float)):
                self.peak_rss_mb = max(self.peak_rss_mb or 0.0, float(message["peak_rss_mb"]))
            self.wait_exit()
            kind = message.get("kind")
            what = {"adapter": "the runtime's adapter could not be built",
                    "model_rejected": "the runtime refused the model", "inputs": "preparing the inputs failed",
                    "inference": "inference failed", "accuracy": "the accuracy pass failed",
                    "out_of_memory": f"out of memory {phase}"}.get(kind, kind)
            if kind == "signature":  # the message names the input and what to give: nothing to add
                raise WorkerError(f"{self.describe}: {message.get('message')}")
            if kind == "accelerator_unavailable":
                raise AcceleratorUnavailableError(str(message.get("message")))
            text = f"{self.describe}: {what}: {message.get('message')}"
            if kind == "out_of_memory":
                text += self._peak_text(", ")
            elif str(message.get("message", "")).startswith("MemoryError"):
                text += f" (out of memory{self._peak_text(', ')})"
            raise WorkerError(text)
        if message.get("event") != event:
            self.kill()
            raise WorkerError(f"{self.describe}: protocol error, expected {event!r}, got {message.get('event')!r}")
        return message

    def go(self) -> None:
        self.send({"cmd": "go"})

    def send(self, command: dict[str, Any]) -> None:
        """One command line to the worker; a worker that already died shows as such at the next ``expect``."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()

    def wait_exit(self, timeout_s: float = 10.0) -> int | None:
        """Close the worker's stdin (it exits on that, wherever it is) and reap it; kill it if it lingers."""
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        code = self._reap(timeout_s)
        if code is None:
            self.kill()
            code = self.proc.returncode
        return code

    def kill(self) -> None:
        """SIGKILL the worker's process group (only while the worker is unreaped: its pid cannot be reused)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._reap(5.0)

    def _reap(self, timeout_s: float) -> int | None:
        """The worker's exit code once it has exited (waiting at most ``timeout_s``), else None."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def _sample_memory(self) -> None:
        """Keep the worker's peak RSS (VmHWM) while it lives: after a SIGKILL nothing else can tell it.

        (``wait4``'s ru_maxrss cannot: on Linux it includes the RSS of pytest itself, which the child was forked
        from.)
        """
        if self.proc.returncode is None:
            hwm = _status_kb(self.proc.pid).get("VmHWM")
            if hwm:
                self.peak_rss_mb = max(self.peak_rss_mb or 0.0, hwm / 1024.0)

    def stderr_tail(self, lines: int = 3) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip().splitlines()
        keep = [ln.strip() for ln in text if ln.strip()][-lines:]
        return " | ".join(keep)

    def _peak_text(self, sep: str, seen: str = "") -> str:
        return f"{sep}peak RSS {seen}{self.peak_rss_mb:.0f} MB" if self.peak_rss_mb else ""

    def _hang_message(self, timeout_s: float) -> str:
        """No answer in time: killed; said as "possibly out of memory" when the worker was at a memory limit."""
        self._sample_memory()
        pressure = memory_pressure(self.proc.pid)
        self.kill()
        if pressure is None:
            return f"{self.describe}: worker hung {self.phase} (no answer within {timeout_s:.0f} s); killed"
        return (f"{self.describe}: worker stalled {self.phase}, possibly out of memory ({pressure}"
                f"{self._peak_text(', ')}): no answer within {timeout_s:.0f} s; killed")

    def _crash_message(self) -> str:
        # the protocol stream closed: the worker is exiting, let it finish (closing stdin first would race its exit)
        code = self._reap(5.0)
        if code is None:
            code = self.wait_exit(timeout_s=0.0)
        tail = self.stderr_tail()
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            if sig == "SIGKILL":
                oom = (self._oom_kills_at_start is not None
                       and (oom_kill_count() or 0) > self._oom_kills_at_start)
                how = ("killed by the kernel's out-of-memory killer (SIGKILL)" if oom
                       else "killed (SIGKILL)")
                how += f" {self.phase}"
                if not oom:
                    how += ", possibly out of memory"
                how += self._peak_text(", ", "at least ")  # sampled while it ran: the end may have been higher
            else:
                how = f"crashed with {sig} {self.phase}"
        elif "MemoryError" in tail:
            how = f"ran out of memory {self.phase} (MemoryError{self._peak_text(', ', 'at least ')})"
        else:
            how = f"exited with status {code} {self.phase}"
        return f"{self.describe}: worker {how}" + (f"; stderr: {tail}" if tail else "")

    def close(self) -> None:
        self.wait_exit()
        self._stderr.close()


#: the environment variable that tells a worker which pid its parent (pytest) has
PARENT_PID_ENV = "EDGEPERF_PARENT_PID"


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (``/proc/vmstat``), or None."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return None


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if key.startswith("Vm") and len(parts) == 2 and parts[0].isdigit():
                out[key] = int(parts[0])
    return out


def _cgroup_memory_mb(pid: int) -> tuple[float, float] | None:
    """(used, limit) of the process's memory cgroup in MB (v2 memory.current/max, v1 usage/limit), or None."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base, names = Path("/sys/fs/cgroup") / rel.lstrip("/"), ("memory.current", "memory.max")
        elif "memory" in controllers.split(","):
            base, names = (Path("/sys/fs/cgroup/memory") / rel.lstrip("/"),
                           ("memory.usage_in_bytes", "memory.limit_in_bytes"))
        else:
            continue
        try:
            used, limit = (int((base / n).read_text().strip()) for n in names)
        except (OSError, ValueError):  # "max": no limit
            continue
        if limit < 1 << 60:
            return used / 2**20, limit / 2**20
    return None


def memory_pressure(pid: int) -> str | None:
    """Why a live worker may be stuck on memory rather than hung, as a phrase for the message, or None.

    Read before the worker is killed: it is near its address-space limit (RLIMIT_AS), its cgroup's limit, the
    machine has almost no memory left, or part of it was swapped out (a worker that just started does not
    swap unless memory is short). Linux only (``/proc``); elsewhere a stuck worker is reported as hung.
    """
    vm = _status_kb(pid)
    if not vm:
        return None
    rss_mb, size_mb, swap_mb = vm.get("VmRSS", 0) / 1024, vm.get("VmSize", 0) / 1024, vm.get("VmSwap", 0) / 1024
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max address space"):
                soft = line.split()[3]
                if soft.isdigit():
                    limit_mb = int(soft) / 2**20
                    if limit_mb - size_mb < max(64.0, 0.1 * limit_mb):
                        return (f"{max(limit_mb - size_mb, 0):.0f} MB left under its address-space limit of "
                                f"{limit_mb:.0f} MB")
    cgroup = _cgroup_memory_mb(pid)
    if cgroup is not None and cgroup[0] >= 0.9 * cgroup[1]:
        return f"its memory cgroup at {cgroup[0]:.0f} of {cgroup[1]:.0f} MB"
    meminfo: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0])
    total, available = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    if total and available is not None and available < 0.05 * total:
        return f"the machine at {available / 1024:.0f} MB available of {total / 1024:.0f} MB"
    if swap_mb >= max(16.0, 0.1 * rss_mb):
        return f"{swap_mb:.0f} MB of its {rss_mb + swap_mb:.0f} MB swapped out"
    return None


# ---- helpers ---------------------------------------------------------------------------------------------------


def device_lock_path(device: str) -> Path:
    """``$TMPDIR/pytest-edgeperf-<uid>/<device>.lock``: per user, in a directory no other user can write to.

    (Two users measuring on one board are therefore not serialised; run a board's CI jobs as one user.)
    """
    return Path(tempfile.gettempdir()) / f"pytest-edgeperf-{os.getuid()}" / f"{device}.lock"


@contextlib.contextmanager
def device_lock(path: Path | None, progress: Progress | None, timeout_s: float | None = None,
                announce: Progress | None = None) -> Iterator[None]:
    """One measurement at a time per device, across processes (pytest-xdist workers, two CI jobs on one board).

    A busy lock is announced (``announce``, a line even in a CI log; else the progress line) with the holder's pid,
    and after ``timeout_s`` the measurement fails naming the holder (fileio.LockTimeout); a lock directory or file
    another user could have planted is refused (fileio.LockError).
    """
    if path is None:
        yield
        return
    private_directory(path.parent)
    try:
        with exclusive_lock(path, "the device lock", timeout_s=timeout_s, on_wait=announce or progress,
                            owner_only=True, mode=0o600):
            yield
    except LockTimeout as exc:
        raise LockTimeout(f"{exc}; another pytest is measuring on this device (--edgeperf-lock-timeout to wait "
                          f"longer)", exc.holder_pid) from None


class _Running:
    """An instrument that was started; ``stop`` once with real arguments, or ``abandon`` after a failure."""

    def __init__(self, instrument: Any, start_args: tuple[Any, ...], abandon_args: tuple[Any, ...]) -> None:
        self.instrument, self.abandon_args, self.running = instrument, abandon_args, False
        instrument.start(*start_args)
        self.running = True

    def stop(self, *args: Any) -> Any:
        self.running = False
        return self.instrument.stop(*args)

    def abandon(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):
                self.stop(*self.abandon_args)


def _start_optional(factory: Callable[[], Any], notes: list[str], what: str, start_args: tuple[Any, ...] = (),
                    abandon_args: tuple[Any, ...] = ()) -> _Running | None:
    try:
        return _Running(factory(), start_args, abandon_args)
    except Exception as exc:  # an instrument failing must not cost the measurement
        notes.append(f"{what} could not start: {exc}")
        return None


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
    power = None
    if inst.power_meter is not None:
        from .power import PowerSampler

        # at least 5 readings inside the shortest window (a quick run is 0.2 s), at most 100 Hz
        power_hz = min(max(inst.power_hz, 5.0 / max(budget.min_time_s, 0.05)), 100.0)
        power = _start_optional(lambda: PowerSampler(inst.power_meter, rate_hz=power_hz),
                                result.notes, "the power sampler")
    runs: list[_ProcessRun] = []
    try:
        for index in range(processes):
            runs.append(_run_one_process(req, inst, budget, index, processes, describe, progress, result, power))
    finally:
        trace = power.stop() if power is not None else None
        if power is not None:
            power.abandon()

    _combine_processes(result, runs)
    if readers is not None:
        result.device_end = readers.snapshot()
        _note_sticky_throttle(result, readers)
    result.invalid_reasons = {}
    if result.timeline:
        from .sampler import achieved_rate_hz, effective_period_s, invalidate_samples

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
                     power: _Running | None) -> _ProcessRun:
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
    sampler = counters = hotspots = None
    readers = inst.readers
    try:
        if progress:
            progress(f"{req.test_id}: loading {req.model_file.name} in {req.framework}{which}")
        loaded = worker.expect("loaded", inst.worker_timeout_s, "while loading the model")
        if progress:
            progress(f"{req.test_id}: warming up{which}")
        ready = worker.expect("ready", inst.worker_timeout_s, "during warm-up")
        if readers is not None and inst.sample_hz > 0:
            from .sampler import TimelineSampler

            sampler = _start_optional(lambda: TimelineSampler(readers, rate_hz=inst.sample_hz, pid=worker.pid,
                                                              command_budget=inst.sensor_budget),
                                      result.notes, "the sensor sampler")
        if req.counters and first:
            from .counters import CounterSession

            session = CounterSession()
            ok, why = session.available()
            if ok:
                counters = _start_optional(lambda: session, result.notes, "perf stat", (worker.pid,), (0,))
            else:
                result.counters = {"unavailable": why}
                result.notes.append(f"hardware counters unavailable: {why}")
        if req.hotspots and first:
            from .counters import HotspotRecorder

            hotspots_dir = req.artifacts_dir or Path(tempfile.mkdtemp(prefix="edgeperf-hotspots-"))
            hotspots = _start_optional(HotspotRecorder, result.notes, "perf record", (worker.pid,), (hotspots_dir,))
        if progress:
            progress(f"{req.test_id}: timing{which} (>= {budget.min_samples} samples, >= {budget.min_time_s:g} s)")
        worker.go()
        min_s = budget.min_time_s
        tick = (lambda elapsed: progress(f"{req.test_id}: timing{which} {elapsed:.0f} s of >= {min_s:g} s "
                                         f"(>= {budget.min_samples} samples)")) if progress else None
        timed = worker.expect("timed", budget.max_time_s + inst.worker_timeout_s, "while timing", tick)
        timeline = sampler.stop() if sampler is not None else []
        if counters is not None:
            power_points = power.instrument.readings_so_far() if power is not None else None
            result.counters = counters.stop(int(timed["count"]), power_points)
            result.notes.extend(f"hardware counters: {n}" for n in result.counters.get("notes", []))
            if processes > 1:
                result.notes.append(f"hardware counters: counted in the first of {processes} worker processes")
        if hotspots is not None:
            result.counters["hotspots"] = hotspots.stop(hotspots_dir)
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
        for instrument in (sampler, counters, hotspots):
            if instrument is not None:
                instrument.abandon()
        worker.close()
    return _ProcessRun(done=done, timeline=timeline, loaded=loaded, ready=ready)


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


def _note_sticky_throttle(result: Result, readers: Any) -> None:
    start, end = result.device_start.get("throttled_raw"), result.device_end.get("throttled_raw")
    if end is None:
        return
    from .device.readers import ThrottleState

    before = None if start is None else ThrottleState(int(start))
    for message in ThrottleState(int(end)).run_notes(before):
        _add_note(result, message)


def _attach_power(result: Result, trace: Any, idle_w: float | None,
                  windows: list[tuple[float, float, int]]) -> None:
    from .power import combine_power, summarize_power

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
    # power readings join the timeline (nearest reading) so one chart can show them together; a point farther
    # than one sampling period from any reading (after the meter vanished) stays empty rather than invented
    points = sorted(getattr(trace, "samples", []))
    if points and result.timeline:
        import numpy as np

        times = np.array([p[0] for p in points])
        rate_hz = getattr(trace, "rate_hz", None)
        gaps = np.diff(times)
        period_s = float(np.median(gaps)) if gaps.size else (1.0 / rate_hz if rate_hz else 1.0)
        if rate_hz:
            period_s = max(period_s, 1.0 / rate_hz)
        for tp in result.timeline:
            i = int(np.clip(np.searchsorted(times, tp.t_s), 1, len(points) - 1)) if len(points) > 1 else 0
            if i > 0 and abs(times[i - 1] - tp.t_s) <= abs(times[i] - tp.t_s):
                i -= 1
            if abs(times[i] - tp.t_s) <= period_s:
                tp.power_w = float(points[i][2])
    elif points:
        result.timeline = [TimelinePoint(t_s=p[0], power_w=p[2]) for p in points]
