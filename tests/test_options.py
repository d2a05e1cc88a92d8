"""What a user types works: --help, --fixtures, option ranges, report paths, --collect-only, --edgeperf-disable.

Each test runs the real plugin through pytester and asserts on what the user sees: the exit code, one error line
naming the option (or the ini key) and no traceback, and files left as they were.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_edgeperf.config import OPTIONS, RANGES, Range

pytest_plugins = ["pytester"]

SUITES = Path(__file__).resolve().parent.parent / "suites"
NUMERIC = [(name, ini) for name, ini, kind, _ in OPTIONS if kind in ("int", "float")]
KINDS = {name: kind for name, _, kind, _ in OPTIONS}
#: options a value at the edge of its range needs beside it (the cross-option checks)
COMPANIONS = {"guard-hold": ["--edgeperf-guard-timeout=86400"], "guard-timeout": ["--edgeperf-guard-hold=0"],
              "min-time": ["--edgeperf-max-time=86400"], "max-time": ["--edgeperf-min-time=0"]}


def _usage_error_line(result: pytest.RunResult) -> str:
    """The one ``ERROR:`` line of a usage error; fails the test if there is none, several, or a traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, (result.stdout.lines, result.stderr.lines)
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.lines
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    return errors[0]


# ---- pytest --help / --fixtures ------------------------------------------------------------------------------


def test_help_exits_0_and_lists_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    """argparse %-formats option help: an unescaped "%" in any help text made ``pytest --help`` crash."""
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0, result.stderr.str()[-2000:]
    out = result.stdout.str()
    for name, ini, _kind, _help in OPTIONS:
        assert f"--edgeperf-{name}" in out, name
        if ini:
            assert f"{ini} (" in out, ini
    assert "this % of its runnable time" in out and "fps=5%," in out  # shown once-escaped, as written
    for name in RANGES:  # each numeric option's range is documented where the option is
        help_block = out.split(f"\n  --edgeperf-{name}=", 1)[1].split("\n  -", 1)[0]
        assert "[range" in " ".join(help_block.split()), name


def test_fixtures_lists_the_plugins_fixtures(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures")
    assert result.ret == 0, result.stderr.str()[-2000:]
    for name in ("edgeperf", "framework", "pi_device", "thermal_guard", "power_meter", "model_cache"):
        result.stdout.fnmatch_lines([f"{name}*"])


def test_fixtures_from_the_repository_root_without_test_only_dependencies(tmp_path: Path) -> None:
    """Test modules needing the [dev] extra (hypothesis, OpenCV) are skipped, not collection errors."""
    block = tmp_path / "block"
    for module in ("hypothesis", "cv2"):  # as if not installed: importing them raises ModuleNotFoundError
        (block / module).mkdir(parents=True)
        (block / module / "__init__.py").write_text(
            f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n')
    root = SUITES.parent
    env = {"PYTHONPATH": f"{block}:{root}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "TMPDIR": str(tmp_path), "EDGEPERF_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--fixtures", "-p", "no:hypothesispytest",
                           "-p", "no:cacheprovider"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ModuleNotFoundError" not in proc.stdout and "error" not in proc.stdout.splitlines()[-1]
    assert "skipped" in proc.stdout.splitlines()[-1]


# ---- numeric ranges ------------------------------------------------------------------------------------------


def test_every_numeric_option_has_a_range() -> None:
    """A new int/float option must say what it accepts (config.RANGES); ranges name only real options."""
    assert {name for name, _ in NUMERIC} == set(RANGES)


def _outside(name: str, rng: Range) -> list[str]:
    """Values just outside both ends of ``rng`` (and an absurdly small rate where 0 means off)."""
    step = 1 if KINDS[name] == "int" else max(rng.low / 2, 1e-3)
    low = rng.low if rng.low_open else rng.low - step
    out = [_text(low), _text(rng.high + (1 if KINDS[name] == "int" else rng.high * 0.01))]
    if rng.zero_off:
        out.append("1e-300")
    return out


def _inside(name: str, rng: Range) -> list[str]:
    low = (rng.low + (1 if KINDS[name] == "int" else rng.low * 0.001 or 1e-6)) if rng.low_open else rng.low
    values = [_text(low), _text(rng.high)]
    if rng.zero_off:
        values.append("0")
    return values


def _text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


OUTSIDE = [(name, value) for name, rng in RANGES.items() for value in _outside(name, rng)]
INSIDE = [(name, value) for name, rng in RANGES.items() for value in _inside(name, rng)]


@pytest.mark.parametrize(("name", "value"), OUTSIDE, ids=[f"{n}={v}" for n, v in OUTSIDE])
def test_a_value_outside_the_range_is_one_usage_error_naming_the_flag(pytester: pytest.Pytester, name: str,
                                                                      value: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest(f"--edgeperf-{name}={value}", *COMPANIONS.get(name, [])))
    assert f"--edgeperf-{name} must be" in line and f"range {RANGES[name].describe()}" in line


@pytest.mark.parametrize(("name", "value"), INSIDE, ids=[f"{n}={v}" for n, v in INSIDE])
def test_the_ends_of_the_range_are_accepted(pytester: pytest.Pytester, name: str, value: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest(f"--edgeperf-{name}={value}", *COMPANIONS.get(name, []), "--collect-only", "-q")
    assert result.ret == 0, result.stderr.lines


def test_the_reported_cases_of_the_issue(pytester: pytest.Pytester) -> None:
    """--edgeperf-sample-hz=1e-300 killed the sampler thread; --edgeperf-processes=1000000000 ran for ever."""
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    assert "--edgeperf-sample-hz" in _usage_error_line(pytester.runpytest("--edgeperf-sample-hz=1e-300"))
    line = _usage_error_line(pytester.runpytest("--edgeperf-processes=1000000000"))
    assert "--edgeperf-processes must be <= 64" in line and "got 1000000000" in line


INI_NUMERIC = [(name, ini) for name, ini in NUMERIC if ini]


@pytest.mark.parametrize(("name", "ini"), INI_NUMERIC, ids=[ini for _, ini in INI_NUMERIC])
def test_an_ini_value_out_of_range_is_reported_under_the_ini_key(pytester: pytest.Pytester, name: str,
                                                                 ini: str) -> None:
    value = _outside(name, RANGES[name])[1]
    pytester.makeini(f"[pytest]\n{ini} = {value}\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest(*COMPANIONS.get(name, [])))
    assert f"ini option {ini} must be" in line and f"--edgeperf-{name}" not in line


def test_a_cross_check_between_ini_values_names_the_ini_keys(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nedgeperf_max_time = 3\nedgeperf_min_time = 5\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest())
    assert "ini option edgeperf_max_time" in line


def test_a_marker_argument_takes_its_options_range(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_proc="""
        import pytest

        @pytest.mark.edgeperf(model="m.onnx", processes=1000)
        def test_model(edgeperf):
            pass
    """)
    line = _usage_error_line(pytester.runpytest())
    assert "argument 'processes': must be <= 64" in line


# ---- report paths ---------------------------------------------------------------------------------------------

REPORTS = ["--edgeperf-json", "--edgeperf-benchmark-json", "--edgeperf-html"]


@pytest.mark.parametrize("option", REPORTS)
def test_a_report_into_a_missing_directory_is_refused_at_startup(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    target = pytester.path / "no-such-dir" / "report.out"
    line = _usage_error_line(pytester.runpytest(f"{option}={target}"))
    assert option in line and str(target.parent) in line and "does not exist" in line
    assert not target.parent.exists()  # never created, for --edgeperf-html too


@pytest.mark.parametrize("option", REPORTS)
def test_a_report_path_that_is_a_directory_is_refused_at_startup(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    (pytester.path / "out").mkdir()
    line = _usage_error_line(pytester.runpytest(f"{option}=out"))
    assert option in line and "out is a directory" in line


def test_two_reports_into_one_file_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest("--edgeperf-json=r.json", "--edgeperf-benchmark-json=./r.json"))
    assert "--edgeperf-benchmark-json and --edgeperf-json name the same file" in line


def test_a_report_that_cannot_be_written_at_the_end_is_one_line(pytester: pytest.Pytester) -> None:
    """The directory was fine at startup and is gone at the end: one line and exit 1, not a plugin traceback."""
    (pytester.path / "out").mkdir()
    pytester.makepyfile(test_rm="""
        import shutil

        def test_removes_the_report_directory():
            shutil.rmtree("out")
    """)
    result = pytester.runpytest("--edgeperf-json=out/r.json", "-p", "no:randomly")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["edgeperf: could not write the result files (out/r.json): No such file or directory",
                                 "*1 passed*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("mode", ["--collect-only", "--fixtures"])
def test_collect_only_leaves_existing_reports_alone(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    files = {"r.json": '{"results": ["kept"]}\n', "b.json": "{}\n", "r.html": "<p>kept</p>\n"}
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    result = pytester.runpytest(mode, "--edgeperf-json=r.json", "--edgeperf-benchmark-json=b.json",
                                "--edgeperf-html=r.html")
    assert result.ret == 0
    assert {name: (pytester.path / name).read_text() for name in files} == files


def test_a_normal_run_still_writes_the_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest("--edgeperf-json=r.json", "--edgeperf-html=r.html")
    assert result.ret == 0
    assert (pytester.path / "r.json").stat().st_size > 0 and (pytester.path / "r.html").stat().st_size > 0


# ---- power meter errors ---------------------------------------------------------------------------------------


def test_a_pyvisa_sim_error_keeps_its_cause_and_drops_the_traceback(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pyvisa_sim")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest("--edgeperf-power-meter=scpi:x;file=/nonexistent.yaml"))
    assert line.startswith("ERROR: --edgeperf-power-meter: ")
    assert "No such file or directory: '/nonexistent.yaml'" in line
    assert "File \"" not in line and "\\n" not in line and "most recent call" not in line


# ---- --edgeperf-disable ----------------------------------------------------------------------------------------

DISABLED_TESTS = """
    import pytest

    @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"], min_fps=1e9, max_latency_ms=1e-9)
    def test_measures(edgeperf):
        result = edgeperf.measure()
        assert edgeperf.disabled
        assert result.status == "disabled" and "--edgeperf-disable" in result.status_reason
        assert result.fps is None and result.valid_count == 0 and result.metric_values() == {}
        assert result.load_time_s is None and result.peak_rss_mb is None and result.overall_verdict == ""
        assert result.environment["input_shape"] == [1, 3, 16, 16]
        assert result.environment["output_shape"] == [1, 8, 16, 16]
        second = edgeperf.measure(label="second")
        comparison = edgeperf.compare(second, result, min_speedup=2.0)
        assert comparison.speedup is None

    @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"])
    def test_body_only(edgeperf):
        pass  # measured after the body in a normal run: here one in-process inference

    @pytest.mark.edgeperf(model="missing.onnx", frameworks=["onnxruntime"])
    def test_missing_model(edgeperf):
        edgeperf.measure()

    @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"])
    def test_asserts_on_a_figure(edgeperf):
        assert edgeperf.measure().fps > 1
"""


def test_disable_runs_bodies_once_without_measuring(tiny_project: pytest.Pytester) -> None:
    """No worker, baseline or report file; limits are not judged; a missing model still fails."""
    tiny_project.makeini("[pytest]\n")  # the project is its own rootdir (models resolve against it)
    tiny_project.makepyfile(test_disabled=DISABLED_TESTS)
    (tiny_project.path / "r.json").write_text("kept\n")
    result = tiny_project.runpytest_subprocess("--edgeperf-disable", "--edgeperf-json=r.json",
                                               "--edgeperf-html=r.html", "-p", "no:randomly", "-p",
                                               "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*[[]edgeperf[]] model not found: missing.onnx*",
                                 "*TypeError*", "*edgeperf*", "--edgeperf-disable: measure() measured nothing*",
                                 "edgeperf: measurement disabled (--edgeperf-disable)*nothing was timed*"])
    assert (tiny_project.path / "r.json").read_text() == "kept\n"
    assert not (tiny_project.path / "r.html").exists() and not (tiny_project.path / "baselines").exists()
    assert "Traceback" not in result.stdout.str()


def test_disable_with_update_baselines_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    line = _usage_error_line(pytester.runpytest("--edgeperf-disable", "--edgeperf-update-baselines"))
    assert "--edgeperf-disable" in line and "--edgeperf-update-baselines" in line


# ---- -p no:edgeperf --------------------------------------------------------------------------------------------


def test_the_suites_collect_and_skip_without_the_plugin(pytester: pytest.Pytester) -> None:
    """``-p no:edgeperf`` with --strict-markers: the suites collect, and their measured tests skip with the reason."""
    result = pytester.runpytest_subprocess(str(SUITES), "-p", "no:edgeperf", "--strict-markers", "-rs",
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) > 0 and set(outcomes) == {"skipped"}
    result.stdout.fnmatch_lines(["*pytest-edgeperf is disabled (-p no:edgeperf)*"])
    assert "not found in `markers`" not in result.stdout.str()


# ---- edgeperf --version ----------------------------------------------------------------------------------------


def test_edgeperf_version() -> None:
    import pytest_edgeperf

    proc = subprocess.run([sys.executable, "-m", "pytest_edgeperf.cli", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"edgeperf (pytest-edgeperf) {pytest_edgeperf.__version__}"
