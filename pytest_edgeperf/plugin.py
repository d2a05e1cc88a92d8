"""pytest hooks only: options, the marker, fixtures, parametrization, and turning breaches into test failures.

Everything else lives in its own module: settings in ``config``, run-wide state in ``session``, the per-test
object in ``fixture``, the measurement in ``measure``/``worker``, reports under ``report/``.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Generator
from typing import Any

import pytest

from .config import MARKER_HELP, OPTIONS, MarkerSpec, option_help, parse_marker, settings_from_config
from .fixture import EdgeperfFailure, EdgeperfFixture
from .report.progress import Progress
from .session import DeviceInfo, EdgeperfSession, NullPowerMeter

SESSION_KEY = pytest.StashKey[EdgeperfSession]()
#: said beside a marked test that failed under --edgeperf-disable: its assertions may be on figures never measured
DISABLED_HINT = ("--edgeperf-disable: measure() measured nothing (result.status == 'disabled', no figures); "
                 "assertions on figures belong under `if not edgeperf.disabled:`")
SPEC_KEY = pytest.StashKey[MarkerSpec]()
SIGTERM_KEY = pytest.StashKey[signal.Handlers]()  # the SIGTERM handler to restore at unconfigure


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgeperf", "edge-device inference performance (pytest-edgeperf)")
    for name, ini, kind, help_text in OPTIONS:
        dest = "edgeperf_" + name.replace("-", "_")
        text = option_help(name, help_text)
        flag_help = text.replace("%", "%%")  # argparse %-formats option help ("this % of" crashed pytest --help)
        if kind == "bool":
            group.addoption(f"--edgeperf-{name}", action="store_true", default=None, dest=dest, help=flag_help)
        else:
            group.addoption(f"--edgeperf-{name}", action="store", default=None, dest=dest,
                            metavar=kind.upper(), help=flag_help)
        if ini:
            parser.addini(ini, help=text, default="")  # ini help is printed as is


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.stash[SESSION_KEY] = EdgeperfSession(settings_from_config(config))
    _sigterm_as_interrupt(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is not None and signal.getsignal(signal.SIGTERM) is _raise_interrupt:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


def _sigterm_as_interrupt(config: pytest.Config) -> None:
    """SIGTERM (a CI job cancelled, ``kill``) stops the session like Ctrl-C: the running worker is killed at once
    and the session ends with its summary, instead of pytest dying and the worker running on.

    Only where nobody chose another handler (SIG_DFL), and only in the main thread (where handlers can be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[SIGTERM_KEY] = signal.SIG_DFL
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _session(config: pytest.Config) -> EdgeperfSession:
    return config.stash[SESSION_KEY]


# ---- collection ------------------------------------------------------------------------------------------------


def _marker_spec(node_id: str, node: Any) -> MarkerSpec | None:
    marker = node.get_closest_marker("edgeperf")
    if marker is None:
        return None
    return parse_marker(node_id, marker.args, marker.kwargs)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``framework``: one test id per runtime; an uninstalled runtime is a skip with the reason."""
    node_id = metafunc.definition.nodeid
    try:
        spec = _marker_spec(node_id, metafunc.definition)
    except pytest.UsageError:
        return  # reported once, as a usage error, by pytest_collection_modifyitems
    if spec is None and "framework" not in metafunc.fixturenames:
        return
    if "framework" not in metafunc.fixturenames:
        metafunc.fixturenames.append("framework")
    if any("framework" in (getattr(m, "args", ()) or ("",))[0] for m in metafunc.definition.iter_markers(
            "parametrize")):
        return  # the user parametrized it themselves
    from .frameworks import FRAMEWORKS
    from .frameworks.accelerators import id_suffix

    names = list(spec.frameworks) if spec and spec.frameworks else list(FRAMEWORKS)
    params = []
    for name in names:
        installed, why = FRAMEWORKS[name].is_installed()
        marks = [] if installed else [pytest.mark.skip(reason=why)]
        # an accelerator path asked for is part of the id: [onnxruntime-CUDAExecutionProvider], [litert-no-xnnpack]
        suffix = id_suffix(spec.accelerator_for(name)) if spec else ""
        params.append(pytest.param(name, id=f"{name}-{suffix}" if suffix else name, marks=marks))
    metafunc.parametrize("framework", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Validate every marker up front: a wrong argument stops the session with one line, before any timing."""
    sustained = _session(config).settings.sustained_s
    for item in items:
        spec = _marker_spec(item.nodeid, item)
        if spec is not None:
            item.stash[SPEC_KEY] = spec
            if spec.sustained_s and not sustained:
                item.add_marker(pytest.mark.skip(
                    reason=f"sustained run ({spec.sustained_s:g} s) is opt-in: --edgeperf-sustained=SECONDS"))


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def framework(request: pytest.FixtureRequest) -> str:
    """The inference runtime this test instance runs on (onnxruntime, litert, opencv); parametrized per runtime."""
    return getattr(request, "param", None) or "onnxruntime"


@pytest.fixture(scope="session")
def pi_device(pytestconfig: pytest.Config) -> DeviceInfo:
    """The device profile (pi3, pi4, pi5, host, ...) with live clock, temperature and throttle readings."""
    s = _session(pytestconfig)
    return DeviceInfo(profile=s.profile, readers=s.readers, floor_ghz=s.floor_ghz, unavailable=list(s.unavailable))


@pytest.fixture(scope="session")
def thermal_guard(pytestconfig: pytest.Config) -> Any:
    """Waits until the device is cool, unthrottled and holds its clock floor under load; runs before every timing."""
    s = _session(pytestconfig)
    from .guard import GuardSettings, ThermalGuard

    guard = s.guard_for(s.floor_ghz, Progress(pytestconfig, enabled=s.settings.progress))
    if guard is None:  # --edgeperf-no-guard: a guard that checks nothing, so tests calling it still work
        guard = ThermalGuard(s.readers, GuardSettings(floor_ghz=None, max_temp_c=None, hold_s=0.0, timeout_s=1.0))
    return guard


@pytest.fixture(scope="session")
def power_meter(pytestconfig: pytest.Config) -> Any:
    """The power meter chosen by --edgeperf-power-meter (or the device default); ``available`` False when none."""
    meter = _session(pytestconfig).power_meter
    return meter if meter is not None else NullPowerMeter()


@pytest.fixture(scope="session")
def model_cache(pytestconfig: pytest.Config) -> Any:
    """Builds models once into the cache (zoo architectures, graphs from shipped weights, int8 variants)."""
    from .models.cache import ModelCache

    return ModelCache(_session(pytestconfig).settings.cache_dir)


@pytest.fixture
def edgeperf(request: pytest.FixtureRequest, framework: str) -> EdgeperfFixture:
    """Runs measurements: ``result = edgeperf.measure()``; limits and baselines are checked on the test itself."""
    s = _session(request.config)
    spec = request.node.stash.get(SPEC_KEY, None) or MarkerSpec()
    return EdgeperfFixture(request, s, spec, framework,
                           Progress(request.config, enabled=s.settings.progress))


# ---- running and reporting ----------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, None]:
    """A marked test that did not call ``edgeperf.measure()`` itself is measured after its body ran."""
    outcome = yield
    if outcome.excinfo is not None or SPEC_KEY not in pyfuncitem.stash:
        return
    fixture = pyfuncitem.funcargs.get("edgeperf")
    if fixture is None:  # the test did not ask for it: get it now, still inside the call phase
        fixture = pyfuncitem._request.getfixturevalue("edgeperf")
    if not fixture.results:
        try:
            fixture.measure()
        except BaseException as exc:
            outcome.force_exception(exc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Like pytest-memray: a limit or regression fails the test's own report, with a table that explains it."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call":
        return
    if call.excinfo is not None and call.excinfo.errisinstance(EdgeperfFailure):
        report.longrepr = f"[edgeperf] {call.excinfo.value}"
        return
    s = item.config.stash.get(SESSION_KEY, None)
    if s is None:
        return
    if s.settings.disabled:
        if report.failed and SPEC_KEY in item.stash:
            report.sections.append(("edgeperf", DISABLED_HINT))
        return
    breaches = s.breaches.get(item.nodeid)
    if not breaches and report.outcome == "passed" and s.settings.update_baselines:
        _record_baselines(item, report, s)
    if not breaches or report.outcome != "passed":
        return
    report.outcome = "failed"
    parts = []
    for breach in breaches:
        parts.append(f"[edgeperf] {breach.title}")
        if breach.table:
            parts.append(breach.table)
    report.longrepr = "\n".join(parts)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """--edgeperf-update-baselines with N passes: run the session, then again the tests that recorded a baseline.

    A suite's passes lie minutes apart, so each entry's history holds runs the machine's drift has moved apart, and the
    verdict learns the run-to-run noise from them (noise.py). Serial runs only: under xdist the controller and
    its workers own the loop, and one pass is made (said in the summary).
    """
    s = session.config.stash.get(SESSION_KEY, None)
    if s is not None and not session.config.option.collectonly:
        s.tests_ran = True  # --collect-only and --fixtures never run tests, and write no result files
    if s is None or not s.settings.update_baselines or s.settings.update_passes <= 1:
        return None
    if hasattr(session.config, "workerinput") or getattr(session.config.option, "dist", "no") != "no":
        s.device_notes.append("--edgeperf-update-passes: one pass only under pytest-xdist (run serially to "
                              "record several)")
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
    if session.config.option.collectonly:
        return True
    items = list(session.items)
    for number in range(1, s.settings.update_passes + 1):
        s.update_pass = number
        if number > 1:
            items = [item for item in items if item.nodeid in s.recorded_nodeids]
        for i, item in enumerate(items):
            nextitem = items[i + 1] if i + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
    return True


def _record_baselines(item: pytest.Item, report: pytest.TestReport, s: EdgeperfSession) -> None:
    """--edgeperf-update-baselines: a test that passed stores its results (a failed one never does)."""
    fixture = getattr(item, "funcargs", {}).get("edgeperf")
    if fixture is None or not fixture.results:
        return
    from .baseline import BaselineError

    try:
        s.record_baselines(fixture.results)
        s.recorded_nodeids.add(item.nodeid)
    except BaselineError as exc:
        report.outcome = "failed"
        report.longrepr = f"[edgeperf] baseline not updated: {exc}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    s = config.stash.get(SESSION_KEY, None)
    if s is None:
        return
    if s.report_error:
        terminalreporter.write_line(f"edgeperf: {s.report_error}", red=True, bold=True)
    if s.settings.disabled:
        if s.tests_ran:
            terminalreporter.write_line(
                "edgeperf: measurement disabled (--edgeperf-disable): marked tests ran their bodies and each "
                "measure() one inference in-process; nothing was timed, judged, recorded or written")
        return
    from .report.terminal import write_summary

    write_summary(terminalreporter, s)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the result files; an xdist worker instead hands its results to the controller, which writes them."""
    s = session.config.stash.get(SESSION_KEY, None)
    if s is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["edgeperf"] = json.dumps(s.handoff())
        return
    if not s.tests_ran or s.settings.disabled:
        return  # --collect-only, --fixtures, --edgeperf-disable: an existing report is left as it is
    from .report.files import write_output_files

    try:
        write_output_files(s)
    except OSError as exc:  # paths were checked at startup; this is a disk filling up or a directory removed
        paths = ", ".join(str(p) for p in (s.settings.json_path, s.settings.benchmark_json_path,
                                           s.settings.html_path) if p is not None)
        s.report_error = f"could not write the result files ({paths}): {exc.strerror or exc}"
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if s.settings.history_url and s.results:
        from .history.record import record_session
        from .report.files import results_payload

        line = record_session(s.settings.history_url, s.settings.rootdir, results_payload(s))
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect a finished worker's results so one summary and one JSON cover every worker."""
    s = node.config.stash.get(SESSION_KEY, None)
    payload = getattr(node, "workeroutput", {}).get("edgeperf")
    if s is not None and payload:
        s.take_handoff(json.loads(payload))
