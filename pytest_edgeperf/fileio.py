"""Small file helpers shared by everything that stores files: atomic writes, content digests, lock files.

A reader (a pull request diff, a CI step, a second pytest process) must see the old file or the new one, never a
half-written one, whatever kills the writer; and files are identified by content (sha256), not by name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pytest_edgeperf.errors import EdgeperfError


@contextlib.contextmanager
def atomic_path(path: Path, *, mode: int = 0o644, tmp_prefix: str | None = None,
                suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path in ``path``'s directory to write to; when the block ends without an exception it is fsynced,
    given ``mode`` and renamed over ``path``, and the directory is fsynced.

    For writers that take a file name (a quantiser, ``shutil.move``); ``atomic_write_bytes`` and
    ``atomic_write_text`` use it too. ``mode``: mkstemp creates 0600 files; reports, caches, models and baselines
    are meant to be shared. On any exception (disk full, read-only, Ctrl-C) the temp file is removed and any old
    ``path`` is left untouched. ``suffix``: for tools that read the format from the name (``.tmp.onnx``).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=tmp_prefix or f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # a directory that cannot be opened (rare) still got the rename
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644, tmp_prefix: str | None = None) -> None:
    """Write ``data`` via a temp file in the same directory, renamed over ``path`` (see ``atomic_path``).

    Raises OSError (disk full, read-only) after removing the temp file, leaving any old ``path`` untouched.
    """
    with atomic_path(path, mode=mode, tmp_prefix=tmp_prefix) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644, tmp_prefix: str | None = None) -> None:
    """``atomic_write_bytes`` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode, tmp_prefix=tmp_prefix)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MB chunks (models can be 100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- lock files ------------------------------------------------------------------------------------------------


class LockError(EdgeperfError):
    """A lock file that cannot be used safely (a planted symlink, another user's file) or in time; one line."""


class LockTimeout(LockError):
    """The lock stayed held for the whole timeout; ``holder_pid`` is the pid its holder wrote into it, if any."""

    def __init__(self, message: str, holder_pid: int | None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid


def private_directory(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check it is a real directory of ours that no other user can write to.

    A lock kept in a shared directory such as /tmp can be planted by another user (a symlink to a file of ours, or
    a file of theirs we then wait on for ever); in a directory only we can write, it cannot.
    """
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LockError(f"{path}: cannot create the lock directory ({exc.strerror or exc})") from None
    if stat.S_ISLNK(st.st_mode):
        raise LockError(f"{path}: is a symbolic link, not a lock directory; remove it or set TMPDIR elsewhere")
    if not stat.S_ISDIR(st.st_mode):
        raise LockError(f"{path}: is not a directory; remove it or set TMPDIR elsewhere")
    if st.st_uid != os.getuid():
        raise LockError(f"{path}: belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); another user created "
                        f"it: remove it or set TMPDIR elsewhere")
    if st.st_mode & 0o022:
        raise LockError(f"{path}: other users can write to it (mode {stat.S_IMODE(st.st_mode):o}); chmod 700 it")
    return path


def _holder_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    return None


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, *, timeout_s: float | None = None,
                   on_wait: Callable[[str], None] | None = None, owner_only: bool = False,
                   mode: int = 0o644) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    The file is opened without following a symlink (``O_NOFOLLOW``: a link planted at ``path`` is refused, never
    written through) and must be a regular file (``owner_only``: one of ours). The holder writes its pid into it,
    so a waiter can say who it waits for: ``on_wait("waiting for <what> held by pid N")`` is called once when the
    lock is busy, and after ``timeout_s`` seconds (None: no limit) ``LockTimeout`` names the holder.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockError(f"{path}: is a symbolic link; refusing to follow it for {what} (remove it)") from None
        raise LockError(f"{path}: cannot open {what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockError(f"{path}: is not a regular file; refusing to use it for {what} (remove it)")
        if owner_only and st.st_uid != os.getuid():
            raise LockError(f"{path}: belongs to uid {st.st_uid}, not to you; refusing to use it for {what}")
        _acquire(fd, path, what, timeout_s, on_wait)
        with contextlib.suppress(OSError):  # who holds it, for a waiter's message (a read-only mount: no pid)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)  # also for a forked child that may still share the descriptor
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, what: str, timeout_s: float | None,
             on_wait: Callable[[str], None] | None) -> None:
    """Take the lock, waiting at most ``timeout_s``.

    flock has no timeout, and polling it would lose every time to a holder that releases and takes it again at
    once (a pytest-xdist worker going from one measurement to the next): a thread blocks in ``flock`` on a
    duplicate of the descriptor (the same open file, so the same lock), which the kernel wakes when the lock is
    released. Given up on, the thread releases the lock as soon as it gets it.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    holder = _holder_pid(fd)
    who = f"pid {holder}" if holder else "another process (pid unknown)"
    if on_wait is not None:
        on_wait(f"waiting for {what} held by {who} ({path})")
    dup = os.dup(fd)
    got = threading.Event()
    decided = threading.Lock()
    abandoned = [False]

    def block() -> None:
        try:
            fcntl.flock(dup, fcntl.LOCK_EX)
            with decided:
                if abandoned[0]:
                    fcntl.flock(dup, fcntl.LOCK_UN)
                else:
                    got.set()
        except OSError:
            pass
        finally:
            os.close(dup)

    threading.Thread(target=block, name=f"edgeperf-lock-wait-{path.name}", daemon=True).start()
    try:
        got.wait(timeout_s)
    finally:  # timed out or interrupted (Ctrl-C): the thread lets go of the lock when it gets it
        with decided:
            if not got.is_set():
                abandoned[0] = True
    if not got.is_set():
        holder = _holder_pid(fd) or holder
        who = f"pid {holder}" if holder else "another process (pid unknown)"
        raise LockTimeout(f"gave up waiting for {what} after {timeout_s:g} s: held by {who} ({path})", holder)
