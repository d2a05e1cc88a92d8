"""Inline SVG charts for the HTML report: timeline panels, latency ECDFs and grouped bar charts.

Hand-written SVG rather than a plotting library so the report stays one self-contained file with no
scripts, fonts or network: it must open on a CI artifact viewer and on a laptop with no internet. Every
piece of text that came from a result goes through ``html.escape``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
INVALID_FILL = "#d62728"
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"

WIDTH = 900
LEFT = 78
RIGHT = 24
LOG_BAR_RATIO = 20.0  # bar charts whose largest value exceeds the smallest by this get a log axis
MAX_POINTS = 600  # a sustained run has ~10^4 samples; the SVG stays small by binning beyond this


def esc(text: object) -> str:
    """Escape for both element text and attribute values."""
    return html.escape(str(text), quote=True)


def fmt_num(value: float | None, digits: int = 3) -> str:
    """Short human number: 3 significant digits, no exponent for the ranges a report shows."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1e-3:
        decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{value:.2e}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2, 2.5, 5 x 10^k) covering [lo, hi], so axes read at a glance."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    tick = start
    while tick <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(tick, 12))
        tick += step
    if ticks[-1] < hi:
        ticks.append(round(tick, 12))
    return ticks


class _Scale:
    """Linear (or log10) map from data to pixels."""

    def __init__(self, d0: float, d1: float, p0: float, p1: float, log: bool = False) -> None:
        self.log = log
        if log:
            d0, d1 = math.log10(d0), math.log10(d1)
        self.d0, self.d1, self.p0, self.p1 = d0, d1, p0, p1

    def __call__(self, value: float) -> float:
        if self.log:
            value = math.log10(max(value, 1e-12))
        span = self.d1 - self.d0
        if span == 0:
            return (self.p0 + self.p1) / 2
        return self.p0 + (value - self.d0) / span * (self.p1 - self.p0)


def _svg_open(height: int, title: str, css_class: str) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='{esc(css_class)}' role='img' "
        f"viewBox='0 0 {WIDTH} {height}' width='{WIDTH}' height='{height}' {FONT} font-size='12'>",
        f"<title>{esc(title)}</title>",
        f"<text x='{LEFT}' y='16' font-size='14' font-weight='600' fill='#222'>{esc(title)}</text>",
    ]


def empty_svg(title: str, message: str, css_class: str = "chart empty") -> str:
    """A chart-sized box that says why there is no chart (better than a silently missing figure)."""
    parts = _svg_open(70, title, css_class)
    parts.append(f"<rect x='{LEFT}' y='26' width='{WIDTH - LEFT - RIGHT}' height='36' fill='#f6f6f6' "
                 "stroke='#ccc'/>")
    parts.append(f"<text x='{LEFT + 10}' y='49' fill='#666'>{esc(message)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def _y_axis(parts: list[str], ys: _Scale, ticks: Sequence[float], x0: float, x1: float) -> None:
    for tick in ticks:
        y = ys(tick)
        parts.append(f"<line x1='{x0:.1f}' x2='{x1:.1f}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>")
        parts.append(f"<text x='{x0 - 6:.1f}' y='{y + 4:.1f}' text-anchor='end' fill='#444'>"
                     f"{esc(fmt_num(tick))}</text>")


def _x_axis(parts: list[str], xs: _Scale, ticks: Sequence[float], y: float, label: str) -> None:
    parts.append(f"<line x1='{xs.p0:.1f}' x2='{xs.p1:.1f}' y1='{y:.1f}' y2='{y:.1f}' stroke='#888'/>")
    for tick in ticks:
        x = xs(tick)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y:.1f}' y2='{y + 4:.1f}' stroke='#888'/>")
        parts.append(f"<text x='{x:.1f}' y='{y + 16:.1f}' text-anchor='middle' fill='#444'>"
                     f"{esc(fmt_num(tick))}</text>")
    parts.append(f"<text x='{(xs.p0 + xs.p1) / 2:.1f}' y='{y + 32:.1f}' text-anchor='middle' fill='#222'>"
                 f"{esc(label)}</text>")


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade covering [lo, hi] (lo > 0), for distributions with a long tail."""
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        ticks += [m * 10.0 ** exponent for m in (1, 2, 5)]
    below = [t for t in ticks if t <= lo]
    above = [t for t in ticks if t >= hi]
    start = below[-1] if below else ticks[0]
    end = above[0] if above else ticks[-1]
    return [round(t, 12) for t in ticks if start <= t <= end]


def _polyline(points: Sequence[tuple[float, float]], colour: str, width: float = 1.6, dash: str = "") -> str:
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dash_attr = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<polyline points='{coords}' fill='none' stroke='{colour}' stroke-width='{width}'"
            f" stroke-linejoin='round'{dash_attr}/>")


def _legend(parts: list[str], items: Sequence[tuple[str, str, str]], y: float) -> None:
    """items: (label, colour, kind) with kind 'line', 'dash', 'box' (translucent), 'solid' or 'cross'."""
    x = float(LEFT)
    for label, colour, kind in items:
        if kind in ("box", "solid"):
            opacity = "1" if kind == "solid" else "0.35"
            parts.append(f"<rect x='{x:.1f}' y='{y - 9:.1f}' width='14' height='10' fill='{colour}' "
                         f"fill-opacity='{opacity}'/>")
        elif kind == "cross":
            parts.append(f"<text x='{x + 2:.1f}' y='{y:.1f}' fill='{colour}' font-weight='700'>×</text>")
        else:
            dash = " stroke-dasharray='6 3'" if kind == "dash" else ""
            parts.append(f"<line x1='{x:.1f}' x2='{x + 18:.1f}' y1='{y - 4:.1f}' y2='{y - 4:.1f}' "
                         f"stroke='{colour}' stroke-width='2.5'{dash}/>")
        parts.append(f"<text x='{x + 22:.1f}' y='{y:.1f}' fill='#222'>{esc(label)}</text>")
        x += 34 + 7.0 * len(label)


# --- timeline ------------------------------------------------------------------------------------------
@dataclass
class Panel:
    """One stacked panel of a timeline: a quantity with its unit in the label, over seconds."""

    label: str
    points: list[tuple[float, float]]
    colour: str = PALETTE[0]
    marks: list[tuple[float, float]] = field(default_factory=list)  # drawn as red crosses (invalid samples)
    band: list[tuple[float, float, float]] = field(default_factory=list)  # (x, lo, hi) shaded range


def bin_series(points: Sequence[tuple[float, float]], max_points: int = MAX_POINTS
               ) -> tuple[list[tuple[float, float]], list[tuple[float, float, float]]]:
    """Median per time bin plus the (min, max) band, so thousands of samples still show spread and drift."""
    if len(points) <= max_points:
        return list(points), []
    xs = [p[0] for p in points]
    lo, hi = min(xs), max(xs)
    width = (hi - lo) / max_points or 1.0
    bins: dict[int, list[float]] = {}
    for x, y in points:
        bins.setdefault(min(max_points - 1, int((x - lo) / width)), []).append(y)
    line, band = [], []
    for index in sorted(bins):
        values = sorted(bins[index])
        centre = lo + (index + 0.5) * width
        line.append((centre, values[len(values) // 2]))
        band.append((centre, values[0], values[-1]))
    return line, band


def timeline_svg(panels: Sequence[Panel], invalid_spans_s: Sequence[tuple[float, float]],
                 title: str, x_label: str = "time since first timed sample (s)") -> str:
    """Stacked panels on one time axis (the hardware-metrics correlation study, Fig. 1); spans where samples were
    invalid are shaded red."""
    panels = [p for p in panels if p.points]
    if not panels:
        return empty_svg(title, "no timeline readings (sensors unavailable on this device)",
                         css_class="chart timeline empty")
    panel_h, gap, top = 96, 26, 44
    height = top + len(panels) * (panel_h + gap) + 36
    all_x = [x for p in panels for x, _ in p.points] + [x for p in panels for x, _ in p.marks]
    all_x += [v for span in invalid_spans_s for v in span]
    x_ticks = nice_ticks(min(0.0, *all_x), max(all_x), 8)
    xs = _Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT)
    parts = _svg_open(height, title, "chart timeline")
    legend = [("invalid samples", INVALID_FILL, "box")] if invalid_spans_s else []
    if any(p.marks for p in panels):
        legend.append(("invalid sample", INVALID_FILL, "cross"))
    if any(p.band for p in panels):
        legend.append(("min–max per bin", "#888", "box"))
    _legend(parts, legend, 34)
    for index, panel in enumerate(panels):
        y_top = top + index * (panel_h + gap) + gap / 2
        y_bot = y_top + panel_h
        values = [y for _, y in panel.points] + [y for _, y in panel.marks]
        values += [v for _, lo, hi in panel.band for v in (lo, hi)]
        y_ticks = nice_ticks(min(values), max(values), 3)
        ys = _Scale(y_ticks[0], y_ticks[-1], y_bot, y_top)
        parts.append(f"<g class='panel'><title>{esc(panel.label)}</title>")
        parts.append(f"<rect x='{LEFT}' y='{y_top:.1f}' width='{WIDTH - LEFT - RIGHT}' height='{panel_h}' "
                     "fill='#fff' stroke='#ccc'/>")
        for start, end in invalid_spans_s:
            x0, x1 = xs(start), xs(end)
            parts.append(f"<rect class='invalid' x='{x0:.1f}' y='{y_top:.1f}' "
                         f"width='{max(1.5, x1 - x0):.1f}' height='{panel_h}' fill='{INVALID_FILL}' "
                         "fill-opacity='0.15'/>")
        _y_axis(parts, ys, y_ticks, LEFT, WIDTH - RIGHT)
        if panel.band:
            upper = [(xs(x), ys(hi)) for x, _, hi in panel.band]
            lower = [(xs(x), ys(lo)) for x, lo, _ in reversed(panel.band)]
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in upper + lower)
            parts.append(f"<polygon points='{coords}' fill='{panel.colour}' fill-opacity='0.18' "
                         "stroke='none'/>")
        if len(panel.points) == 1:
            x, y = panel.points[0]
            parts.append(f"<circle cx='{xs(x):.1f}' cy='{ys(y):.1f}' r='3' fill='{panel.colour}'/>")
        else:
            parts.append(_polyline([(xs(x), ys(y)) for x, y in panel.points], panel.colour))
        for x, y in panel.marks:
            parts.append(f"<text class='invalid-mark' x='{xs(x):.1f}' y='{ys(y) + 4:.1f}' "
                         f"text-anchor='middle' fill='{INVALID_FILL}' font-weight='700'>×</text>")
        parts.append(f"<text x='{LEFT + 6}' y='{y_top + 14:.1f}' fill='{panel.colour}' font-weight='600'>"
                     f"{esc(panel.label)}</text></g>")
    _x_axis(parts, xs, x_ticks, top + len(panels) * (panel_h + gap) - gap / 2 + 4, x_label)
    parts.append("</svg>")
    return "\n".join(parts)


# --- latency distribution --------------------------------------------------------------------------------
@dataclass
class Distribution:
    """One ECDF curve: its legend label and raw values (ms)."""

    label: str
    values_ms: list[float]
    colour: str = PALETTE[0]
    dashed: bool = False


def _ecdf_points(values: Sequence[float], max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    ordered = sorted(values)
    n = len(ordered)
    stride = max(1, n // max_points)
    points: list[tuple[float, float]] = []
    previous = 0.0
    for i in range(0, n, stride):
        x = ordered[i]
        points.append((x, previous))
        previous = (i + 1) / n
        points.append((x, previous))
    points.append((ordered[-1], 1.0))
    return points


def ecdf_svg(curves: Sequence[Distribution], title: str, x_label: str = "latency per sample (ms)") -> str:
    """Empirical CDFs: a shift right is a slowdown, a longer right tail is jitter; p50/p90 are gridlines."""
    curves = [c for c in curves if c.values_ms]
    if not curves:
        return empty_svg(title, "no valid latency samples", css_class="chart latency empty")
    height, top, bottom = 270, 44, 210
    everything = sorted(v for c in curves for v in c.values_ms)
    # Clip the far tail at the 99.5th percentile so one stall does not squash the curve; a log axis when
    # the spread is wide (sub-ms models with ms stalls) so the body of the distribution stays readable.
    lo, hi = everything[0], everything[min(len(everything) - 1, int(len(everything) * 0.995))]
    log = lo > 0 and hi / lo > 20
    x_ticks = log_ticks(lo, hi) if log else nice_ticks(lo, hi, 8)
    xs = _Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT, log=log)
    if log:
        x_label += " — log scale"
    ys = _Scale(0.0, 1.0, bottom, top)
    parts = _svg_open(height, title, "chart latency")
    parts.append(f"<rect x='{LEFT}' y='{top}' width='{WIDTH - LEFT - RIGHT}' height='{bottom - top}' "
                 "fill='#fff' stroke='#ccc'/>")
    _y_axis(parts, ys, [0.0, 0.25, 0.5, 0.75, 1.0], LEFT, WIDTH - RIGHT)
    for q, label in ((0.5, "p50"), (0.9, "p90")):
        parts.append(f"<text x='{WIDTH - RIGHT - 4}' y='{ys(q) - 3:.1f}' text-anchor='end' fill='#888'>"
                     f"{label}</text>")
    parts.append(f"<text transform='translate(16 {(top + bottom) / 2:.0f}) rotate(-90)' text-anchor='middle' "
                 "fill='#222'>fraction of samples ≤ x</text>")
    for curve in curves:
        clipped = [(min(max(x, x_ticks[0]), x_ticks[-1]), y) for x, y in _ecdf_points(curve.values_ms)]
        parts.append(_polyline([(xs(x), ys(y)) for x, y in clipped], curve.colour, 2.0,
                               "6 3" if curve.dashed else ""))
    _x_axis(parts, xs, x_ticks, bottom, x_label)
    _legend(parts, [(c.label, c.colour, "dash" if c.dashed else "line") for c in curves], 34)
    parts.append("</svg>")
    return "\n".join(parts)


# --- grouped bars ----------------------------------------------------------------------------------------
def bar_chart_svg(groups: Sequence[str], series: Sequence[str], values: dict[tuple[str, str], float],
                  title: str, y_label: str, empty_message: str = "") -> str:
    """Bars per group (model) and series (framework), as in the Pi 3 framework comparison's Figs. 2 and 4;
    missing pairs: '–'."""
    present = [v for v in values.values() if v is not None and math.isfinite(v)]
    if not groups or not series or not present:
        message = empty_message or f"no {y_label} values in these results"
        return empty_svg(title, message, css_class="chart bars empty")
    height, top, bottom = 300, 48, 236
    # A linear axis hides a 3 fps bar next to a 3000 fps one: beyond a 10x spread the axis is logarithmic
    # (bars start at the decade below the smallest value) and says so; every bar also carries its value.
    log = min(present) > 0 and max(present) / min(present) > LOG_BAR_RATIO
    if log:
        y_ticks = log_ticks(10.0 ** math.floor(math.log10(min(present))), max(present) * 1.5)
        if len(y_ticks) > 7:  # more than two decades: one tick per decade keeps the labels apart
            y_ticks = [v for v in y_ticks if math.log10(v).is_integer()] + [y_ticks[-1]]
            y_ticks = sorted(set(y_ticks))
        y_label += " — log scale"
    else:
        y_ticks = nice_ticks(0.0, max(present) * 1.08, 5)  # headroom for the value labels
    ys = _Scale(y_ticks[0], y_ticks[-1], bottom, top, log=log)
    parts = _svg_open(height, title, "chart bars" + (" log" if log else ""))
    _legend(parts, [(s, PALETTE[i % len(PALETTE)], "solid") for i, s in enumerate(series)], 34)
    _y_axis(parts, ys, y_ticks, LEFT, WIDTH - RIGHT)
    parts.append(f"<text transform='translate(16 {(top + bottom) / 2:.0f}) rotate(-90)' text-anchor='middle' "
                 f"fill='#222'>{esc(y_label)}</text>")
    group_w = (WIDTH - LEFT - RIGHT) / len(groups)
    bar_w = min(48.0, group_w * 0.8 / len(series))
    for gi, group in enumerate(groups):
        centre = LEFT + group_w * (gi + 0.5)
        first = centre - bar_w * len(series) / 2
        for si, name in enumerate(series):
            x = first + si * bar_w
            value = values.get((group, name))
            if value is None or not math.isfinite(value):
                parts.append(f"<text x='{x + bar_w / 2:.1f}' y='{bottom - 4}' text-anchor='middle' "
                             "fill='#999'>–</text>")
                continue
            y = ys(value)
            colour = PALETTE[si % len(PALETTE)]
            parts.append(f"<rect x='{x + 1:.1f}' y='{y:.1f}' width='{bar_w - 2:.1f}' "
                         f"height='{bottom - y:.1f}' fill='{colour}'><title>{esc(group)} / {esc(name)}: "
                         f"{esc(fmt_num(value))} {esc(y_label)}</title></rect>")
            parts.append(f"<text x='{x + bar_w / 2:.1f}' y='{y - 3:.1f}' text-anchor='middle' font-size='10' "
                         f"fill='#333'>{esc(fmt_num(value))}</text>")
        label = group if len(group) <= 28 else group[:26] + "…"
        parts.append(f"<text x='{centre:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#222'>"
                     f"<title>{esc(group)}</title>{esc(label)}</text>")
    parts.append(f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{bottom}' y2='{bottom}' stroke='#888'/>")
    parts.append("</svg>")
    return "\n".join(parts)
