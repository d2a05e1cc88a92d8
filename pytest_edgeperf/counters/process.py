"""The perf process: started without a shell, a bounded wait until it is attached, stopped politely.

Shared by the counter session (``perf stat``) and the hot spot recorder (``perf record``); nothing here raises
because perf is missing or refuses: what went wrong becomes a note.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from pytest_edgeperf.device.runner import CommandRunner


def _make_runner(timeout_s: float) -> CommandRunner:
    return CommandRunner(timeout_s=timeout_s)


def _perf_event_fds(pid: int) -> int:
    """How many perf_event file descriptors a process holds: >0 once perf has opened its counters."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[perf_event]":
                    count += 1
    return count


def _has_data_line(path: Path) -> bool:
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return True
    return False


def _tail(path: Path | None, lines: int = 3) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        text = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return " | ".join(text[-lines:])
    return ""


def _interrupt(proc: subprocess.Popen[bytes], wait_s: float) -> str | None:
    """SIGINT (perf prints its counts / finishes perf.data), then escalate; returns a note if it had to."""
    if proc.poll() is not None:
        return None
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=wait_s)
        return None
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    try:
        proc.wait(timeout=1.0)
        return f"perf ignored SIGINT for {wait_s:.0f} s and was terminated"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return f"perf ignored SIGINT and SIGTERM and was killed after {wait_s + 1:.0f} s"


class PerfProcess:
    """Shared plumbing: start perf without a shell, wait (bounded) until it is attached, stop it politely."""

    def __init__(self, perf: str, attach_timeout_s: float) -> None:
        self.perf = perf
        self.attach_timeout_s = attach_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_path: Path | None = None
        self._tmpdir: Path | None = None
        self.notes: list[str] = []
        self.attached_at_s: float | None = None
        #: the process ``start()`` attaches to when not given one (the instrument protocol)
        self.attach_pid: int | None = None

    def _resolve(self) -> str | None:
        return shutil.which(self.perf)

    def _begin(self, pid: int | None, what: str) -> int:
        """The pid to attach to (``pid``, else ``attach_pid``), the last run's process, files and notes gone; a
        ValueError naming ``what`` when there is none."""
        pid = self.attach_pid if pid is None else pid
        if pid is None:
            raise ValueError(f"the {what} has no process to attach to (no pid)")
        self._cleanup()
        self.notes = []
        return pid

    def _perf_and_tmpdir(self, lost: str, prefix: str) -> str | None:
        """perf's path, with a fresh temporary directory for its files; None and the note "perf not found: ``lost``"
        when perf is not installed."""
        path = self._resolve()
        if path is None:
            self.notes.append(f"perf not found: {lost}")
            return None
        self._tmpdir = Path(tempfile.mkdtemp(prefix=prefix))
        return path

    def _launch(self, argv: list[str], watch_file: Path | None) -> bool:
        assert self._tmpdir is not None
        self._stderr_path = self._tmpdir / "perf.stderr"
        try:
            with open(self._stderr_path, "wb") as err:
                launched_s = time.perf_counter()
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=err)
        except OSError as exc:
            self.notes.append(f"could not start perf: {exc}")
            self._proc = None
            return False
        deadline = launched_s + self.attach_timeout_s
        while time.perf_counter() < deadline:
            if self._proc.poll() is not None:
                why = _tail(self._stderr_path) or "no message"
                self.notes.append(f"perf exited at once (code {self._proc.returncode}): {why}")
                return False
            if _perf_event_fds(self._proc.pid) > 0:
                self.attached_at_s = time.perf_counter()
                return True
            if watch_file is not None and _has_data_line(watch_file):
                self.attached_at_s = launched_s
                return True
            time.sleep(0.005)
        self.attached_at_s = launched_s
        self.notes.append(f"could not confirm perf attached within {self.attach_timeout_s:.1f} s; went on")
        return True

    def _finish(self, wait_s: float) -> int | None:
        if self._proc is None:
            return None
        early = self._proc.poll() is not None
        note = _interrupt(self._proc, wait_s)
        if note:
            self.notes.append(note)
        code = self._proc.returncode
        if early and code not in (0, None):
            self.notes.append(f"perf stopped before the window ended (code {code}): "
                              f"{_tail(self._stderr_path) or 'no message'}")
        self._proc = None
        return code

    def _cleanup(self) -> None:
        if self._proc is not None:
            _interrupt(self._proc, 1.0)
            self._proc = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
