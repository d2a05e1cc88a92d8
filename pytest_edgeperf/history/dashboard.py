"""The static trend dashboard (``edgeperf history dashboard -o site/``): plain HTML and inline SVG, no scripts, no
network, so it opens from ``file://`` and on GitHub Pages alike.

``index.html`` lists the newest regressions and improvements across devices and links one page per test; each
test page has, per (device, runtime), a row of trend charts over its runs in order (fps, latency, accuracy, FoM,
memory), change points drawn as a vertical line coloured by kind (a drift: a shaded band from its first step to its
last), and every point's commit and value in its SVG ``<title>`` (the browser's hover tooltip).
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from ..fileio import atomic_write_text
from .changes import IMPROVEMENT, REGRESSION, Analysis, ChangePoint, Filters, Point, SeriesKey, analyse

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: the charts a test page draws, in order, when its series exist (accuracy and FoM beside fps); then any
#: ``fom_*``/``*_pct`` metric not listed
CHART_METRICS = ("fps", "latency_p50_ms", "latency_p90_ms", "top1_pct", "top5_pct", "map50_pct",
                 "fom_top1_per_j", "fom_top5_per_j", "fom_map50_per_j", "energy_per_inference_j", "peak_memory_mb")
COLOURS = {REGRESSION: "#D55E00", IMPROVEMENT: "#009E73", "change": "#999999"}
LINE = "#0072B2"
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 420, 190, 58, 12, 22, 34

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f4f4f4}
.regression{color:#D55E00;font-weight:600}.improvement{color:#009E73;font-weight:600}.muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:10px}.chart{border:1px solid #e4e4e4;border-radius:4px}
code{font-size:12px}a{color:#0072B2}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return str(value)
    digits = max(0, 3 - math.floor(math.log10(abs(value))) - 1)
    return f"{value:,.{min(digits, 6)}f}"


def test_slug(test_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", test_id.split("::", 1)[-1])[:60]
    return f"{readable}-{hashlib.sha1(test_id.encode('utf-8')).hexdigest()[:8]}"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def trend_svg(metric: str, points: list[Point], changes: list[ChangePoint]) -> str:
    """One metric's values over the runs, change points as vertical lines; hover titles give commit and value."""
    values = [p.value for p in points]
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.05 or 1), hi + (abs(hi) * 0.05 or 1)
    span = hi - lo
    lo, hi = lo - span * 0.08, hi + span * 0.08
    n = len(points)
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(i: float) -> float:
        return PAD_L + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [f"<svg class='chart' data-metric='{esc(metric)}' xmlns='http://www.w3.org/2000/svg' width='{W}' "
             f"height='{H}' viewBox='0 0 {W} {H}' role='img'><title>{esc(metric)}</title>",
             f"<text x='{PAD_L}' y='15' font-size='13' font-weight='600'>{esc(metric)}</text>"]
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * (0.08 / 1.16 + frac * 1 / 1.16)
        parts.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>"
                     f"<text x='{PAD_L - 4}' y='{y(v) + 4:.1f}' font-size='10' text-anchor='end' "
                     f"fill='#555'>{esc(fmt(v))}</text>")
    for cp in changes:
        cx = (x(cp.index - 1) + x(cp.index)) / 2
        colour = COLOURS.get(cp.kind, "#999")
        title = (f"<title>{esc(cp.kind)} {cp.change_pct:+.1f}% ({esc(fmt(cp.old_value))} -> "
                 f"{esc(fmt(cp.new_value))}), {esc(cp.where())}, at {esc(cp.commit_range())}"
                 f"{' (acknowledged)' if cp.acknowledged else ''}</title>")
        if cp.is_drift:  # one band from the first step to the last, a dashed line at each end
            ex = (x(cp.last_index - 1) + x(cp.last_index)) / 2
            parts.append(f"<rect class='drift {esc(cp.kind)}' data-id='{esc(cp.id)}' x='{cx:.1f}' y='{PAD_T}' "
                         f"width='{ex - cx:.1f}' height='{H - PAD_B - PAD_T}' fill='{colour}' fill-opacity='0.12'>"
                         f"{title}</rect>")
            parts.append(f"<line x1='{ex:.1f}' x2='{ex:.1f}' y1='{PAD_T}' y2='{H - PAD_B}' stroke='{colour}' "
                         f"stroke-width='2' stroke-dasharray='5 3'>{title}</line>")
        parts.append(
            f"<line class='changepoint {esc(cp.kind)}' data-id='{esc(cp.id)}' x1='{cx:.1f}' x2='{cx:.1f}' "
            f"y1='{PAD_T}' y2='{H - PAD_B}' stroke='{colour}' stroke-width='2' stroke-dasharray='5 3'>{title}</line>")
        for seg_from, seg_to, level in ((_prev_bound(cp, changes), cp.index, cp.old_value),
                                        (cp.last_index, _next_bound(cp, changes, n), cp.new_value)):
            if not cp.normalized:
                parts.append(f"<line x1='{x(seg_from):.1f}' x2='{x(max(seg_to - 1, seg_from)):.1f}' "
                             f"y1='{y(level):.1f}' y2='{y(level):.1f}' stroke='{colour}' stroke-opacity='0.45' "
                             "stroke-width='3'/>")
    coords = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    parts.append(f"<polyline class='series' points='{coords}' fill='none' stroke='{LINE}' stroke-width='1.3'/>")
    r = 2.6 if n <= 80 else 1.8
    for i, p in enumerate(points):
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.created_unix))
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(p.value):.1f}' r='{r}' fill='{LINE}'><title>"
                     f"{esc((p.commit or 'no commit')[:10])} · run {p.run_id} · {when} UTC · {esc(metric)} "
                     f"{esc(fmt(p.value))}</title></circle>")
    first, last = points[0], points[-1]
    parts.append(f"<text x='{PAD_L}' y='{H - 8}' font-size='10' fill='#555'>{esc((first.commit or '?')[:8])}</text>"
                 f"<text x='{W - PAD_R}' y='{H - 8}' font-size='10' fill='#555' text-anchor='end'>"
                 f"{esc((last.commit or '?')[:8])} ({n} runs)</text></svg>")
    return "".join(parts)


def _prev_bound(cp: ChangePoint, changes: list[ChangePoint]) -> int:
    return max([c.last_index for c in changes if c.index < cp.index], default=0)


def _next_bound(cp: ChangePoint, changes: list[ChangePoint], n: int) -> int:
    return min([c.index for c in changes if c.index > cp.index], default=n)


def _ordered_metrics(names: set[str]) -> list[str]:
    first = [m for m in CHART_METRICS if m in names]
    extra = sorted(m for m in names if m not in CHART_METRICS and (m.startswith("fom_") or m.endswith("_pct"))
                   and m not in ("cpu_wait_pct",))
    return first + extra


def change_rows(changes: list[ChangePoint], link: bool) -> str:
    rows = []
    for cp in changes:
        test = esc(cp.key.test_id)
        if link:
            test = f"<a href='tests/{test_slug(cp.key.test_id)}.html'>{test}</a>"
        rows.append(f"<tr><td><code>{cp.id}</code></td><td class='{esc(cp.kind)}'>{esc(cp.kind)}</td><td>{test}</td>"
                    f"<td>{esc(cp.key.device)}</td><td>{esc(cp.key.runtime)}</td><td>{esc(cp.key.metric)}</td>"
                    f"<td>{cp.change_pct:+.1f}%</td><td>{esc(fmt(cp.old_value))} → {esc(fmt(cp.new_value))}</td>"
                    f"<td>{esc(cp.where())}</td><td><code>{esc(cp.commit_range())}</code></td>"
                    f"<td>{'acknowledged' if cp.acknowledged else ''}</td></tr>")
    head = ("<tr><th>id</th><th>kind</th><th>test</th><th>device</th><th>runtime</th><th>metric</th><th>change</th>"
            "<th>level</th><th>where</th><th>commits</th><th></th></tr>")
    return f"<table class='changes'>{head}{''.join(rows)}</table>" if rows else "<p class='muted'>none</p>"


def render_site(analysis: Analysis, out: Path, *, newest: int = 30) -> list[Path]:
    """Write ``index.html`` and ``tests/<slug>.html``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tests").mkdir(exist_ok=True)
    by_test: dict[str, dict[tuple[str, str], dict[str, list[Point]]]] = defaultdict(lambda: defaultdict(dict))
    for key, points in analysis.series.items():
        by_test[key.test_id][(key.device, key.runtime)][key.metric] = points
    changes_by_key: dict[SeriesKey, list[ChangePoint]] = defaultdict(list)
    for cp in analysis.changes:
        changes_by_key[cp.key].append(cp)
    written: list[Path] = []
    for test_id, groups in sorted(by_test.items()):
        body = [f"<p><a href='../index.html'>← all tests</a></p><h1>{esc(test_id)}</h1>"]
        rank = {REGRESSION: 0, IMPROVEMENT: 1}
        test_changes = sorted((cp for cp in analysis.changes if cp.key.test_id == test_id),
                              key=lambda cp: rank.get(cp.kind, 2))  # stable: newest first within a kind
        body.append("<h2>Change points</h2>" + change_rows(test_changes, link=False))
        for (device, runtime), metrics in sorted(groups.items()):
            body.append(f"<h2>{esc(device)} · {esc(runtime)}</h2><div class='charts'>")
            for metric in _ordered_metrics(set(metrics)):
                key = SeriesKey(test_id, device, runtime, metric)
                body.append(trend_svg(metric, metrics[metric], sorted(changes_by_key[key], key=lambda c: c.index)))
            body.append("</div>")
        path = out / "tests" / f"{test_slug(test_id)}.html"
        atomic_write_text(path, _page(test_id, "".join(body)))
        written.append(path)
    devices = sorted({k.device for k in analysis.series})
    runs = {p.run_id for pts in analysis.series.values() for p in pts}
    index = [f"<h1>Performance history</h1><p class='muted'>{len(runs)} runs · {len(by_test)} tests · devices: "
             f"{esc(', '.join(devices) or 'none')} · written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             "</p>"]
    blocking = analysis.blocking()
    if blocking:
        index.append(f"<p class='regression'>{len(blocking)} unacknowledged regression(s) are the newest change of "
                     "their series</p>")
    for kind, title in ((REGRESSION, "Newest regressions"), (IMPROVEMENT, "Newest improvements")):
        shown = [cp for cp in analysis.changes if cp.kind == kind][:newest]
        index.append(f"<h2>{title}</h2>" + change_rows(shown, link=True))
    index.append("<h2>Tests</h2><ul>" + "".join(
        f"<li><a href='tests/{test_slug(t)}.html'>{esc(t)}</a> <span class='muted'>"
        f"({esc(', '.join(sorted({d for d, _ in g})))})</span></li>" for t, g in sorted(by_test.items())) + "</ul>")
    atomic_write_text(out / "index.html", _page("Performance history", "".join(index)))
    written.append(out / "index.html")
    return written


def write_site(engine: Engine, out: Path, filters: Filters | None = None) -> list[Path]:
    return render_site(analyse(engine, filters), Path(out))
