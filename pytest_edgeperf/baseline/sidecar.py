"""Raw samples beside the baseline file: ``<device>/samples/<sha256 prefix>.json``, named by their content.

A reviewer reads the module file (summaries, environment, per-process statistics, history); only the verdict reads
the up to ``MAX_STORED_SAMPLES`` per-inference latencies behind the rank tests. Kept inline they made every
re-recording rewrite thousands of numbers in the diff. Each module file has one sidecar (one line per test), named
by the sha256 of its bytes: the module file changes by one line (``samples_file``) when they change, an update
writes two files whatever the number of tests, and a sidecar that does not match its name is known to be corrupt.
The sidecar directory carries a ``.gitattributes`` marking its files ``linguist-generated``, so GitHub collapses
them in a pull request's diff.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .validate import BaselineError, _one_line

#: the directory (inside a device's directory) the sidecars live in
SAMPLES_DIR = "samples"
#: the sample lists that go to the sidecar; the per-process statistics stay in the module file for the reviewer
SIDECAR_KEYS = ("latency_ms",)
#: hex digits of the sha256 in a sidecar's name: 64 bits, no collision among a device's few hundred files
HASH_CHARS = 16
GITATTRIBUTES = "# raw samples the verdict reads; a reviewer reads the module file beside them\n" \
                "*.json linguist-generated=true\n"
_REF = re.compile(rf"{SAMPLES_DIR}/([0-9a-f]{{{HASH_CHARS}}})\.json")


class SidecarError(BaselineError):
    """A sidecar that is missing, unreadable or corrupt (the module file that references it may be fine)."""


def sidecar_text(samples: Mapping[str, Mapping[str, list[float]]]) -> tuple[str, str]:
    """(reference relative to the device directory, file text) of a module's raw samples: a line per test."""
    lines = [f"  {json.dumps(test)}: {json.dumps(dict(sorted(raw.items())), allow_nan=False, separators=(', ', ': '))}"
             for test, raw in sorted(samples.items())]
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    return f"{SAMPLES_DIR}/{content_name(text.encode('utf-8'))}.json", text


def content_name(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:HASH_CHARS]


def check_ref(ref: object) -> str:
    """A ``samples_file`` value as written (``samples/<16 hex>.json``); anything else (a path elsewhere) refused."""
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        raise BaselineError(f"'samples_file' must be '{SAMPLES_DIR}/<{HASH_CHARS} hex digits>.json', "
                            f"got {json.dumps(ref)[:60]}")
    return ref


def parse_sidecar(path: Path, raw: bytes) -> dict[str, dict[str, list[float]]]:
    """Check a sidecar's bytes against its name and its shape; one-line SidecarError naming the file.

    The values themselves are checked with the entry they belong to (``BaselineEntry.from_json``), once.
    """
    fix = "restore it from git, or re-record the tests that use it with --edgeperf-update-baselines"
    if content_name(raw) != path.stem:
        raise SidecarError(f"{path}: content does not match its name (sha256 {content_name(raw)}...): the file is "
                            f"corrupt or was edited; {fix}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise SidecarError(f"{path}: not valid JSON ({_one_line(exc)}); {fix}") from None
    if not isinstance(data, dict) or not all(
            isinstance(v, dict) and set(v) <= set(SIDECAR_KEYS) and all(isinstance(x, list) for x in v.values())
            for v in data.values()):
        raise SidecarError(f"{path}: expected an object of tests, each with {', '.join(SIDECAR_KEYS)} (a list); {fix}")
    return data


def read_sidecar(directory: Path, ref: str) -> dict[str, dict[str, list[float]]]:
    """The raw samples a module file references; a missing or unreadable file is a one-line BaselineError."""
    path = directory / ref
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SidecarError(f"{path}: raw samples file missing; restore it from git (it is committed beside the "
                            "baseline file), or re-record the tests that use it with --edgeperf-update-baselines") \
            from None
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read raw samples ({exc.strerror or exc})") from None
    return parse_sidecar(path, raw)


def referenced(module_files: list[Path]) -> set[str] | None:
    """Every ``samples_file`` the device's module files reference; None if one cannot be read (then keep all)."""
    refs: set[str] = set()
    for path in module_files:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("samples_file"), str):
            refs.add(data["samples_file"])
    return refs
