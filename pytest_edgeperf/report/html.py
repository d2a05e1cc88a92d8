"""The self-contained HTML report (``--edgeperf-html`` and ``edgeperf report``/``merge --format html``).

One file with inline CSS and inline SVG, no scripts, fonts or CDNs, so it opens from a CI artifact with no
network. It shows what the Raspberry Pi studies behind the suites used to communicate: the results table with
colour-coded verdicts, per suite the fps and FoM bars per model x framework (the Pi 3 framework comparison, Figs. 2
and 4), and per test the timeline of clock, temperature, CPU and power with invalid samples shaded (the
hardware-metrics correlation study, Fig. 1) and the latency distribution against the baseline's raw samples.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_edgeperf.fileio import atomic_write_text
from pytest_edgeperf.report import charts, outcome
from pytest_edgeperf.report.charts import PALETTE, Distribution, Panel, esc
from pytest_edgeperf.report.markdown import cross_device_rows, device_name, fmt_value, verdict_label

# (summary key, column header) for the results table; units in the header.
TABLE_COLUMNS = (
    ("fps", "fps"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p90_ms", "p90 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("peak_memory_mb", "peak MB"),
    ("top1_pct", "top-1 %"),
    ("power_mean_w", "power W"),
    ("energy_per_inference_j", "J / inference"),
    ("fom_top1_per_j", "FoM top-1 / J"),
)
FOM_KEYS = ("fom_top1_per_j", "fom_top5_per_j", "fom_map50_per_j")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222;
       max-width: 1360px; font-size: 14px; line-height: 1.4; }
h1 { font-size: 22px; margin: 0 0 4px 0; } h2 { font-size: 18px; margin-top: 32px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px 0; }
.meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 13px; }
.scroll { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ddd; padding: 3px 5px; text-align: right; white-space: nowrap; }
th { white-space: normal; } table.results td.text { white-space: nowrap; }
table.results td:nth-child(1), table.results td:nth-child(4) { white-space: normal; overflow-wrap: anywhere; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; white-space: normal; }
tr:nth-child(even) td { background: #fafafa; }
.v { font-weight: 600; border-radius: 3px; padding: 1px 6px; }
.v-PASS { background: #d9f2e0; color: #14532d; } .v-REGRESSION { background: #fbd5d5; color: #7f1d1d; }
.v-IMPROVED { background: #dbeafe; color: #1e3a8a; } .v-INCONCLUSIVE { background: #fef3c7; color: #78350f; }
.v-NEW { background: #eee; color: #333; } .v-ERROR { background: #7f1d1d; color: #fff; }
.v-FAIL { background: #b91c1c; color: #fff; } .v-NO_BASELINE { background: #fbd5d5; color: #7f1d1d; }
section.test { border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px 16px 12px 16px; margin: 18px 0; }
.warn { color: #7f1d1d; } .note { color: #555; font-size: 13px; } .reason { margin: 4px 0; font-weight: 600; }
details.info { color: #555; margin: 2px 0; } details.info summary { cursor: pointer; }
ul.note { margin: 4px 0; padding-left: 20px; } details.note { margin: 6px 0; }
svg.chart { display: block; margin: 10px 0; max-width: 100%; height: auto; }
a { color: #0b5cad; }
"""


def _verdict_html(label: str) -> str:
    known = ("PASS", "REGRESSION", "IMPROVED", "INCONCLUSIVE", "NEW", "ERROR", "FAIL", "NO_BASELINE")
    cls = label if label in known else "none"
    return f"<span class='v v-{cls}'>{esc(label)}</span>"


def _table(headers: list[str], rows: Iterable[list[str]], text_columns: int = 0, css_class: str = "") -> str:
    """Cells are pre-rendered HTML; the first ``text_columns`` columns are left-aligned text."""
    out = [f"<div class='scroll'><table class='{esc(css_class)}'><thead><tr>"]
    out += [f"<th class='{'text' if i < text_columns else ''}'>{esc(h)}</th>" for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='{'text' if i < text_columns else ''}'>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _results(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in payload.get("results") or [] if isinstance(r, dict)]


def suite_of(test_id: str) -> str:
    """The suite a test belongs to: its module path (the part of the node id before '::')."""
    return test_id.split("::", 1)[0] if "::" in test_id else "(no module)"


def result_anchor(prefix: str, index: int) -> str:
    return f"{prefix}t{index}"


# --- per-test charts ------------------------------------------------------------------------------------
def invalid_spans(samples: dict[str, Any], t0: float) -> list[tuple[float, float]]:
    """Time spans (relative to t0) covered by consecutive invalid samples, merged so the SVG stays small."""
    starts = samples.get("start_s") or []
    latencies = samples.get("latency_s") or []
    valid = samples.get("valid") or []
    spans: list[tuple[float, float]] = []
    for start, latency, ok in zip(starts, latencies, valid, strict=False):
        if ok or start is None:
            continue
        begin, end = float(start) - t0, float(start) - t0 + float(latency or 0.0)
        if spans and begin - spans[-1][1] <= max(0.05, 0.5 * float(latency or 0.0)):
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((begin, end))
    return spans


def _time_origin(result: dict[str, Any]) -> float:
    samples = result.get("samples") or {}
    candidates = [result.get("window_start_s")]
    candidates.append((samples.get("start_s") or [None])[0])
    candidates.append(((result.get("timeline") or [{}])[0] or {}).get("t_s"))
    present = [float(c) for c in candidates if isinstance(c, int | float)]
    return min(present) if present else 0.0


def timeline_chart(result: dict[str, Any], title: str) -> str:
    """Clock, temperature, CPU %, power and per-sample latency over the timed window."""
    t0 = _time_origin(result)
    points = [p for p in result.get("timeline") or [] if isinstance(p, dict) and p.get("t_s") is not None]
    panels = []
    cores = (result.get("environment") or {}).get("cpu_count")
    cpu_label = "worker CPU (% of one core" + (f"; {cores} cores = {int(cores) * 100}%)" if cores else ")")
    for key, label, colour in (("freq_ghz", "ARM clock (GHz)", PALETTE[0]),
                               ("temp_c", "SoC temperature (°C)", PALETTE[5]),
                               ("cpu_percent", cpu_label, PALETTE[2]),
                               ("power_w", "power (W)", PALETTE[3])):
        series = [(float(p["t_s"]) - t0, float(p[key])) for p in points if p.get(key) is not None]
        if key == "cpu_percent" and isinstance(cores, int) and cores > 0:
            # results from before the sampler's fix hold tick-rounding artefacts above what the cores can give
            series = [(x, y) for x, y in series if y <= cores * 100.0 + 1e-6]
        panels.append(Panel(label, series, colour))
    samples = result.get("samples") or {}
    starts = samples.get("start_s") or []
    latencies = samples.get("latency_s") or []
    valid = samples.get("valid") or [True] * len(latencies)
    lat_points = [(float(s) - t0, float(v) * 1e3) for s, v in zip(starts, latencies, strict=False)]
    good = [p for p, ok in zip(lat_points, valid, strict=False) if ok]
    bad = [p for p, ok in zip(lat_points, valid, strict=False) if not ok]
    line, band = charts.bin_series(good)
    if len(bad) > charts.MAX_POINTS:  # shading already shows them; crosses would be a solid smear
        bad = bad[:: len(bad) // charts.MAX_POINTS + 1]
    panels.append(Panel("latency per sample (ms)", line, PALETTE[4], marks=bad, band=band))
    return charts.timeline_svg(panels, invalid_spans(samples, t0), title)


def baseline_latencies_ms(entry: dict[str, Any] | None) -> list[float]:
    """Raw baseline latencies in ms from a baseline entry's JSON (``samples.latency_ms``) or a Result's."""
    if not isinstance(entry, dict):
        return []
    samples = entry.get("samples")
    if isinstance(samples, dict) and samples.get("latency_ms"):  # BaselineEntry.to_json(): valid only
        return [float(v) for v in samples["latency_ms"]]
    if isinstance(samples, dict) and samples.get("latency_s"):
        lat = samples["latency_s"]
        valid = samples.get("valid") or [True] * len(lat)
        return [float(v) * 1e3 for v, ok in zip(lat, valid, strict=False) if ok]
    if entry.get("latency_s"):
        return [float(v) * 1e3 for v in entry["latency_s"]]
    if entry.get("latency_ms"):
        return [float(v) for v in entry["latency_ms"]]
    return []


def find_baseline(baselines: dict[str, dict] | None, result: dict[str, Any]) -> dict[str, Any] | None:
    """Baselines are keyed by test id (the pytest node id, as ``BaselineStore.lookup`` takes it)."""
    if not baselines:
        return None
    return baselines.get(str(result.get("test_id", "")))


def latency_chart(result: dict[str, Any], baseline: dict[str, Any] | None, title: str) -> str:
    samples = result.get("samples") or {}
    lat = samples.get("latency_s") or []
    valid = samples.get("valid") or [True] * len(lat)
    current = [float(v) * 1e3 for v, ok in zip(lat, valid, strict=False) if ok]
    curves = [Distribution(f"this run (n={len(current)})", current, PALETTE[0])]
    base = baseline_latencies_ms(baseline)
    if base:
        curves.append(Distribution(f"baseline (n={len(base)})", base, "#555", dashed=True))
    return charts.ecdf_svg(curves, title)


# --- sections ------------------------------------------------------------------------------------------
def shape_text(result: dict[str, Any]) -> str:
    """The input shape the worker fed (``1x3x224x224``), '–' when the result does not say."""
    shape = (result.get("environment") or {}).get("input_shape")
    return "x".join(map(str, shape)) if isinstance(shape, list) and shape else "–"


def _results_table(results: list[dict[str, Any]], prefix: str) -> str:
    # The verdict goes up front: on a narrow screen the metric columns scroll, the verdict must not. A metric no
    # result has (power on a host without a meter) gets no column: the page header says what was not measured.
    columns = [(key, header) for key, header in TABLE_COLUMNS
               if any((r.get("summary") or {}).get(key) is not None for r in results)]
    headers = ["test", "framework", "verdict", "model", "input", "valid / all"] + [h for _, h in columns]
    rows = []
    for index, result in enumerate(results):
        summary = result.get("summary") or {}
        valid, invalid = result.get("valid_count"), result.get("invalid_count")
        counts = "–" if valid is None else f"{valid} / {int(valid) + int(invalid or 0)}"
        test_id = str(result.get("test_id", "?"))
        short = test_id.split("::", 1)[-1]  # the suite heading and the title carry the module
        link = f"<a href='#{esc(result_anchor(prefix, index))}' title='{esc(test_id)}'>{esc(short)}</a>"
        verdict = _verdict_html(verdict_label(result))
        why = outcome.reason(result)
        if why:
            verdict = f"<span title='{esc(why)}'>{verdict}</span>"
        rows.append([link, esc(result.get("framework", "")), verdict, esc(result.get("model", "")),
                     esc(shape_text(result)), esc(counts)]
                    + [esc(fmt_value(summary.get(key))) for key, _ in columns])
    return _table(headers, rows, text_columns=4, css_class="results")


def _suite_charts(results: list[dict[str, Any]], heading_level: int = 2) -> str:
    """Per suite: fps and FoM bars with models as groups and frameworks as bars."""
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        if result.get("status") != "error":
            by_suite.setdefault(suite_of(str(result.get("test_id", ""))), []).append(result)
    out = []
    for suite, members in by_suite.items():
        pairs = [(str(r.get("model") or "?"), str(r.get("framework") or "?")) for r in members]
        duplicated = len(set(pairs)) < len(pairs)
        groups: list[str] = []
        frameworks: list[str] = []
        fps: dict[tuple[str, str], float] = {}
        fom: dict[tuple[str, str], float] = {}
        fom_key = next((k for k in FOM_KEYS for r in members if k in (r.get("summary") or {})), FOM_KEYS[0])
        for result, (model, framework) in zip(members, pairs, strict=True):
            group = model
            if duplicated:  # variants of one model (threads, optimisations): one group per test
                group = f"{model} · {str(result.get('test_id', '')).split('::')[-1]}"
            if group not in groups:
                groups.append(group)
            if framework not in frameworks:
                frameworks.append(framework)
            summary = result.get("summary") or {}
            if summary.get("fps") is not None:
                fps[(group, framework)] = float(summary["fps"])
            if summary.get(fom_key) is not None:
                fom[(group, framework)] = float(summary[fom_key])
        out.append(f"<h{heading_level}>Suite {esc(suite)}</h{heading_level}>")
        fps_title = f"Throughput per model and framework — {suite}"
        out.append(charts.bar_chart_svg(groups, frameworks, fps, fps_title, "fps (inferences / s)"))
        if fom:  # without power there is no FoM: no empty box per suite, one line says why (fom_note)
            fom_title = f"Figure of Merit ({fom_key.removeprefix('fom_').removesuffix('_per_j')}) — {suite}"
            out.append(charts.bar_chart_svg(groups, frameworks, fom, fom_title, "correct inferences / J"))
    return "\n".join(out)


def fom_note(results: list[dict[str, Any]]) -> str:
    """Said once per report: why some or all suites have no Figure-of-Merit chart."""
    measured = [r for r in results if r.get("status") != "error"]
    suites = list(dict.fromkeys(suite_of(str(r.get("test_id", ""))) for r in measured))
    with_fom = {suite_of(str(r.get("test_id", ""))) for r in measured
                if any((r.get("summary") or {}).get(k) is not None for k in FOM_KEYS)}
    without = [s for s in suites if s not in with_fom]
    if not without:
        return ""
    has_power = any((r.get("summary") or {}).get("power_mean_w") is not None for r in measured)
    why = ("no test measured power (--edgeperf-power-meter)" if not has_power
           else "those tests lack a power reading or an accuracy metric")
    where = "" if len(without) == len(suites) else f" for {', '.join(without)}"
    return (f"<p class='note'>No Figure-of-Merit chart{esc(where)}: correct inferences per joule needs power and "
            f"accuracy from the same test, and {esc(why)}.</p>")


def _verdict_table(verdicts: list[dict[str, Any]]) -> str:
    headers = ["metric", "baseline", "current", "change %", "p-value", "tolerance", "verdict", "note"]
    rows = []
    for v in verdicts:
        if not isinstance(v, dict):
            continue
        change = v.get("change_pct")
        change_text = "–" if change is None else f"{float(change):+.1f}"
        tolerance = v.get("tolerance")
        rows.append([esc(v.get("metric", "")), esc(fmt_value(v.get("baseline"))),
                     esc(fmt_value(v.get("current"))), esc(change_text), esc(fmt_value(v.get("p_value"))),
                     esc("–" if tolerance is None else tolerance),
                     _verdict_html(str(v.get("verdict", ""))), esc(v.get("note", ""))])
    return _table(headers, rows, text_columns=1, css_class="verdicts")


def _limits_table(limits: list[dict[str, Any]]) -> str:
    rows = [[esc(c.get("metric", "")), esc(f"{c.get('op', '')} {fmt_value(c.get('limit'))}"),
             esc("not measured" if c.get("measured") is None else fmt_value(c.get("measured"))),
             _verdict_html("PASS" if c.get("verdict") == "PASS" else "FAIL")] for c in limits]
    return _table(["limit on", "limit", "measured", "verdict"], rows, text_columns=1, css_class="limits")


def _notes_html(notes: list[str], page_level: set[str]) -> str:
    """A test's notes minus what the page header already says; many notes fold into <details> (no JS)."""
    own = [str(n) for n in notes if str(n) not in page_level]
    if not own:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in own)
    if len(own) <= 3:
        return f"<ul class='note'>{items}</ul>"
    return f"<details class='note'><summary>{len(own)} notes</summary><ul>{items}</ul></details>"


def _test_section(result: dict[str, Any], anchor: str, baselines: dict[str, dict] | None,
                  page_level: set[str] | None = None) -> str:
    test_id = str(result.get("test_id", "?"))
    framework = str(result.get("framework", "?"))
    out = [f"<section class='test' id='{esc(anchor)}'>",
           f"<h3>{esc(test_id)} [{esc(framework)}] {_verdict_html(verdict_label(result))}</h3>",
           f"<p class='meta'>model {esc(result.get('model', '?'))} · "
           f"device {esc(result.get('device', '?'))} · "
           f"input {esc(shape_text(result))} · "
           f"{esc(result.get('threads', '?'))} thread(s) · status {esc(result.get('status', '?'))}"
           + (f" — {esc(result['status_reason'])}" if result.get("status_reason") else "") + "</p>"]
    why = outcome.reason(result)
    if why:
        css = "reason warn" if outcome.is_failing(result) else "reason"
        out.append(f"<p class='{css}'>{esc(verdict_label(result))}: {esc(why)}</p>")
    reasons = {k: v for k, v in (result.get("invalid_reasons") or {}).items() if v}
    if reasons:
        text = ", ".join(f"{k}: {v}" for k, v in reasons.items())
        out.append(f"<p class='warn'>Invalid samples (excluded from every figure): {esc(text)}</p>")
    out.append(_notes_html(result.get("notes") or [], page_level or set()))
    limits = [c for c in result.get("limits") or [] if isinstance(c, dict)]
    if limits:
        out.append(_limits_table(limits))
    if result.get("verdicts"):
        out.append(_verdict_table(result["verdicts"]))
    if result.get("status") != "error":
        out.append(timeline_chart(result, f"Timeline — {test_id} [{framework}]"))
        baseline = find_baseline(baselines, result)
        out.append(latency_chart(result, baseline, f"Latency distribution (ECDF) — {test_id} [{framework}]"))
    out.append("</section>")
    return "\n".join(out)


def _device_header(payload: dict[str, Any]) -> str:
    device = payload.get("device") or {}
    env = payload.get("environment") or {}
    board = device.get("model") or "unknown board"
    out = [f"<p class='meta'>Device <b>{esc(device_name(payload))}</b> — {esc(board)}"
           f" · Python {esc(env.get('python') or '?')} · {esc(env.get('machine') or '?')} · kernel "
           f"{esc(env.get('kernel') or '?')} · commit {esc(env.get('git_commit') or 'unknown')}</p>"]
    if env.get("cpu"):
        out.append(f"<p class='meta'>CPU: {esc(env['cpu'])}</p>")
    created = payload.get("created_unix")
    if isinstance(created, int | float):
        stamp = _dt.datetime.fromtimestamp(created, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out.append(f"<p class='meta'>Recorded {esc(stamp)} by {esc(payload.get('tool', '?'))} "
                   f"{esc(payload.get('version', ''))}</p>")
    unavailable = [str(u) for u in device.get("unavailable") or []]
    if unavailable:  # an ordinary host has no such sensors: information, not an error
        names = ", ".join(dict.fromkeys(u.split(":", 1)[0].strip() for u in unavailable))
        items = "".join(f"<li>{esc(u)}</li>" for u in unavailable)
        out.append(f"<details class='info unavailable'><summary>Not measured on this device: {esc(names)}"
                   f"</summary><ul class='note'>{items}</ul></details>")
    return "\n".join(out)


def _device_body(payload: dict[str, Any], baselines: dict[str, dict] | None, prefix: str,
                 level: int = 2) -> str:
    results = _results(payload)
    if not results:
        return "<p>No results.</p>"
    out = [f"<h{level}>Results</h{level}>", _results_table(results, prefix), fom_note(results),
           _suite_charts(results, level)]
    out.append(f"<h{level}>Per test</h{level}>")
    device = payload.get("device") or {}
    page_level = {str(u) for u in device.get("unavailable") or []}
    out += [_test_section(r, result_anchor(prefix, i), baselines, page_level) for i, r in enumerate(results)]
    return "\n".join(out)


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def render_html(payload: dict[str, Any], baselines: dict[str, dict] | None = None) -> str:
    """The report of one device's run as an HTML string."""
    title = f"pytest-edgeperf report — {device_name(payload)}"
    body = f"<h1>{esc(title)}</h1>\n{_device_header(payload)}\n{_device_body(payload, baselines, 'd0')}"
    return _page(title, body)


def render_merged_html(payloads: list[dict[str, Any]], sources: list[str] | None = None) -> str:
    """Several devices' runs: the cross-device table first, then each file's own report.

    ``sources`` (the files' names) tell two runs of one device apart, as in ``edgeperf merge``.
    """
    devices, headers, rows = cross_device_rows(payloads, sources)
    title = f"pytest-edgeperf results — {', '.join(devices) or 'no devices'}"
    verdict_columns = {i for i, h in enumerate(headers) if h.endswith(" verdict")}
    html_rows = [[_verdict_html(c) if i in verdict_columns else esc(c) for i, c in enumerate(row)]
                 for row in rows]
    out = [f"<h1>{esc(title)}</h1>", "<h2>Across devices</h2>", _table(headers, html_rows, text_columns=2)]
    for index, (payload, column) in enumerate(zip(payloads, devices, strict=True)):
        out.append(f"<h2>Device {esc(column)}</h2>")
        out.append(_device_header(payload))
        out.append(_device_body(payload, None, f"d{index}", level=3))
    return _page(title, "\n".join(out))


def write_text_atomic(path: Path, text: str) -> None:
    """Readers never see half a report (the shared atomic writer; creates the directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def write_html_report(payload: dict, path: Path, baselines: dict[str, dict] | None = None) -> None:
    """Write the one-device report; ``baselines`` maps test id to ``BaselineEntry.to_json()`` (optional)."""
    write_text_atomic(Path(path), render_html(payload, baselines))


def write_merged_html_report(payloads: list[dict], path: Path, sources: list[str] | None = None) -> None:
    """Write the cross-device report (``edgeperf merge --format html``)."""
    write_text_atomic(Path(path), render_merged_html(payloads, sources))
