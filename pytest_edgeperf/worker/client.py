"""The parent side of the worker protocol: start ``python -m pytest_edgeperf.worker``, talk to it, watch it die.

Its other side is worker/child.py (the events, in order: ``loaded`` -> ``ready`` -> ``done`` [-> ``accuracy``], or
``error``). Every wait has a deadline; a hang is a kill, and a crash or a kill is told in one line, with what the
kernel says about memory when that is the likely cause (device/memory.py).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_edgeperf.device.memory import memory_pressure, oom_kill_count, status_kb
from pytest_edgeperf.errors import EdgeperfError


class WorkerError(EdgeperfError):
    """The worker crashed, hung, or the runtime refused the model; the message is one line for the test report."""


class AcceleratorUnavailableError(WorkerError):
    """The requested provider, delegate or backend is not available here (the test skips; fails when strict)."""


#: the environment variable that tells a worker which pid its parent (pytest) has
PARENT_PID_ENV = "EDGEPERF_PARENT_PID"


class WorkerProcess:
    """A running worker (``python -m pytest_edgeperf.worker``) with a reader thread: every wait has a deadline.

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
        package_parent = str(Path(__file__).resolve().parents[2])  # the directory holding pytest_edgeperf/
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
        env[PARENT_PID_ENV] = str(os.getpid())  # the worker checks it still has this parent (child.die_with_parent)
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
            hwm = status_kb(self.proc.pid).get("VmHWM")
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
