"""Results -> history rows: one ``runs`` row per results payload (``--edgeperf-json``), one ``measurements`` row per
result, one ``metrics`` row per scalar metric, and (when it may become a baseline) one ``measurement_samples`` row
with what a baseline written from the history needs (``history/baselines.py``).

The payload is stored as it is today: fields it does not carry (the accelerator provider) are NULL rather than
guessed. The commit comes from the payload (the plugin records ``git rev-parse HEAD``), else from CI's variables;
the branch from CI's variables, else from ``git`` in the directory the run was made in. No git is fine: NULL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .db import HistoryError, connect, one_line, redact, resolve_url, tables, write_with_retry

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: host facts that identify the machine a run came from (beside the device profile)
HOST_KEYS = ("hostname", "cpu", "cpu_count", "machine", "platform", "kernel", "python", "python_implementation")


@dataclass(frozen=True)
class GitInfo:
    commit: str | None = None
    branch: str | None = None


def _git(args: list[str], cwd: Path) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return None


def git_info(cwd: Path, commit: str | None = None) -> GitInfo:
    """Commit and branch: CI's variables (GITHUB_SHA, GITHUB_HEAD_REF/GITHUB_REF_NAME), else ``git`` in ``cwd``.

    ``commit`` (from the payload) wins; the branch is only taken from ``cwd`` when its HEAD is that commit, so
    importing a board's file into a collector's checkout of another commit does not mislabel it.
    """
    head = _git(["rev-parse", "HEAD"], cwd)
    commit = commit or os.environ.get("GITHUB_SHA") or head
    branch = os.environ.get("GITHUB_HEAD_REF") or os.environ.get("GITHUB_REF_NAME") or None
    if branch is None and commit is not None and head == commit:
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
        if branch == "HEAD":  # detached
            branch = None
    return GitInfo(commit=commit, branch=branch)


def run_key(payload: dict[str, Any]) -> str:
    """Content hash of a payload: the plugin's write and a later ``history add`` of its file give one run."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _device(payload: dict[str, Any]) -> str:
    device = payload.get("device")
    if isinstance(device, dict) and device.get("profile"):
        return str(device["profile"])
    results = payload.get("results") or []
    return str(results[0].get("device") or "unknown") if results else "unknown"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def run_row(payload: dict[str, Any], git: GitInfo) -> dict[str, Any]:
    env = payload.get("environment") if isinstance(payload.get("environment"), dict) else {}
    device = payload.get("device") if isinstance(payload.get("device"), dict) else {}
    versions = {}
    for result in payload.get("results") or []:
        renv = result.get("environment") or {}
        if result.get("framework") and renv.get("runtime_version"):
            versions[str(result["framework"])] = str(renv["runtime_version"])
    now = time.time()
    return {
        "run_key": run_key(payload),
        "commit_sha": git.commit,
        "branch": git.branch,
        "created_unix": _number(payload.get("created_unix")) or now,
        "recorded_unix": now,
        "device": _device(payload),
        "device_model": device.get("model"),
        "host": env.get("hostname"),
        "host_identity": {k: env[k] for k in HOST_KEYS if k in env},
        "runtime_versions": versions,
        "tool_version": payload.get("version"),
        "environment": env,
    }


def measurement_row(result: dict[str, Any], run_id: int) -> dict[str, Any]:
    env = result.get("environment") if isinstance(result.get("environment"), dict) else {}
    shape = env.get("input_signature", env.get("input_shape"))
    provider = env.get("provider") or env.get("providers")
    return {
        "run_id": run_id,
        "test_id": str(result["test_id"]),
        "runtime": str(result.get("framework") or env.get("runtime") or "unknown"),
        "provider": None if provider is None else (provider if isinstance(provider, str) else json.dumps(provider)),
        "input_signature": None if shape is None else (shape if isinstance(shape, str) else json.dumps(shape)),
        "model": result.get("model"),
        "status": result.get("status"),
        "quick": bool(result.get("quick", False)),
        "overall_verdict": result.get("overall_verdict") or None,
        "verdicts": result.get("verdicts") or [],
        "environment": env,
    }


def metric_rows(result: dict[str, Any], measurement_id: int) -> list[dict[str, Any]]:
    summary = result.get("summary") if isinstance(result.get("summary"), dict) else {}
    rows = []
    for name, value in summary.items():
        number = _number(value)
        if number is not None:
            rows.append({"measurement_id": measurement_id, "name": str(name), "value": number})
    return rows


def sample_row(result: dict[str, Any], measurement_id: int) -> dict[str, Any] | None:
    """What a baseline needs of this result beyond its summary, as the baseline stores it; None when the result
    may not become a baseline (quick, not ok, no valid samples) or its file is not one this edgeperf can read."""
    from ..baseline import BaselineEntry, recordable_reason
    from ..result import Result

    try:
        parsed = Result.from_json(result)
        if recordable_reason(parsed) is not None:
            return None
        entry = BaselineEntry.from_result(parsed, recorded_at="-", recorded_by={})
    except (TypeError, ValueError, KeyError):  # a results file of another edgeperf version: its summary still counts
        return None
    per_process = entry.process_statistics()
    if not per_process or not entry.samples.get("latency_ms"):
        return None
    return {
        "measurement_id": measurement_id,
        "sample_count": entry.sample_count,
        "latency_ms": entry.samples["latency_ms"],
        "process_latency_ms": entry.samples["process_latency_ms"],
        "process_reference_ms": entry.samples.get("process_reference_ms"),
        "environment": entry.environment,
    }


def record_payload(engine: Engine, payload: dict[str, Any], git: GitInfo) -> tuple[int, bool]:
    """Store one results payload in one transaction; returns (run id, True if new, False if already stored)."""
    import sqlalchemy as sa

    t = tables()
    run = run_row(payload, git)

    def work(conn: Connection) -> tuple[int, bool]:
        existing = conn.execute(sa.select(t["runs"].c.id).where(t["runs"].c.run_key == run["run_key"])).scalar()
        if existing is not None:
            return int(existing), False
        run_id = int(conn.execute(sa.insert(t["runs"]).values(**run)).inserted_primary_key[0])
        for result in payload.get("results") or []:
            mrow = measurement_row(result, run_id)
            mid = int(conn.execute(sa.insert(t["measurements"]).values(**mrow)).inserted_primary_key[0])
            metrics = metric_rows(result, mid)
            if metrics:
                conn.execute(sa.insert(t["metrics"]), metrics)
            if (samples := sample_row(result, mid)) is not None:
                conn.execute(sa.insert(t["measurement_samples"]).values(**samples))
        return run_id, True

    return write_with_retry(engine, work)


def record_session(url: str | None, rootdir: Path, payload: dict[str, Any]) -> str:
    """The plugin's end-of-session write. Never raises: returns the one line to show (stored, or why not)."""
    shown = url or str(rootdir / ".edgeperf" / "history.db")
    try:
        resolved = resolve_url(url, rootdir)
        shown = redact(resolved)
        engine = connect(resolved)
        try:
            env = payload.get("environment") or {}
            run_id, new = record_payload(engine, payload, git_info(rootdir, env.get("git_commit")))
        finally:
            engine.dispose()
    except HistoryError as exc:
        return f"edgeperf: run NOT recorded in the history: {exc}"
    except Exception as exc:  # a driver error mid-write: the test run and its files stand; say why in one line
        return f"edgeperf: run NOT recorded in the history {shown}: {one_line(exc)}"
    what = "recorded as run" if new else "already in the history as run"
    return f"edgeperf: {what} {run_id} in {shown}"
