"""``BaselineStore``: the baselines of one device, looked up once per file and updated atomically under a lock.

Writes are atomic and merge-safe: ``update`` takes an exclusive ``flock`` on ``<root>/<device>/.lock``,
re-reads each file fresh, merges (other entries untouched), writes a temp file in the same directory,
fsyncs it, ``os.replace``\\ s it over the old file and fsyncs the directory. A killed process therefore
leaves the old file or the new one, and two processes updating the same directory lose no entry. A file
that does not parse is never overwritten by a merge: the user must fix or delete it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pytest_edgeperf import noise
from pytest_edgeperf.fileio import atomic_write_text

from .changes import Change
from .entry import BaselineEntry, _without_history
from .files import BASELINE_SCHEMA_VERSION, _dumps, _parse_file
from .naming import device_dirname, module_filename, split_nodeid
from .validate import BaselineError, _one_line

LOCK_NAME = ".lock"
_TMP_PREFIX = ".edgeperf-"
_TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Exclusive flock on ``<directory>/.lock``: serialises updates from several processes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        reason = _os_reason(exc)
        raise BaselineError(f"{directory}: cannot create or lock baselines here ({reason})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or str(exc)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a crash at any point leaves the old file or the new one."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    try:  # temp names carry _TMP_PREFIX so a later update can sweep what a killed writer left
        atomic_write_text(path, text, mode=mode, tmp_prefix=_TMP_PREFIX + path.name + ".")
    except OSError as exc:
        reason = _os_reason(exc)
        raise BaselineError(f"{path}: cannot write baseline ({reason}); the old file is unchanged") from None


def _remove_stale_temps(directory: Path) -> None:
    """Temp files left by a killed writer. Only called under the lock, so no live writer owns one."""
    for stale in directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            stale.unlink()


class BaselineStore:
    """The baselines of one device under one root directory (``--edgeperf-baselines``)."""

    def __init__(self, root: Path, device: str, *, updating: bool = False) -> None:
        self.root = Path(root)
        self.device = device
        self.updating = updating  # --edgeperf-update-baselines: an empty file reads as one without entries
        self.directory = self.root / device_dirname(device)
        self._cache: dict[Path, dict[str, BaselineEntry]] = {}
        self._priors: dict[bool, noise.NoisePrior | None] = {}

    def path_for(self, nodeid: str) -> Path:
        return self.directory / module_filename(split_nodeid(nodeid)[0])

    def _read(self, path: Path, module: str, allow_empty: bool) -> dict[str, BaselineEntry]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BaselineError(f"{path}: cannot read baseline ({_os_reason(exc)})") from None
        return _parse_file(path, raw, self.device, module, allow_empty=allow_empty)

    def lookup(self, nodeid: str) -> BaselineEntry | None:
        """The recorded entry for a test id, None if none; a bad file raises BaselineError (read once)."""
        module, test = split_nodeid(nodeid)
        path = self.path_for(nodeid)
        if path not in self._cache:
            self._cache[path] = self._read(path, module, self.updating)
        return self._cache[path].get(test)

    def update(self, entries: Mapping[str, BaselineEntry]) -> list[Change]:
        """Merge entries (keyed by node id) into their module files; returns what changed, per test.

        All affected files are re-read and validated under the lock before any is written, so a corrupt
        file aborts the whole update and nothing is half-applied. What is written is checked with the reader's
        own rules first (each new entry, then each whole file): an entry the reader would refuse (a zero or
        negative time, a value out of range) aborts the update naming it, and no file is written.
        """
        by_file: dict[Path, tuple[str, dict[str, BaselineEntry]]] = {}
        for nodeid, entry in entries.items():
            module, test = split_nodeid(nodeid)
            path = self.path_for(nodeid)
            try:
                BaselineEntry.from_json(entry.to_json())
            except BaselineError as exc:
                raise BaselineError(f"{path}: entry {test!r} not recorded: {exc}") from None
            by_file.setdefault(path, (module, {}))[1][test] = entry
        if not by_file:
            return []
        changes: list[Change] = []
        with _locked(self.directory):
            _remove_stale_temps(self.directory)
            current = {path: self._read(path, module, True) for path, (module, _) in sorted(by_file.items())}
            texts: dict[Path, tuple[str, dict[str, BaselineEntry]]] = {}
            for path, (module, new) in sorted(by_file.items()):
                merged = dict(current[path])
                for test, entry in sorted(new.items()):
                    old = merged.get(test)
                    same = old is not None and _without_history(old) == _without_history(entry)
                    kind = "added" if old is None else ("unchanged" if same else "updated")
                    changes.append(Change(path, test, kind, dict(old.metrics) if old else {},
                                          dict(entry.metrics)))
                    # the same recording stored again does not count twice toward the noise
                    merged[test] = old if same and old is not None else entry.continued_from(old)
                doc = {
                    "schema_version": BASELINE_SCHEMA_VERSION,
                    "device": self.device,
                    "module": module,
                    "entries": {k: merged[k].to_json() for k in sorted(merged)},
                }
                try:
                    text = _dumps(doc) + "\n"
                except ValueError as exc:  # a NaN or infinity that slipped past the entry check
                    raise BaselineError(f"{path}: not written: {_one_line(exc)}") from None
                _parse_file(path, text.encode("utf-8"), self.device, module)  # the reader must accept it
                texts[path] = (text, merged)
            for path, (text, merged) in texts.items():
                _atomic_write(path, text)
                self._cache[path] = merged
        self._priors.clear()
        return changes

    def noise_prior(self, by_reference: bool) -> noise.NoisePrior | None:
        """The pooled run-to-run variance of every entry of this device (all module files), read once.

        A file that does not parse is left out here; the tests it holds report it when they look it up.
        """
        if by_reference not in self._priors:
            per_test = []
            for path in sorted(self.directory.glob("*.json")):
                try:
                    entries = self._cache.get(path)
                    if entries is None:
                        entries = _parse_file(path, path.read_bytes(), self.device, None)
                except (BaselineError, OSError):
                    continue
                per_test += [noise.own_variance(e.recordings(), by_reference) for e in entries.values()]
            self._priors[by_reference] = noise.NoisePrior.pool(per_test)
        return self._priors[by_reference]
