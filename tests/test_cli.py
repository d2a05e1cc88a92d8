"""Tests for the ``edgeperf`` command: merge, report, explain, baselines show/diff, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_html import make_payload, make_result, write_payload

from pytest_edgeperf.baseline import BaselineEntry, BaselineStore
from pytest_edgeperf.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_devices(tmp_path: Path) -> tuple[Path, Path]:
    return (write_payload(tmp_path / "pi3.json", make_payload("pi3", 1)),
            write_payload(tmp_path / "pi5.json", make_payload("pi5", 2)))


def test_merge_two_devices_into_one_markdown_table(capsys, two_devices) -> None:
    code, out, err = run(capsys, "merge", *map(str, two_devices))
    assert code == 0 and err == ""
    table = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:2] == ["test", "framework"]
    assert header[2:6] == ["pi3 fps", "pi3 p90 ms", "pi3 mem MB", "pi3 verdict"]
    assert header[6:10] == ["pi5 fps", "pi5 p90 ms", "pi5 mem MB", "pi5 verdict"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) == 6  # 2 models x 3 frameworks, one row each across both devices
    payload = json.loads(two_devices[0].read_text())
    first = payload["results"][0]
    assert rows[0][0] == first["test_id"] and rows[0][1] == first["framework"]
    assert float(rows[0][2]) == pytest.approx(first["summary"]["fps"], rel=1e-2)
    assert rows[1][5] == "**REGRESSION**" and rows[0][5] == "PASS"


def test_merge_marks_missing_tests_and_escapes_pipes(capsys, tmp_path: Path) -> None:
    only_pi4 = make_result("suites/t.py::test_a[x|y]", "litert", "m", "pi4", 3, verdict="NEW")
    a = write_payload(tmp_path / "a.json", make_payload("pi3", 1))
    b = write_payload(tmp_path / "b.json", make_payload("pi4", 2, extra=[only_pi4]))
    code, out, _ = run(capsys, "merge", str(a), str(b))
    assert code == 0
    line = next(ln for ln in out.splitlines() if "test_a[x" in ln)
    assert "test_a[x\\|y]" in line
    cells = [c.strip() for c in line.replace("\\|", "¦").strip("|").split("|")]
    assert cells[2:6] == ["–"] * 4 and cells[9] == "NEW"


def test_merge_fail_on_regression_and_output_file(capsys, two_devices, tmp_path: Path) -> None:
    out_file = tmp_path / "summary.md"
    code, out, err = run(capsys, "merge", *map(str, two_devices), "-o", str(out_file),
                         "--fail-on-regression")
    assert code == 1
    assert out == "" and "REGRESSION on pi3" in err and "REGRESSION on pi5" in err
    assert "| test" in out_file.read_text()

    clean = make_payload("pi3", 1)
    for r in clean["results"]:
        r["overall_verdict"] = r["verdict"] = "PASS"
    path = write_payload(tmp_path / "clean.json", clean)
    assert run(capsys, "merge", str(path), "--fail-on-regression")[0] == 0


def test_merge_html(capsys, two_devices, tmp_path: Path) -> None:
    out_file = tmp_path / "all.html"
    code, _, _ = run(capsys, "merge", *map(str, two_devices), "--format", "html", "-o", str(out_file))
    assert code == 0
    text = out_file.read_text()
    assert "pi3 verdict" in text and "pi5 verdict" in text and text.count("<svg") > 10
    code, _, err = run(capsys, "merge", str(two_devices[0]), "--format", "html")
    assert code == 2 and "-o" in err


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    ("{not json", "not valid JSON (line 1"),
    ("[1, 2]", "not a pytest-edgeperf results file"),
    ('{"results": [], "schema_version": 99}', "schema_version 99"),
    ('{"results": [{"framework": "x"}]}', "results[0]"),
])
def test_bad_input_is_one_line_naming_the_file(capsys, tmp_path: Path, content: str | None,
                                               expected: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    good = write_payload(tmp_path / "good.json", make_payload())
    for argv in (["merge", str(good), str(path)], ["explain", str(path), "x"], ["report", str(path), "-o",
                                                                               str(tmp_path / "r.html")]):
        code, _, err = run(capsys, *argv)
        assert code == 2
        assert err.count("\n") == 1 and str(path) in err and expected in err
    assert not (tmp_path / "r.html").exists()


def test_explain_regression_exits_1_with_reason(capsys, two_devices) -> None:
    code, out, _ = run(capsys, "explain", str(two_devices[0]), "test_arch[mobilenet_v1-litert]")
    assert code == 1
    assert "suites/test_arch.py::test_arch[mobilenet_v1-litert] [litert] on pi3: REGRESSION" in out
    assert "why:" in out and "REGRESSION: fps changed -12.0%" in out and "tolerance 5%" in out
    assert "clock below 1.1 GHz x20" in out
    code, out, _ = run(capsys, "explain", str(two_devices[0]),
                       "suites/test_arch.py::test_arch[squeezenet-onnxruntime]")
    assert code == 0 and ": PASS" in out


def test_explain_unknown_or_ambiguous_test(capsys, two_devices) -> None:
    code, _, err = run(capsys, "explain", str(two_devices[0]), "nope")
    assert code == 2 and "no test matches 'nope'" in err
    code, _, err = run(capsys, "explain", str(two_devices[0]), "mobilenet")
    assert code == 2 and "matches 3 tests" in err


def test_report_uses_baselines(capsys, tmp_path: Path) -> None:
    payload = make_payload("pi4", 0)
    results_path = write_payload(tmp_path / "r.json", payload)
    store = BaselineStore(tmp_path / "baselines", "pi4")
    first = payload["results"][0]
    store.update({first["test_id"]: BaselineEntry(metrics={"fps": 40.0}, samples={"latency_ms": [25.0] * 30},
                                                  sample_count=30, recorded_at="2025-01-01T00:00:00+00:00")})
    out_file = tmp_path / "report.html"
    code, out, _ = run(capsys, "report", str(results_path), "-o", str(out_file), "--baselines",
                       str(tmp_path / "baselines"))
    assert code == 0 and str(out_file) in out
    assert out_file.read_text().count("baseline (n=30)") == 1


def _record(root: Path, device: str, metrics: dict[str, dict[str, float]]) -> None:
    store = BaselineStore(root, device)
    store.update({nodeid: BaselineEntry(metrics=m, samples={"latency_ms": [10.0, 11.0]}, sample_count=2,
                                        recorded_at="2025-01-01T00:00:00+00:00",
                                        recorded_by={"git_commit": "abcdef1234567"})
                  for nodeid, m in metrics.items()})


def test_baselines_show_and_diff(capsys, tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _record(old, "pi3", {"suites/test_a.py::test_x[onnx]": {"fps": 40.0, "latency_p90_ms": 27.0},
                         "suites/test_a.py::test_gone": {"fps": 5.0}})
    _record(new, "pi3", {"suites/test_a.py::test_x[onnx]": {"fps": 36.0, "latency_p90_ms": 27.0}})
    _record(new, "pi5", {"suites/sub/test_b.py::test_y": {"fps": 90.0}})

    code, out, _ = run(capsys, "baselines", "show", "--dir", str(new))
    assert code == 0
    assert "suites/test_a.py::test_x[onnx]" in out and "suites/sub/test_b.py::test_y" in out
    assert "abcdef1234" in out
    code, out, _ = run(capsys, "baselines", "show", "--dir", str(new), "--device", "pi5")
    assert code == 0 and "test_y" in out and "test_x" not in out
    code, _, err = run(capsys, "baselines", "show", "--dir", str(new), "--device", "pi4")
    assert code == 2 and "pi4" in err and "pi3, pi5" in err

    code, out, _ = run(capsys, "baselines", "diff", str(old), str(new))
    assert code == 0
    lines = out.splitlines()
    moved = next(ln for ln in lines if "test_x[onnx]" in ln)
    assert "fps" in moved and "-10.0" in moved
    assert not any("latency_p90_ms" in ln for ln in lines)  # unchanged metrics are not listed
    assert any("test_gone" in ln and "removed" in ln for ln in lines)
    assert any("test_y" in ln and "added" in ln for ln in lines)
    code, out, _ = run(capsys, "baselines", "diff", str(new), str(new))
    assert code == 0 and "identical" in out


def test_baselines_bad_file_is_reported(capsys, tmp_path: Path) -> None:
    _record(tmp_path, "pi3", {"suites/test_a.py::test_x": {"fps": 40.0}})
    path = tmp_path / "pi3" / "suites__test_a.json"
    data = json.loads(path.read_text())
    data["entries"]["test_x"]["metrics"]["fps"] = "fast"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, "baselines", "show", "--dir", str(tmp_path))
    assert code == 2 and str(path) in err and err.count("\n") == 1
