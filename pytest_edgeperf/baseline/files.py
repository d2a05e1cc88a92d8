"""The baseline file format: writing it (stable, diff-friendly JSON) and reading it back with every check.

Files are written with sorted keys, indent 2, flat lists on one line each, and a trailing newline, so a review diff
shows the summary numbers that moved and one line per changed list.

Schema 2 (this writer) keeps the raw per-inference latencies in a sidecar named by its content hash
(``sidecar.py``) and references it from the entry (``"samples_file": "samples/<sha256 prefix>.json"``); schema 1
(older writers) kept them inline under ``samples``. The reader takes both, and an entry read either way is the same
``BaselineEntry``, so the verdict's figures do not depend on how the file was written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .entry import BaselineEntry
from .sidecar import SIDECAR_KEYS, SidecarError, check_ref, sidecar_text
from .validate import BaselineError, _one_line

#: what this writer writes: 2, raw samples in a sidecar; 1 (raw samples inline) is still read
BASELINE_SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)

#: ``samples_file`` value -> the raw samples it holds per test (raises SidecarError naming the sidecar)
SampleLoader = Callable[[str], dict[str, dict[str, list[float]]]]


def module_document(device: str, module: str, entries: Mapping[str, BaselineEntry]
                    ) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """A module file as written: the JSON the reviewer reads, and (reference, text) of its raw-samples sidecar."""
    docs: dict[str, Any] = {}
    raw: dict[str, dict[str, list[float]]] = {}
    for test in sorted(entries):
        data = entries[test].to_json()
        if moved := {k: data["samples"].pop(k) for k in SIDECAR_KEYS if data["samples"].get(k)}:
            raw[test] = moved
        docs[test] = data
    doc: dict[str, Any] = {"schema_version": BASELINE_SCHEMA_VERSION, "device": device, "module": module,
                           "entries": docs}
    if not raw:
        return doc, None
    ref, text = sidecar_text(raw)
    doc["samples_file"] = ref
    return doc, (ref, text)


def _with_raw(value: Any, raw: Mapping[str, list[float]]) -> Any:
    """An entry's JSON with its raw samples from the sidecar put back inline, as schema 1 kept them."""
    if not raw or not isinstance(value, dict) or not isinstance(value.get("samples", {}), dict):
        return value  # from_json says what is wrong with it
    samples = value.get("samples", {})
    if both := sorted(set(raw) & set(samples)):
        raise BaselineError(f"{', '.join(both)} both inline and in the samples file; keep one of them")
    return {**value, "samples": {**samples, **raw}}


def _dumps(obj: Any, level: int = 0) -> str:
    """JSON with indent 2 and sorted keys, but flat lists (samples) on one line: short, stable diffs."""
    pad = "  " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(k)}: {_dumps(obj[k], level + 1)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [f"{pad}{_dumps(v, level + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(obj, allow_nan=False, separators=(", ", ": "))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse_file(path: Path, raw: bytes, device: str, module: str | None,
                allow_empty: bool = False, load: SampleLoader | None = None,
                unloadable: dict[str, BaselineError] | None = None) -> dict[str, BaselineEntry]:
    """Decode one baseline file (data only, no object hooks), checking schema, device and module (unless None).

    Every value goes through ``BaselineEntry.from_json``, the same rules every write is checked with. An empty
    file is an error, except to an update (``allow_empty``), which may record into it: it holds nothing to lose.
    ``load`` reads the file's sidecar (None: raw samples are not needed and left out). With ``unloadable`` given, a
    sidecar that is missing or corrupt leaves every entry without its raw samples and its error kept there per
    entry (an update may replace those entries, and must refuse to keep them); without, the error names the sidecar.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not UTF-8 text; fix or delete the file") from None
    if not text.strip():
        if allow_empty:  # nothing in it to lose: an update records into it
            return {}
        raise BaselineError(f"{path}: file is empty; delete it or re-record with --edgeperf-update-baselines")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        reason = _one_line(exc)
        raise BaselineError(f"{path}: not valid JSON ({reason}); fix the JSON or delete the file") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{path}: top level is a {type(data).__name__}, expected an object")
    version = data.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS or isinstance(version, bool):
        raise BaselineError(
            f"{path}: schema_version is {version!r}, this pytest-edgeperf reads "
            f"{' and '.join(map(str, READABLE_SCHEMA_VERSIONS))}; "
            "use the pytest-edgeperf that wrote it, or delete the file and re-record with --edgeperf-update-baselines"
        )
    if data.get("device") != device:
        raise BaselineError(
            f"{path}: recorded for device {data.get('device')!r}, not {device!r}; move it to that "
            "device's directory or delete it"
        )
    if module is not None and "module" in data and data["module"] != module:
        raise BaselineError(
            f"{path}: holds baselines of module {data['module']!r}, not {module!r} (file name clash); "
            "rename one of the modules"
        )
    entries = data.get("entries")
    if not isinstance(entries, dict):
        raise BaselineError(f"{path}: missing field 'entries' (an object keyed by test name)")
    raw: dict[str, dict[str, list[float]]] = {}
    if "samples_file" in data:
        try:
            ref = check_ref(data["samples_file"])
        except BaselineError as exc:
            raise BaselineError(f"{path}: {exc}; fix it or re-record with --edgeperf-update-baselines") from None
        if load is not None:
            try:
                raw = load(ref)
            except SidecarError as exc:
                error = SidecarError(f"{exc} (the raw samples of {path})")
                if unloadable is None:
                    raise error from None
                unloadable.update(dict.fromkeys(entries, error))
    out: dict[str, BaselineEntry] = {}
    for key, value in entries.items():
        try:
            out[key] = BaselineEntry.from_json(_with_raw(value, raw.get(key, {})))
        except BaselineError as exc:
            raise BaselineError(f"{path}: entry {key!r}: {exc}; fix or delete that entry (or the file), then "
                                "re-record with --edgeperf-update-baselines") from None
    return out
