"""Runs device commands (``vcgencmd``...) without a shell and with a hard timeout: a sensor never hangs us.

A hanging ``vcgencmd`` (seen when the VideoCore mailbox is busy) must cost at most ``timeout_s``: the child is
started in its own session and the whole process group is killed on timeout, so grandchildren that keep the
output pipe open cannot block us either.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# CommandOutcome.error values.
ERROR_MISSING = "missing"  # the executable does not exist or cannot be executed
ERROR_TIMEOUT = "timeout"  # killed after timeout_s
ERROR_FAILED = "failed"  # ran, but exited with a non-zero status


@dataclass(frozen=True)
class CommandOutcome:
    """What one command run gave: ``stdout`` on success, else ``error`` (one of ERROR_*) and a ``detail``."""

    stdout: str | None
    error: str | None = None
    detail: str = ""


class CommandRunner:
    """Runs an argv list and returns its stdout, or None when the command is missing, fails or times out."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"command timeout must be > 0 s, got {timeout_s}")
        self.timeout_s = float(timeout_s)

    def run(self, argv: Sequence[str]) -> str | None:
        """Stdout of ``argv`` (decoded), or None; never raises for a missing, failing or hanging command."""
        return self.run_detailed(argv).stdout

    def run_detailed(self, argv: Sequence[str]) -> CommandOutcome:
        """Like ``run`` but says *why* there is no output, so readers can stop asking a missing command."""
        args = [str(a) for a in argv]
        if not args:
            return CommandOutcome(None, ERROR_MISSING, "empty command")
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group: a timeout kills the child and its children
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as exc:
            return CommandOutcome(None, ERROR_MISSING, f"{args[0]}: {exc.strerror or exc}")
        except OSError as exc:  # e.g. ENOEXEC: not an executable format
            return CommandOutcome(None, ERROR_MISSING, f"{args[0]}: {exc.strerror or exc}")
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            detail = f"{args[0]} gave no answer within {self.timeout_s:g} s"
            return CommandOutcome(None, ERROR_TIMEOUT, detail)
        if proc.returncode != 0:
            msg = (err or out or b"").decode(errors="replace").strip().splitlines()
            first = msg[0] if msg else ""
            detail = f"{' '.join(args)} exited with {proc.returncode} {first}".strip()
            return CommandOutcome(None, ERROR_FAILED, detail)
        return CommandOutcome(out.decode(errors="replace"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group and reap it; bounded even if a grandchild holds the pipes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    try:
        proc.communicate(timeout=1.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a grandchild escaped the group and holds the pipe
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait(timeout=1.0)
