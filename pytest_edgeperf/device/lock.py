"""Owns the device lock: one measurement at a time per device, across pytest processes and CI jobs on one board."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_edgeperf.fileio import LockTimeout, exclusive_lock, private_directory

#: where a line of progress goes (the live progress line, or a line that shows even in a CI log)
Progress = Callable[[str], None]


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
