"""The baseline file format: writing it (stable, diff-friendly JSON) and reading it back with every check.

Files are written with sorted keys, indent 2, flat lists on one line each, and a trailing newline, so a review diff
shows the summary numbers that moved and one line per changed list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .entry import BaselineEntry
from .validate import BaselineError, _one_line

BASELINE_SCHEMA_VERSION = 1


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
                allow_empty: bool = False) -> dict[str, BaselineEntry]:
    """Decode one baseline file (data only, no object hooks), checking schema, device and module (unless None).

    Every value goes through ``BaselineEntry.from_json``, the same rules every write is checked with. An empty
    file is an error, except to an update (``allow_empty``), which may record into it: it holds nothing to lose.
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
    if version != BASELINE_SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: schema_version is {version!r}, this pytest-edgeperf reads {BASELINE_SCHEMA_VERSION}; "
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
    out: dict[str, BaselineEntry] = {}
    for key, value in entries.items():
        try:
            out[key] = BaselineEntry.from_json(value)
        except BaselineError as exc:
            raise BaselineError(f"{path}: entry {key!r}: {exc}; fix or delete that entry (or the file), then "
                                "re-record with --edgeperf-update-baselines") from None
    return out
