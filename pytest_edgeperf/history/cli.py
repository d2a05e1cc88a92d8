"""``edgeperf history add|changes|ack|dashboard|baselines``: the results history from the command line.

Exit codes as the rest of ``edgeperf``: 0 ok, 1 ``changes`` found an unacknowledged regression as the newest change
point of a gated metric, 2 bad input (one line on stderr naming the file or URL).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from .db import HistoryError, connect, redact, resolve_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .changes import Filters

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2
URL_HELP = ("history database: a file path, sqlite:///PATH or postgresql://USER@HOST/DB "
            "(default: $EDGEPERF_HISTORY or .edgeperf/history.db)")


def _engine(args: argparse.Namespace, *, create: bool = True) -> Engine:
    url = resolve_url(args.url or os.environ.get("EDGEPERF_HISTORY"), Path.cwd())
    return connect(url, create=create)


def cmd_add(args: argparse.Namespace) -> int:
    from ..report.files import load_results
    from .record import git_info, record_payload

    payloads = [(path, load_results(Path(path))) for path in args.files]  # every file checked before any write
    engine = _engine(args)
    try:
        for path, payload in payloads:
            git = git_info(Path.cwd(), args.commit or (payload.get("environment") or {}).get("git_commit"))
            if args.branch:
                git = type(git)(git.commit, args.branch)
            run_id, new = record_payload(engine, payload, git)
            print(f"edgeperf: {path}: {'recorded as run' if new else 'already in the history as run'} {run_id}")
    finally:
        engine.dispose()
    return EXIT_OK


def _filters(args: argparse.Namespace) -> Filters:
    from .changes import Filters

    metrics = tuple(m.strip() for m in (args.metric or "").split(",") if m.strip())
    return Filters(test=args.test, device=args.device, runtime=args.runtime, metrics=metrics, branch=args.branch)


def cmd_changes(args: argparse.Namespace) -> int:
    from .changes import analyse

    engine = _engine(args, create=False)
    try:
        analysis = analyse(engine, _filters(args), min_runs=args.min_runs, alpha=args.alpha,
                           min_change_pct=args.min_change)
    finally:
        engine.dispose()
    shown = analysis.changes if args.all else list(analysis.newest_by_series().values())
    shown.sort(key=lambda cp: (cp.last.created_unix, cp.last.run_id), reverse=True)
    blocking = analysis.blocking()
    if not shown:
        print(f"edgeperf: no change points in {len(analysis.series)} series")
    else:
        rows = [[cp.id, cp.kind.upper() if cp in blocking else cp.kind, cp.key.test_id,
                 cp.key.device, cp.key.runtime, cp.key.metric, f"{cp.change_pct:+.1f}",
                 f"{cp.old_value:.4g} -> {cp.new_value:.4g}", cp.where(), cp.commit_range(), f"{cp.p_value:.1g}",
                 "ack" if cp.acknowledged else ("" if cp.gated else "not gated")]
                for cp in shown]
        print(tabulate(rows, headers=["id", "kind", "test", "device", "runtime", "metric", "change %", "level",
                                      "where", "commits", "p", ""], tablefmt=args.format, disable_numparse=True))
    for cp in blocking:
        print(f"edgeperf: REGRESSION {cp.id}: {cp.key.test_id} [{cp.key.runtime}] on {cp.key.device}: "
              f"{cp.key.metric} {cp.change_pct:+.1f}% ({cp.where()}) at {cp.commit_range()} "
              f"(acknowledge with: edgeperf history ack {cp.id})", file=sys.stderr)
    return EXIT_REGRESSION if blocking else EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    from .changes import acknowledge, analyse

    engine = _engine(args, create=False)
    try:
        hits = acknowledge(engine, analyse(engine), args.target, args.commit, note=args.note or "")
    finally:
        engine.dispose()
    for cp in hits:
        print(f"edgeperf: acknowledged {cp.id}: {cp.key.test_id} [{cp.key.runtime}] on {cp.key.device}: "
              f"{cp.key.metric} {cp.kind} {cp.change_pct:+.1f}% ({cp.where()}) at {cp.commit_range()}")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import write_site

    engine = _engine(args, create=False)
    try:
        written = write_site(engine, Path(args.output), _filters(args))
    finally:
        engine.dispose()
    print(f"edgeperf: wrote {len(written)} pages to {args.output}/ (open {Path(args.output) / 'index.html'})")
    return EXIT_OK


def cmd_baselines(args: argparse.Namespace) -> int:
    from ..baseline import describe_changes
    from .baselines import write_baselines

    engine = _engine(args, create=False)
    try:
        outcome = write_baselines(engine, Path(args.baselines), _filters(args), min_runs=args.min_runs,
                                  alpha=args.alpha, min_change_pct=args.min_change)
    finally:
        engine.dispose()
    for line in outcome.notes + outcome.refused:
        print(line, file=sys.stderr)
    if outcome.changes:
        print(f"edgeperf: baselines written from the history in {args.baselines}")
    print(describe_changes(outcome.changes))
    return EXIT_USAGE if outcome.refused else EXIT_OK


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``history`` subcommand and its own subcommands (called from ``pytest_edgeperf.cli.build_parser``)."""
    history = sub.add_parser("history", help="the results history: record runs, find change points, dashboard")
    hsub = history.add_subparsers(dest="history_command", required=True)

    def common(p: argparse.ArgumentParser, filters: bool = False) -> None:
        p.add_argument("--url", help=URL_HELP)
        if filters:
            p.add_argument("--test", help="only tests whose id contains this")
            p.add_argument("--device", help="only this device profile")
            p.add_argument("--runtime", help="only this runtime")
            p.add_argument("--metric", help="only these metrics, comma-separated (e.g. fps,top1_pct)")
            p.add_argument("--branch", help="only runs of this branch")

    add = hsub.add_parser("add", help="import results files written with --edgeperf-json")
    add.add_argument("files", nargs="+")
    add.add_argument("--commit", help="the commit measured (default: the file's git_commit, then $GITHUB_SHA)")
    add.add_argument("--branch", help="its branch (default: $GITHUB_HEAD_REF / $GITHUB_REF_NAME, then git)")
    common(add)
    add.set_defaults(func=cmd_add)

    changes = hsub.add_parser("changes", help="change points per (test, device, runtime, metric); exit 1 when the "
                                              "newest of a gated metric is an unacknowledged regression")
    common(changes, filters=True)
    changes.add_argument("--all", action="store_true", help="every change point, not only each series' newest")
    changes.add_argument("--min-runs", type=int, default=5, help="fewest runs on each side of a change (default 5)")
    changes.add_argument("--alpha", type=float, default=0.01, help="rank-test threshold (default 0.01)")
    changes.add_argument("--min-change", type=float, default=2.0,
                         help="smallest change reported, %% of the old level (default 2; accuracy: the verdict's "
                              "points)")
    changes.add_argument("--format", default="simple", help="tabulate format (github for markdown)")
    changes.set_defaults(func=cmd_changes)

    ack = hsub.add_parser("ack", help="acknowledge a change point: ack ID, or ack TEST COMMIT")
    ack.add_argument("target", help="a change point id (from `changes`), or a test id (or a unique part of it)")
    ack.add_argument("commit", nargs="?", help="with a test: the first commit of the new level (a prefix)")
    ack.add_argument("--note", help="why it is accepted")
    common(ack)
    ack.set_defaults(func=cmd_ack)

    dash = hsub.add_parser("dashboard", help="write the static trend dashboard (opens from file://)")
    dash.add_argument("-o", "--output", required=True, help="directory to write index.html and tests/ into")
    common(dash, filters=True)
    dash.set_defaults(func=cmd_dashboard)

    base = hsub.add_parser("baselines", help="write baselines from the runs since each test's last change point "
                                             "(instead of re-measuring); exit 2 when a test's runs lack raw samples")
    common(base, filters=True)
    base.add_argument("--baselines", default="baselines", help="baselines root to write (default: baselines)")
    base.add_argument("--min-runs", type=int, default=5, help="change points: fewest runs on each side (default 5)")
    base.add_argument("--alpha", type=float, default=0.01, help="change points: rank-test threshold (default 0.01)")
    base.add_argument("--min-change", type=float, default=2.0, help="change points: smallest change, %% (default 2)")
    base.set_defaults(func=cmd_baselines)


__all__ = ["HistoryError", "add_parser", "redact"]
