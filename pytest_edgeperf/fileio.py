"""Small file helpers shared by everything that stores files: atomic text writes and content digests.

A reader (a pull request diff, a CI step, a second pytest process) must see the old file or the new one, never a
half-written one, whatever kills the writer; and files are identified by content (sha256), not by name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644, tmp_prefix: str | None = None) -> None:
    """Write via a temp file in the same directory, fsync, rename over ``path``, fsync the directory.

    ``mode``: mkstemp creates 0600 files; reports, caches and baselines are meant to be shared. Raises OSError
    (disk full, read-only) after removing the temp file, leaving any old ``path`` untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
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


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MB chunks (models can be 100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
