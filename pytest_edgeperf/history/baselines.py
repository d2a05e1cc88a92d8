"""Baselines written from the history: the runs since each test's last change point, instead of re-measuring.

Each (test, device) takes the runs after the newest change point of any of its gated metrics (``changes.analyse``,
the same detection as ``edgeperf history changes``), or all its runs when there is none. Those runs are replayed as
successive recordings, oldest first, exactly as ``--edgeperf-update-baselines`` passes would have recorded them:
the newest run becomes the entry (its summary metrics, raw latencies, per-process statistics and environment) and
the runs before it, back to the change point, its ``history`` (up to ``noise.HISTORY_LIMIT``), from which the
verdict learns the test's run-to-run noise. The baseline on disk before is replaced, not continued: it may be from
before the change point.

The verdict needs more than the summary metrics the history first kept: runs recorded before history schema 2 (or
quick, failed runs) have no ``measurement_samples`` row. They are left out, said in one line; a test none of whose
runs since the change point has them is not written, said in one line naming it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..baseline import BaselineEntry, BaselineStore, Change
from .changes import DEFAULT_ALPHA, DEFAULT_MIN_CHANGE_PCT, DEFAULT_MIN_RUNS, ChangePoint, Filters, analyse
from .db import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

COMMAND = "edgeperf history baselines"


@dataclass
class Run:
    """One measurement of a test in the history, with what a baseline needs (``samples`` None: not recorded)."""

    run_id: int
    created_unix: float
    commit: str | None
    host: str | None
    runtime: str
    metrics: dict[str, float]
    samples: dict[str, Any] | None

    def entry(self) -> BaselineEntry:
        """The baseline entry this run's recording would have written (``BaselineEntry.from_result``)."""
        assert self.samples is not None
        samples = {"latency_ms": list(self.samples["latency_ms"]),
                   "process_latency_ms": list(self.samples["process_latency_ms"])}
        if self.samples.get("process_reference_ms"):
            samples["process_reference_ms"] = list(self.samples["process_reference_ms"])
        return BaselineEntry(
            metrics={k: float(f"{v:.6g}") for k, v in sorted(self.metrics.items())},
            samples=samples,
            sample_count=int(self.samples["sample_count"]),
            environment=dict(self.samples["environment"]),
            recorded_at=datetime.fromtimestamp(self.created_unix, timezone.utc).replace(microsecond=0).isoformat(),
            recorded_by={"host": self.host or "", "command": COMMAND, "git_commit": self.commit or ""},
        )


@dataclass
class Outcome:
    """What was written for each test, and one line per test left out or built from fewer runs."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # runs without samples left out (written anyway)
    refused: list[str] = field(default_factory=list)  # tests not written


def load_runs(engine: Engine, filters: Filters) -> dict[tuple[str, str], list[Run]]:
    """(test id, device) -> its ok, non-quick measurements in the order they were measured."""
    import sqlalchemy as sa

    t = tables()
    runs, meas, metrics, samples = t["runs"], t["measurements"], t["metrics"], t["measurement_samples"]
    query = (sa.select(meas.c.id, meas.c.test_id, runs.c.device, meas.c.runtime, runs.c.id, runs.c.created_unix,
                       runs.c.commit_sha, runs.c.host, samples.c.sample_count, samples.c.latency_ms,
                       samples.c.process_latency_ms, samples.c.process_reference_ms, samples.c.environment)
             .select_from(meas.join(runs, meas.c.run_id == runs.c.id)
                          .outerjoin(samples, samples.c.measurement_id == meas.c.id))
             .where(meas.c.status == "ok", sa.or_(meas.c.quick.is_(None), meas.c.quick.is_(False))))
    query = filters.where(query, runs, meas)
    out: dict[tuple[str, str], list[Run]] = defaultdict(list)
    by_measurement: dict[int, Run] = {}
    with engine.connect() as conn:
        for (mid, test_id, device, runtime, run_id, created, commit, host, count, lat, proc, ref,
             env) in conn.execute(query):
            sampled = None if count is None else {"sample_count": count, "latency_ms": lat, "process_latency_ms": proc,
                                                  "process_reference_ms": ref, "environment": env}
            run = Run(int(run_id), float(created), commit, host, runtime, {}, sampled)
            out[(test_id, device)].append(run)
            by_measurement[int(mid)] = run
        for mid, name, value in conn.execute(sa.select(metrics.c.measurement_id, metrics.c.name, metrics.c.value)
                                             .where(metrics.c.measurement_id.in_(list(by_measurement)))):
            by_measurement[int(mid)].metrics[name] = float(value)
    return {k: sorted(v, key=lambda r: (r.created_unix, r.run_id)) for k, v in out.items()}


def since_last_change(engine: Engine, filters: Filters, *, min_runs: int, alpha: float,
                      min_change_pct: float) -> dict[tuple[str, str], tuple[list[Run], str]]:
    """(test id, device) -> (its runs since the newest change point of a gated metric, where that was)."""
    series = load_runs(engine, filters)
    analysis = analyse(engine, filters, min_runs=min_runs, alpha=alpha, min_change_pct=min_change_pct)
    newest: dict[tuple[str, str], ChangePoint] = {}
    for cp in analysis.changes:
        key = (cp.key.test_id, cp.key.device)
        if cp.gated and (key not in newest or (cp.last.created_unix, cp.last.run_id) >
                         (newest[key].last.created_unix, newest[key].last.run_id)):
            newest[key] = cp
    out: dict[tuple[str, str], tuple[list[Run], str]] = {}
    for key, runs in series.items():
        cp = newest.get(key)
        if cp is None:
            out[key] = (runs, f"all {len(runs)} runs (no change point)")
            continue
        start = (cp.last.created_unix, cp.last.run_id)  # a drift: the first run at its final level
        after = [r for r in runs if (r.created_unix, r.run_id) >= start]
        out[key] = (after, f"the {len(after)} runs since the {cp.key.metric} {cp.kind} at {cp.commit_range()}")
    return out


def build_entry(runs: list[Run]) -> BaselineEntry:
    """The runs (oldest first, each with samples) replayed as successive recordings: the newest with the rest as
    its history, as successive ``--edgeperf-update-baselines`` passes would have written it."""
    entry: BaselineEntry | None = None
    for run in runs:
        entry = run.entry().continued_from(entry)
    assert entry is not None
    return entry


def write_baselines(engine: Engine, root: Path, filters: Filters, *, min_runs: int = DEFAULT_MIN_RUNS,
                    alpha: float = DEFAULT_ALPHA, min_change_pct: float = DEFAULT_MIN_CHANGE_PCT) -> Outcome:
    """Write each selected test's baseline from its runs since its last change point (see the module docstring)."""
    outcome = Outcome()
    by_device: dict[str, dict[str, BaselineEntry]] = defaultdict(dict)
    selected = since_last_change(engine, filters, min_runs=min_runs, alpha=alpha, min_change_pct=min_change_pct)
    for (test_id, device), (runs, where) in sorted(selected.items()):
        runtime = runs[-1].runtime  # one test id is one runtime; should it have changed, the newest counts
        usable = [r for r in runs if r.samples is not None and r.runtime == runtime]
        lacking = len(runs) - len(usable)
        if not usable:
            outcome.refused.append(f"edgeperf: {test_id} on {device}: not written: none of {where} carries raw "
                                   "samples (recorded before history schema 2); re-measure it with "
                                   "--edgeperf-update-baselines, or record new runs with --edgeperf-history")
            continue
        if lacking:
            outcome.notes.append(f"edgeperf: {test_id} on {device}: {lacking} of {where} carry no raw samples "
                                 f"(recorded before history schema 2); built from the other {len(usable)}")
        by_device[device][test_id] = build_entry(usable)
    for device, entries in sorted(by_device.items()):
        outcome.changes += BaselineStore(root, device, updating=True).update(entries, continue_history=False)
    return outcome
