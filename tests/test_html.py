"""Tests for the HTML report: structure, self-containment, escaping, charts; no browser needed.

``make_payload`` builds a results payload from real ``Result`` objects filled with seeded synthetic data
(test input, not a measurement), the same shape the plugin writes with ``--edgeperf-json``.
"""

from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from pytest_edgeperf.report import charts
from pytest_edgeperf.report.html import (
    invalid_spans,
    render_html,
    render_merged_html,
    write_html_report,
)
from pytest_edgeperf.result import Result, Samples, TimelinePoint

MODELS = ("mobilenet_v1", "squeezenet")
FRAMEWORKS = ("onnxruntime", "litert", "opencv")


def make_result(test_id: str, framework: str, model: str, device: str, seed: int, n: int = 200,
                invalid_at: tuple[int, int] | None = (60, 80), verdict: str = "PASS",
                with_power: bool = True) -> Result:
    rng = np.random.default_rng(seed)
    latency_s = rng.lognormal(np.log(0.02 + 0.01 * (seed % 3)), 0.1, n)
    start_s = 100.0 + np.concatenate([[0.0], np.cumsum(latency_s)[:-1]])
    valid = [True] * n
    if invalid_at:
        for i in range(*invalid_at):
            valid[i] = False
    timeline = []
    for t in np.arange(start_s[0], start_s[-1], 0.25):
        throttled = 0x4 if invalid_at and start_s[invalid_at[0]] <= t <= start_s[invalid_at[1]] else 0
        timeline.append(TimelinePoint(
            t_s=float(t), freq_ghz=0.6 if throttled else 1.2, temp_c=float(50 + (t - 100) * 2),
            throttled=throttled, cpu_percent=float(rng.uniform(150, 200)),
            power_w=float(rng.uniform(2.5, 3.5)) if with_power else None))
    result = Result(test_id=test_id, framework=framework, model=model, device=device, threads=2,
                    load_time_s=0.3, window_start_s=float(start_s[0]),
                    samples=Samples(start_s=start_s.tolist(), latency_s=latency_s.tolist(),
                                    preprocess_s=[0.0] * n, valid=valid),
                    peak_rss_mb=120.0 + seed, timeline=timeline,
                    invalid_reasons={"clock below 1.1 GHz": invalid_at[1] - invalid_at[0]}
                    if invalid_at else {},
                    accuracy={"top1_pct": 70.0 + seed % 5})
    if with_power:
        fps = result.fps or 0.0
        result.power = {"power_mean_w": 3.0, "energy_per_inference_j": 3.0 / fps,
                        "fom_top1_per_j": 0.7 * fps / 3.0}
    result.verdicts = [{"metric": "fps", "baseline": 50.0, "current": result.fps,
                        "change_pct": -12.0 if verdict == "REGRESSION" else 1.0, "p_value": 1e-4,
                        "tolerance": "5%", "verdict": verdict, "note": "Mann-Whitney U"}]
    result.overall_verdict = verdict
    return result


def make_payload(device: str = "pi4", seed: int = 0, extra: list[Result] | None = None) -> dict[str, Any]:
    results = []
    for mi, model in enumerate(MODELS):
        for fi, framework in enumerate(FRAMEWORKS):
            test_id = f"suites/test_arch.py::test_arch[{model}-{framework}]"
            verdict = "REGRESSION" if (mi, fi) == (0, 1) else "PASS"
            results.append(make_result(test_id, framework, model, device, seed + 3 * mi + fi,
                                       verdict=verdict))
    results += extra or []
    return {"schema_version": 1, "tool": "pytest-edgeperf", "version": "0.1.0", "created_unix": 1763700000.0,
            "device": {"profile": device, "model": "Raspberry Pi 4 Model B Rev 1.4", "start": {},
                       "unavailable": ["power: no meter configured"]},
            "environment": {"python": "3.11.7", "platform": "Linux", "kernel": "6.6", "machine": "aarch64",
                            "cpu": "Cortex-A72", "git_commit": "abc123"},
            "results": [r.to_json() for r in results]}


def write_payload(path: Path, payload: dict[str, Any]) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


class _Collector(HTMLParser):
    """Records tags, attributes and text, and checks that every opened element is closed in order."""

    VOID: ClassVar[set[str]] = {"meta", "br", "img", "link", "input", "hr", "line", "rect", "circle",
                                "polyline", "polygon"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html_text: str) -> _Collector:
    collector = _Collector()
    collector.feed(html_text)
    collector.close()
    assert collector.errors == []
    assert collector.stack == []
    return collector


def test_report_is_well_formed_and_has_every_chart(tmp_path: Path) -> None:
    payload = make_payload()
    out = tmp_path / "report.html"
    write_html_report(payload, out)
    doc = parse(out.read_text(encoding="utf-8"))
    svgs = [attrs for tag, attrs in doc.tags if tag == "svg"]
    classes = [a.get("class", "") for a in svgs]
    n_results = len(payload["results"])
    assert sum("timeline" in c for c in classes) == n_results
    assert sum("latency" in c for c in classes) == n_results
    assert sum("bars" in c for c in classes) == 2  # one suite: fps and FoM
    assert not any("empty" in c for c in classes)  # every chart had data
    text = " ".join(doc.text)
    assert "REGRESSION" in text and "PASS" in text
    assert "power: no meter configured" in text
    # the regression is colour-coded
    assert any(tag == "span" and a.get("class") == "v v-REGRESSION" for tag, a in doc.tags)
    # every result row links to its section
    anchors = {a.get("id") for _, a in doc.tags if a.get("id")}
    links = {a["href"][1:] for tag, a in doc.tags if tag == "a" and a.get("href", "").startswith("#")}
    assert len(links) == n_results and links <= anchors


def test_report_is_self_contained(tmp_path: Path) -> None:
    doc = parse(render_html(make_payload()))
    for tag, attrs in doc.tags:
        assert tag not in ("script", "link", "img", "iframe", "object")
        for name in ("src", "href", "xlink:href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, name, value)
            assert value == "" or value.startswith("#") or value == "http://www.w3.org/2000/svg"
    assert "@import" not in render_html(make_payload()) and "url(" not in render_html(make_payload())


def test_text_from_results_is_escaped() -> None:
    evil = "<script>alert(1)</script>&'\""
    extra = make_result(f"suites/test_x.py::test_y[{evil}]", "onnx<u>", evil, "pi4", 7, verdict="NEW")
    extra.notes.append(evil)
    payload = make_payload(extra=[extra])
    payload["environment"]["cpu"] = evil
    html_text = render_html(payload)
    assert "<script>" not in html_text and "<u>" not in html_text
    doc = parse(html_text)
    assert evil in "".join(doc.text)  # shown literally, not interpreted
    assert not any(tag in ("script", "u") for tag, _ in doc.tags)


def test_invalid_samples_are_shaded_on_the_timeline() -> None:
    payload = make_payload()
    first = payload["results"][0]
    spans = invalid_spans(first["samples"], first["window_start_s"])
    assert len(spans) == 1  # samples 60..79 are one contiguous invalid span
    start, end = spans[0]
    starts = first["samples"]["start_s"]
    assert start == pytest.approx(starts[60] - starts[0])
    assert end == pytest.approx(starts[79] - starts[0] + first["samples"]["latency_s"][79])
    doc = parse(render_html(payload))
    shaded = [a for tag, a in doc.tags if tag == "rect" and a.get("class") == "invalid"]
    marks = [a for tag, a in doc.tags if tag == "text" and a.get("class") == "invalid-mark"]
    # five panels (clock, temp, CPU, power, latency) per result, each shaded; 20 crosses per result
    assert len(shaded) == 5 * len(payload["results"])
    assert len(marks) == 20 * len(payload["results"])


def test_baseline_curve_is_drawn_when_given() -> None:
    payload = make_payload()
    test_id = payload["results"][0]["test_id"]
    baseline = {"metrics": {"fps": 50.0}, "samples": {"latency_ms": [20.0, 21.0, 22.0, 25.0]},
                "sample_count": 4, "environment": {}, "recorded_at": "2025-01-01T00:00:00+00:00"}
    with_base = render_html(payload, {test_id: baseline})
    without = render_html(payload)
    assert "baseline (n=4)" in with_base and "baseline (n=4)" not in without
    assert with_base.count("stroke-dasharray='6 3'") == without.count("stroke-dasharray='6 3'") + 2


def test_missing_sensors_and_error_results_render() -> None:
    quiet = make_result("suites/test_q.py::test_q", "litert", "tiny", "pi3", 3, invalid_at=None,
                        with_power=False)
    quiet.timeline = []
    crashed = Result(test_id="suites/test_q.py::test_crash", framework="opencv", model="tiny", device="pi3",
                     status="error", status_reason="worker segfaulted (signal 11)")
    payload = make_payload(extra=[quiet, crashed])
    doc = parse(render_html(payload))
    text = " ".join(doc.text)
    assert "worker segfaulted (signal 11)" in text
    assert "ERROR" in text
    assert "no timeline readings" not in text  # the latency panel still draws for `quiet`
    empty = [a for t, a in doc.tags if t == "svg" and "empty" in a.get("class", "")]
    assert empty == []  # suite test_q: no empty FoM box without power (one line says why); fps bars still drawn
    assert "No Figure-of-Merit chart for suites/test_q.py" in text


def test_merged_report_has_cross_device_table() -> None:
    html_text = render_merged_html([make_payload("pi3", 1), make_payload("pi5", 2)])
    doc = parse(html_text)
    headers = [t for t in doc.text if t.endswith(" verdict")]
    assert "pi3 verdict" in headers and "pi5 verdict" in headers
    ids = [a["id"] for _, a in doc.tags if a.get("id")]
    assert len(ids) == len(set(ids))  # anchors stay unique across devices


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.html"
    write_html_report(make_payload(), out)
    old = out.read_text(encoding="utf-8")

    class Boom(dict):
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("renderer failed")

    with pytest.raises(RuntimeError):
        write_html_report(Boom(), out)
    assert out.read_text(encoding="utf-8") == old
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


def test_nice_ticks_cover_range() -> None:
    for lo, hi in ((0.0, 1.0), (0.6, 1.2), (23.1, 87.9), (0.0, 0.00123), (5.0, 5.0), (-3.0, 12.0)):
        ticks = charts.nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi
        assert 2 <= len(ticks) <= 12
        steps = np.diff(ticks)
        assert np.allclose(steps, steps[0])


def test_long_runs_are_binned() -> None:
    points = [(i * 0.01, float(i % 7)) for i in range(10_000)]
    line, band = charts.bin_series(points)
    assert len(line) <= charts.MAX_POINTS and len(band) == len(line)
    assert all(lo <= mid <= hi for (_, mid), (_, lo, hi) in zip(line, band, strict=True))
    assert min(lo for _, lo, _ in band) == 0.0 and max(hi for _, _, hi in band) == 6.0


def test_wide_latency_spread_gets_a_log_axis() -> None:
    narrow = charts.ecdf_svg([charts.Distribution("a", [20.0, 21.0, 25.0, 30.0])], "t")
    wide = charts.ecdf_svg([charts.Distribution("a", [0.05] * 300 + [4.0] * 5)], "t")
    assert "log scale" not in narrow and "log scale" in wide
    ticks = charts.log_ticks(0.05, 4.0)
    assert ticks[0] <= 0.05 and ticks[-1] >= 4.0
    assert all(b > a for a, b in itertools.pairwise(ticks))


def test_small_p_values_print_in_scientific_notation() -> None:
    from pytest_edgeperf.report.markdown import fmt_value

    assert fmt_value(2.3e-11) == "2.30e-11"
    assert fmt_value(0.0123) == "0.0123" and fmt_value(19514.2) == "19,514" and fmt_value(None) == "–"
