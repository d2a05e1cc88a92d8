"""``BaselineStore``: the baselines of one device, looked up once per file and updated atomically under a lock.

Writes are atomic and merge-safe: ``update`` takes an exclusive ``flock`` on ``<root>/<device>/.lock``,
re-reads each file fresh, merges (other entries untouched), writes a temp file in the same directory,
fsyncs it, ``os.replace``\\ s it over the old file and fsyncs the directory. A killed process therefore
leaves the old file or the new one, and two processes updating the same directory lose no entry. A file
that does not parse is never overwritten by a merge: the user must fix or delete it.

The raw samples go to content-named sidecars (``sidecar.py``), written before the module file that references them,
so a killed update leaves at worst a sidecar nothing references yet; an update removes the sidecars no module file
of the device references any more (not when one of those files cannot be read: it might reference them).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pytest_edgeperf.fileio import atomic_write_text
from pytest_edgeperf.verdict import noise

from .changes import Change
from .entry import BaselineEntry, _without_history
from .files import _dumps, _parse_file, module_document
from .naming import device_dirname, module_filename, split_nodeid
from .sidecar import GITATTRIBUTES, SAMPLES_DIR, parse_sidecar, read_sidecar, referenced
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

    @property
    def samples_directory(self) -> Path:
        return self.directory / SAMPLES_DIR

    def _load_samples(self, ref: str) -> dict[str, list[float]]:
        return read_sidecar(self.directory, ref)

    def _read(self, path: Path, module: str, allow_empty: bool,
              unloadable: dict[str, BaselineError] | None = None) -> dict[str, BaselineEntry]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BaselineError(f"{path}: cannot read baseline ({_os_reason(exc)})") from None
        return _parse_file(path, raw, self.device, module, allow_empty=allow_empty, load=self._load_samples,
                           unloadable=unloadable)

    def lookup(self, nodeid: str) -> BaselineEntry | None:
        """The recorded entry for a test id, None if none; a bad file raises BaselineError (read once)."""
        module, test = split_nodeid(nodeid)
        path = self.path_for(nodeid)
        if path not in self._cache:
            self._cache[path] = self._read(path, module, self.updating)
        return self._cache[path].get(test)

    def update(self, entries: Mapping[str, BaselineEntry], *, continue_history: bool = True) -> list[Change]:
        """Merge entries (keyed by node id) into their module files; returns what changed, per test.

        All affected files are re-read and validated under the lock before any is written, so a corrupt
        file aborts the whole update and nothing is half-applied. What is written is checked with the reader's
        own rules first (each new entry, then each whole file): an entry the reader would refuse (a zero or
        negative time, a value out of range) aborts the update naming it, and no file is written.
        ``continue_history`` False: the new entries bring their own history and do not continue the stored ones
        (baselines written from the results history, whose old entry may be from before a change point).
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
            _remove_stale_temps(self.samples_directory)
            unloadable: dict[Path, dict[str, BaselineError]] = {}
            current = {path: self._read(path, module, True, unloadable.setdefault(path, {}))
                       for path, (module, _) in sorted(by_file.items())}
            for path, errors in unloadable.items():  # kept as it is, such an entry would lose its raw samples
                for test, error in sorted(errors.items()):
                    if test not in by_file[path][1]:
                        raise error
            texts: dict[Path, tuple[str, dict[str, BaselineEntry]]] = {}
            sidecars: dict[str, str] = {}
            owners: dict[str, Path] = {}  # a sidecar -> a module file it is written for (for messages)
            for path, (module, new) in sorted(by_file.items()):
                merged = dict(current[path])
                for test, entry in sorted(new.items()):
                    old = merged.get(test)
                    same = old is not None and (_without_history(old) == _without_history(entry)
                                                if continue_history else old == entry)
                    kind = "added" if old is None else ("unchanged" if same else "updated")
                    changes.append(Change(path, test, kind, dict(old.metrics) if old else {},
                                          dict(entry.metrics)))
                    # the same recording stored again does not count twice toward the noise
                    merged[test] = (old if same and old is not None
                                    else entry.continued_from(old) if continue_history else entry)
                doc, side = module_document(self.device, module, merged)
                if side is not None:
                    sidecars[side[0]] = side[1]
                    owners.setdefault(side[0], path)
                try:
                    text = _dumps(doc) + "\n"
                except ValueError as exc:  # a NaN or infinity that slipped past the entry check
                    raise BaselineError(f"{path}: not written: {_one_line(exc)}") from None
                # the reader must accept it, with the sidecars about to be written
                _parse_file(path, text.encode("utf-8"), self.device, module,
                            load=lambda ref: parse_sidecar(self.directory / ref, sidecars[ref].encode("utf-8")))
                texts[path] = (text, merged)
            self._write_sidecars(sidecars, owners)  # first: a module file never references a sidecar not yet written
            for path, (text, merged) in texts.items():
                _atomic_write(path, text)
                self._cache[path] = merged
            self._remove_unreferenced_sidecars()
        self._priors.clear()
        return changes

    def _write_sidecars(self, sidecars: Mapping[str, str], owners: Mapping[str, Path]) -> None:
        """Each sidecar not already on disk with exactly this content (content-named: the same samples, one file)."""
        if not sidecars:
            return
        directory = self.samples_directory
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            raise BaselineError(f"{directory}: cannot create it ({_os_reason(exc)}); no baseline written") from None
        if not (directory / ".gitattributes").exists():
            _atomic_write(directory / ".gitattributes", GITATTRIBUTES)
        for ref, text in sorted(sidecars.items()):
            path = self.directory / ref
            with contextlib.suppress(OSError):
                if path.read_bytes() == text.encode("utf-8"):
                    continue
            try:
                atomic_write_text(path, text, tmp_prefix=_TMP_PREFIX + path.name + ".")
            except OSError as exc:
                raise BaselineError(f"{owners[ref]}: cannot write baseline ({_os_reason(exc)}: its raw samples "
                                    f"{path}); the old file is unchanged") from None

    def _remove_unreferenced_sidecars(self) -> None:
        """Sidecars no module file of this device references (the samples of replaced recordings)."""
        refs = referenced(sorted(self.directory.glob("*.json")))
        if refs is None:  # a module file that cannot be read might reference any of them: keep them all
            return
        for path in self.samples_directory.glob("*.json"):
            if f"{SAMPLES_DIR}/{path.name}" not in refs:
                with contextlib.suppress(OSError):
                    path.unlink()

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
                per_test += [noise.own_variance(e.recordings(), by_reference) for e in entries.values()
                             if not e.recorded_busy]  # its own timing measured the other load
            self._priors[by_reference] = noise.NoisePrior.pool(per_test)
        return self._priors[by_reference]
