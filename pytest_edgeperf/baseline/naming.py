"""Where a test's baseline lives: ``<root>/<device>/<module>.json``, keyed by the test name with its parameters.

``<module>`` is the module's path relative to the rootdir with ``/`` replaced by ``__`` and ``.py`` dropped
(``suites/test_arch.py`` -> ``baselines/pi4/suites__test_arch.json``; a name over 200 bytes keeps its end plus a hash
of the module path). Why per module: one file per test would scatter a suite over hundreds of files; one file per
device would put every pull request's changes in the same file and make merge conflicts the norm. A module is what a
pull request usually touches, so per-module files keep diffs reviewable and conflicts rare.
"""

from __future__ import annotations

import hashlib
import re

from .validate import BaselineError

_DEVICE_OK = re.compile(r"[^A-Za-z0-9._-]+")


def device_dirname(device: str) -> str:
    """A device name as a safe directory name (``Raspberry Pi 4`` -> ``Raspberry-Pi-4``)."""
    name = _DEVICE_OK.sub("-", device.strip()).strip("-.")
    if not name:
        raise BaselineError(f"device name {device!r} cannot be used as a baseline directory name")
    return name


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """``suites/test_a.py::Cls::test_x[p]`` -> (``suites/test_a.py``, ``Cls::test_x[p]``)."""
    module, sep, test = nodeid.partition("::")
    return (module, test) if sep else (module, nodeid)


#: longest baseline file name, in bytes: 255 (the usual NAME_MAX) less room for the temp file a write goes through
#: (``.edgeperf-<name>.<random>.tmp``)
MAX_FILENAME_BYTES = 200
_NAME_HASH_CHARS = 16


def module_filename(module: str) -> str:
    """Module path relative to rootdir -> file name inside the device directory.

    ``suites/test_a.py`` -> ``suites__test_a.json``. A name longer than MAX_FILENAME_BYTES keeps the end of that
    readable name (the test file is the end) and adds a hash of the whole module path
    (``...__deep__test_x-<16 hex>.json``), so every legal module path maps to a legal, stable name; short names
    are as they always were, so committed baselines still load.
    """
    stem = module[:-3] if module.endswith(".py") else module
    readable = stem.replace("\\", "/").strip("/").replace("/", "__")
    name = readable + ".json"
    if len(name.encode("utf-8", "surrogateescape")) <= MAX_FILENAME_BYTES:
        return name
    digest = hashlib.sha256(module.encode("utf-8", "surrogateescape")).hexdigest()[:_NAME_HASH_CHARS]
    room = MAX_FILENAME_BYTES - len(f"-{digest}.json")
    tail = readable.encode("utf-8", "surrogateescape")[-room:].decode("utf-8", "ignore").lstrip("_")
    return f"{tail}-{digest}.json"
