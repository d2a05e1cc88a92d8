"""The ``edgeperf`` command: merge results across devices, render reports, show/diff baselines, explain, the
results history (``history``) and the model zoo (``models``).

Plain and scriptable for CI: output goes to stdout (or ``-o``), problems to stderr as one line naming the
file. Exit codes: 0 ok, 1 a test failed: a regression, a breached limit or gate, an error (``explain``,
``merge --fail-on-regression``), 2 bad input. Baseline files are read only through ``pytest_edgeperf.baseline``
so their validation lives in one place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pytest_edgeperf import __version__
from pytest_edgeperf.baseline import BaselineEntry, BaselineStore
from pytest_edgeperf.errors import EdgeperfError
from pytest_edgeperf.history import cli as history_cli
from pytest_edgeperf.models import command as models_command
from pytest_edgeperf.report import outcome
from pytest_edgeperf.report.files import InputError, load_results
from pytest_edgeperf.report.html import write_html_report, write_merged_html_report, write_text_atomic
from pytest_edgeperf.report.markdown import column_labels, device_name, fmt_value, results_markdown, verdict_label

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2

def load_baseline_dir(root: Path, device: str | None = None) -> dict[tuple[str, str], BaselineEntry]:
    """Every entry under ``root`` (or one device's directory): {(device, node id): entry}.

    The node id is rebuilt from the file's ``module`` field, then each entry is read back through
    ``BaselineStore.lookup`` so the baseline module's own validation applies.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such baselines directory")
    if device is not None:
        device_dirs = [root / device]
        if not device_dirs[0].is_dir():
            known = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
            raise InputError(f"{root / device}: no baselines for device {device!r} (recorded: {known})")
    else:
        device_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    out: dict[tuple[str, str], BaselineEntry] = {}
    for directory in device_dirs:
        for path in sorted(directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}: not a readable baseline file ({exc.__class__.__name__})") from None
            if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
                raise InputError(f"{path}: not a baseline file (no 'entries' object)")
            dev = str(data.get("device") or directory.name)
            module = str(data.get("module") or path.stem.replace("__", "/") + ".py")
            store = BaselineStore(root, dev)
            if store.directory != directory:
                raise InputError(f"{path}: recorded for device {dev!r} but stored under {directory.name!r}")
            for test in data["entries"]:
                nodeid = f"{module}::{test}"
                entry = store.lookup(nodeid)  # validates the whole file; BaselineError names it
                if entry is not None:
                    out[(dev, nodeid)] = entry
    return out


# --- commands ------------------------------------------------------------------------------------------
def _emit(text: str, out: str | None) -> None:
    if out:
        write_text_atomic(Path(out), text)
    else:
        sys.stdout.write(text)


def cmd_merge(args: argparse.Namespace) -> int:
    payloads = [load_results(Path(p)) for p in args.files]
    if args.format == "html":
        if not args.output:
            raise InputError("merge --format html needs -o OUT.html")
        write_merged_html_report(payloads, Path(args.output), sources=list(args.files))
    else:
        _emit(results_markdown(payloads, sources=list(args.files)), args.output)
    failing = [(column, r) for column, p in zip(column_labels(payloads, list(args.files)), payloads, strict=True)
               for r in p["results"] if outcome.is_failing(r)]
    if args.fail_on_regression and failing:
        for column, r in failing:
            why = outcome.reason(r)
            print(f"edgeperf: {outcome.label(r)} on {column}: {r['test_id']}" + (f" ({why})" if why else ""),
                  file=sys.stderr)
        return EXIT_REGRESSION
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    payload = load_results(Path(args.results))
    baselines: dict[str, dict] | None = None
    if args.baselines:
        store = BaselineStore(Path(args.baselines), device_name(payload))
        baselines = {}
        for result in payload["results"]:
            entry = store.lookup(result["test_id"])
            if entry is not None:
                baselines[result["test_id"]] = entry.to_json()
    write_html_report(payload, Path(args.output), baselines)
    print(f"edgeperf: wrote {args.output}")
    return EXIT_OK


def _find_results(payload: dict[str, Any], test_id: str, source: str) -> list[dict[str, Any]]:
    """Exact id first; else a unique substring (so a user can paste just the test name)."""
    exact = [r for r in payload["results"] if r["test_id"] == test_id]
    if exact:
        return exact
    partial = [r for r in payload["results"] if test_id in r["test_id"]]
    ids = sorted({r["test_id"] for r in partial})
    if len(ids) == 1:
        return partial
    if not ids:
        raise InputError(f"{source}: no test matches {test_id!r} ({len(payload['results'])} results in file)")
    shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
    raise InputError(f"{source}: {test_id!r} matches {len(ids)} tests ({shown}); give the full id")


def _why(verdict: dict[str, Any]) -> str:
    """One sentence per metric: what moved, by how much, against which tolerance and evidence."""
    metric = verdict.get("metric", "?")
    change = verdict.get("change_pct")
    moved = "" if change is None else f" changed {float(change):+.1f}%"
    figures = f" ({fmt_value(verdict.get('baseline'))} -> {fmt_value(verdict.get('current'))})"
    tolerance = verdict.get("tolerance")
    tol = "" if tolerance is None else f", tolerance {tolerance}"
    p_value = verdict.get("p_value")
    evidence = "" if p_value is None else f", p={fmt_value(p_value)}"
    note = f": {verdict['note']}" if verdict.get("note") else ""
    return f"{verdict.get('verdict', '?')}: {metric}{moved}{figures}{tol}{evidence}{note}"


def explain_text(result: dict[str, Any], unavailable: list[str] | None = None) -> str:
    """One test's verdict, limits, metric table and why; ``unavailable`` (the device's) is said once, by name."""
    why = outcome.reason(result)
    lines = [f"{result['test_id']} [{result.get('framework', '?')}] on {result.get('device', '?')}: "
             f"{verdict_label(result)}" + (f" ({why})" if why else ""),
             f"status: {result.get('status', '?')}"
             + (f" ({result['status_reason']})" if result.get("status_reason") else ""),
             f"samples: {result.get('valid_count', '?')} valid, {result.get('invalid_count', '?')} invalid"]
    shape = (result.get("environment") or {}).get("input_shape")
    if isinstance(shape, list) and shape:
        lines.append("input shape: " + "x".join(map(str, shape)))
    reasons = {k: v for k, v in (result.get("invalid_reasons") or {}).items() if v}
    if reasons:
        lines.append("invalid because: " + ", ".join(f"{k} x{v}" for k, v in reasons.items()))
    limits = [c for c in result.get("limits") or [] if isinstance(c, dict)]
    if limits:
        rows = [[c.get("metric", ""), f"{c.get('op', '')} {fmt_value(c.get('limit'))}",
                 "not measured" if c.get("measured") is None else fmt_value(c.get("measured")),
                 c.get("verdict", "")] for c in limits]
        lines += ["", tabulate(rows, headers=["limit on", "limit", "measured", "verdict"],
                               disable_numparse=True), ""]
    verdicts = [v for v in result.get("verdicts") or [] if isinstance(v, dict)]
    if verdicts:
        rows = [[v.get("metric", ""), fmt_value(v.get("baseline")), fmt_value(v.get("current")),
                 "–" if v.get("change_pct") is None else f"{float(v['change_pct']):+.1f}",
                 fmt_value(v.get("p_value")), v.get("tolerance", "–"), v.get("verdict", "")]
                for v in verdicts]
        lines += ["", tabulate(rows, headers=["metric", "baseline", "current", "change %", "p-value",
                                              "tolerance", "verdict"], disable_numparse=True), ""]
        decisive = [v for v in verdicts if v.get("verdict") not in ("PASS", "", "-", "NEW")]
        if decisive:
            lines += ["why:"] + [f"  {_why(v)}" for v in decisive]
        elif any(v.get("verdict") == "NEW" for v in verdicts):
            lines.append("why: no baseline for this test (record one with --edgeperf-update-baselines)")
        else:
            lines.append("why: every judged metric is within its tolerance")
    else:
        lines.append("no verdicts: no baseline was compared (record one with --edgeperf-update-baselines)")
    device_level = list(unavailable or [])
    for note in result.get("notes") or []:
        if not any(str(note).endswith(u) for u in device_level):  # also "not checked: <what is unavailable>"
            lines.append(f"note: {note}")
    if device_level:
        names = ", ".join(dict.fromkeys(u.split(":", 1)[0].strip() for u in device_level))
        lines.append(f"not measured on this device: {names}")
    return "\n".join(lines) + "\n"


def cmd_explain(args: argparse.Namespace) -> int:
    payload = load_results(Path(args.results))
    matches = _find_results(payload, args.test_id, args.results)
    device = payload.get("device") if isinstance(payload.get("device"), dict) else {}
    unavailable = [str(u) for u in device.get("unavailable") or []]
    sys.stdout.write("\n".join(explain_text(r, unavailable) for r in matches))
    return EXIT_REGRESSION if any(outcome.is_failing(r) for r in matches) else EXIT_OK


def cmd_baselines_show(args: argparse.Namespace) -> int:
    entries = load_baseline_dir(Path(args.dir), args.device)
    if not entries:
        print(f"edgeperf: no baselines under {args.dir}")
        return EXIT_OK
    rows = []
    for (device, nodeid), entry in sorted(entries.items()):
        m = entry.metrics
        rows.append([device, nodeid, fmt_value(m.get("fps")), fmt_value(m.get("latency_p90_ms")),
                     fmt_value(m.get("peak_memory_mb")), fmt_value(m.get("top1_pct")),
                     fmt_value(m.get("fom_top1_per_j")), entry.sample_count, entry.recorded_at,
                     entry.recorded_by.get("git_commit", "")[:10]])
    print(tabulate(rows, headers=["device", "test", "fps", "p90 ms", "peak MB", "top-1 %", "FoM/J", "n",
                                  "recorded", "commit"], tablefmt=args.format, disable_numparse=True))
    return EXIT_OK


def baseline_diff_rows(old: dict[tuple[str, str], BaselineEntry], new: dict[tuple[str, str], BaselineEntry]
                       ) -> list[list[str]]:
    """One row per (device, test, metric) that was added, removed or moved."""
    rows: list[list[str]] = []
    for key in sorted(set(old) | set(new)):
        device, nodeid = key
        before = old[key].metrics if key in old else {}
        after = new[key].metrics if key in new else {}
        if key not in old:
            rows.append([device, nodeid, "(entry)", "–", "added", ""])
            continue
        if key not in new:
            rows.append([device, nodeid, "(entry)", "removed", "–", ""])
            continue
        for metric in sorted(set(before) | set(after)):
            a, b = before.get(metric), after.get(metric)
            if a == b:
                continue
            change = f"{(b - a) / abs(a) * 100:+.1f}" if a and b is not None else ""
            rows.append([device, nodeid, metric, fmt_value(a), fmt_value(b), change])
    return rows


def cmd_baselines_diff(args: argparse.Namespace) -> int:
    old = load_baseline_dir(Path(args.old)) if Path(args.old).exists() or not args.allow_missing_old else {}
    new = load_baseline_dir(Path(args.new))
    rows = baseline_diff_rows(old, new)
    if not rows:
        print("edgeperf: baselines are identical")
        return EXIT_OK
    print(tabulate(rows, headers=["device", "test", "metric", "old", "new", "change %"], tablefmt=args.format,
                   disable_numparse=True))
    return EXIT_OK


# --- parser --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeperf", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s (pytest-edgeperf) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    merge = sub.add_parser("merge", help="merge results JSON files of several devices into one table")
    merge.add_argument("files", nargs="+", help="results files written with --edgeperf-json")
    merge.add_argument("--format", choices=("markdown", "html"), default="markdown")
    merge.add_argument("-o", "--output", help="write here instead of stdout (required for html)")
    merge.add_argument("--fail-on-regression", action="store_true",
                       help="exit 1 if any test failed: a regression, a breached limit or gate, an error")
    merge.set_defaults(func=cmd_merge)

    report = sub.add_parser("report", help="render one results file as a self-contained HTML report")
    report.add_argument("results")
    report.add_argument("-o", "--output", required=True)
    report.add_argument("--baselines", help="baselines root, to draw each test's baseline latency curve")
    report.set_defaults(func=cmd_report)

    explain = sub.add_parser("explain", help="print one test's verdict table and why (exit 1 if it failed)")
    explain.add_argument("results")
    explain.add_argument("test_id", help="full node id, or a part of it that matches one test")
    explain.set_defaults(func=cmd_explain)

    baselines = sub.add_parser("baselines", help="show or diff stored baselines")
    bsub = baselines.add_subparsers(dest="baselines_command", required=True)
    show = bsub.add_parser("show", help="list recorded baselines")
    show.add_argument("--dir", default="baselines", help="baselines root (default: baselines)")
    show.add_argument("--device", help="only this device (e.g. pi3)")
    show.add_argument("--format", default="simple", help="tabulate format, e.g. github for markdown")
    show.set_defaults(func=cmd_baselines_show)
    diff = bsub.add_parser("diff", help="compare two baselines roots (e.g. main's and a re-recording)")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--format", default="github", help="tabulate format (default: github markdown)")
    diff.add_argument("--allow-missing-old", action="store_true", help="treat a missing OLD as empty")
    diff.set_defaults(func=cmd_baselines_diff)

    history_cli.add_parser(sub)
    models_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeperfError as exc:  # every one-line user error of the package (errors.py)
        print(f"edgeperf: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # e.g. -o into a directory that cannot be written
        print(f"edgeperf: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
