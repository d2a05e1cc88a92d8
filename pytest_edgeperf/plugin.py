"""pytest hooks only: options, the marker, fixtures, parametrization, and turning breaches into test failures.

Everything else lives in its own module: settings in ``config``, run-wide state in ``session``, the per-test
object in ``fixture``, the measurement in ``measure``/``worker``, reports under ``report/``, and the plugin's own
hooks (what other plugins may add) in ``hookspec``.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from .config.marker import MARKER_HELP, MarkerSpec, parse_marker
from .config.options import OPTIONS, option_help, settings_from_config
from .fixture import EdgeperfFixture
from .report.progress import Progress
from .session import DeviceInfo, EdgeperfFailure, EdgeperfSession, NullPowerMeter

if TYPE_CHECKING:
    from pluggy import Result as HookResult
    from xdist.workermanage import WorkerController

    from .device.guard import ThermalGuard
    from .frameworks.base import FrameworkAdapter
    from .models.cache import ModelCache
    from .power.base import PowerMeter

SESSION_KEY = pytest.StashKey[EdgeperfSession]()
#: said beside a marked test that failed under --edgeperf-disable: its assertions may be on figures never measured
DISABLED_HINT = ("--edgeperf-disable: measure() measured nothing (result.status == 'disabled', no figures); "
                 "assertions on figures belong under `if not edgeperf.disabled:`")
SPEC_KEY = pytest.StashKey[MarkerSpec]()
SIGTERM_KEY = pytest.StashKey[signal.Handlers]()  # the SIGTERM handler to restore at unconfigure
FIXTURE_KEY = pytest.StashKey[EdgeperfFixture]()
RUNTIMES_HOOK_KEY = pytest.StashKey[Callable[[], list[list[type["FrameworkAdapter"]]]]]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Declare the plugin's own hooks (runtimes, device profiles, power meters, machine info): ``hookspec``."""
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


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
    from .device.profiles import InvalidProfileError, with_added_profiles
    from .frameworks import InvalidAdapterError, adapters, bind_hook
    from .power.factory import InvalidMeterKindError, with_added_kinds

    hook = config.hook

    def added_runtimes() -> list[list[type[FrameworkAdapter]]]:
        return hook.pytest_edgeperf_add_runtimes(config=config)

    config.stash[RUNTIMES_HOOK_KEY] = added_runtimes
    bind_hook(added_runtimes)
    try:
        adapters()  # a bad adapter from a plugin or a start-up conftest stops the session here, in one line
        profiles = with_added_profiles(hook.pytest_edgeperf_add_device_profiles(config=config))
        meter_kinds = with_added_kinds(hook.pytest_edgeperf_add_power_meters(config=config))
    except (InvalidAdapterError, InvalidProfileError, InvalidMeterKindError) as exc:
        raise pytest.UsageError(str(exc)) from None

    def update_machine_info(machine_info: dict[str, Any]) -> None:
        hook.pytest_edgeperf_update_machine_info(config=config, machine_info=machine_info)

    config.stash[SESSION_KEY] = EdgeperfSession(settings_from_config(config), profiles=profiles,
                                                meter_kinds=meter_kinds, update_machine_info=update_machine_info)
    _sigterm_as_interrupt(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    added_runtimes = config.stash.get(RUNTIMES_HOOK_KEY, None)
    if added_runtimes is not None:
        from .frameworks import unbind_hook

        unbind_hook(added_runtimes)
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


def _marker_spec(node_id: str, node: pytest.Item) -> MarkerSpec | None:
    marker = node.get_closest_marker("edgeperf")
    if marker is None:
        return None
    return parse_marker(node_id, marker.args, marker.kwargs)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``framework``: one test id per runtime; an uninstalled runtime is a skip with the reason."""
    from .frameworks import InvalidAdapterError, adapters

    node_id = metafunc.definition.nodeid
    try:
        known = adapters()  # asked again here: a conftest.py loaded during collection may add a runtime
        spec = _marker_spec(node_id, metafunc.definition)
    except InvalidAdapterError as exc:
        pytest.fail(str(exc), pytrace=False)
    except pytest.UsageError:
        return  # reported once, as a usage error, by pytest_collection_modifyitems
    if spec is None and "framework" not in metafunc.fixturenames:
        return
    if "framework" not in metafunc.fixturenames:
        metafunc.fixturenames.append("framework")
    if any("framework" in (getattr(m, "args", ()) or ("",))[0] for m in metafunc.definition.iter_markers(
            "parametrize")):
        return  # the user parametrized it themselves
    from .frameworks.accelerators import id_suffix

    names = list(spec.frameworks) if spec and spec.frameworks else list(known)
    params = []
    for name in names:
        installed, why = known[name].is_installed()
        marks = [] if installed else [pytest.mark.skip(reason=why)]
        # an accelerator path asked for is part of the id: [onnxruntime-CUDAExecutionProvider], [litert-no-xnnpack]
        suffix = id_suffix(spec.accelerator_for(name)) if spec else ""
        params.append(pytest.param(name, id=f"{name}-{suffix}" if suffix else name, marks=marks))
    metafunc.parametrize("framework", params, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Validate every marker up front: a wrong argument stops the session with one line, before any timing."""
    from .frameworks import InvalidAdapterError

    sustained = _session(config).settings.sustained_s
    for item in items:
        try:
            spec = _marker_spec(item.nodeid, item)
        except InvalidAdapterError as exc:  # a conftest.py found during collection added a broken adapter
            raise pytest.UsageError(str(exc)) from None
        if spec is not None:
            item.stash[SPEC_KEY] = spec
            if spec.sustained_s and not sustained:
                item.add_marker(pytest.mark.skip(
                    reason=f"sustained run ({spec.sustained_s:g} s) is opt-in: --edgeperf-sustained=SECONDS"))


# ---- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def framework(request: pytest.FixtureRequest) -> str:
    """The inference runtime this test instance runs on (onnxruntime, litert, opencv, or one a plugin added);
    parametrized per runtime."""
    return getattr(request, "param", None) or "onnxruntime"


@pytest.fixture(scope="session")
def pi_device(pytestconfig: pytest.Config) -> DeviceInfo:
    """The device profile (pi3, pi4, pi5, host, ...) with live clock, temperature and throttle readings."""
    s = _session(pytestconfig)
    return DeviceInfo(profile=s.profile, readers=s.readers, floor_ghz=s.floor_ghz, unavailable=list(s.unavailable))


@pytest.fixture(scope="session")
def thermal_guard(pytestconfig: pytest.Config) -> ThermalGuard:
    """Waits until the device is cool, unthrottled and holds its clock floor under load; runs before every timing."""
    s = _session(pytestconfig)
    from .device.guard import GuardSettings, ThermalGuard

    guard = s.guard_for(s.floor_ghz, Progress(pytestconfig, enabled=s.settings.progress))
    if guard is None:  # --edgeperf-no-guard: a guard that checks nothing, so tests calling it still work
        guard = ThermalGuard(s.readers, GuardSettings(floor_ghz=None, max_temp_c=None, hold_s=0.0, timeout_s=1.0))
    return guard


@pytest.fixture(scope="session")
def power_meter(pytestconfig: pytest.Config) -> PowerMeter | NullPowerMeter:
    """The power meter chosen by --edgeperf-power-meter (or the device default); ``available`` False when none."""
    meter = _session(pytestconfig).power_meter
    return meter if meter is not None else NullPowerMeter()


@pytest.fixture(scope="session")
def model_cache(pytestconfig: pytest.Config) -> ModelCache:
    """Builds models once into the cache (zoo architectures, graphs from shipped weights, int8 variants)."""
    from .models.cache import ModelCache

    return ModelCache(_session(pytestconfig).settings.cache_dir)


@pytest.fixture
def edgeperf(request: pytest.FixtureRequest, framework: str) -> EdgeperfFixture:
    """Runs measurements: ``result = edgeperf.measure()``; limits and baselines are checked on the test itself."""
    s = _session(request.config)
    spec = request.node.stash.get(SPEC_KEY, None) or MarkerSpec()
    fixture = EdgeperfFixture(request, s, spec, framework, Progress(request.config, enabled=s.settings.progress))
    request.node.stash[FIXTURE_KEY] = fixture  # the report hook settles its results with the test's outcome
    return fixture


# ---- running and reporting ----------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, HookResult[object], None]:
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
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo[None]) -> Generator[None, HookResult[pytest.TestReport], None]:
    """Like pytest-memray: a limit or regression fails the test's own report, with a table that explains it.

    Then every measurement of the test learns the outcome (report/outcome.py), so no report says NEW or PASS for
    a test that failed, and its key figures become JUnit properties (``--junitxml``).
    """
    outcome = yield
    report = outcome.get_result()
    if call.when != "call":
        return
    s = item.config.stash.get(SESSION_KEY, None)
    if call.excinfo is not None and call.excinfo.errisinstance(EdgeperfFailure):
        report.longrepr = f"[edgeperf] {call.excinfo.value}"
    elif s is not None and not s.settings.disabled:
        _fail_on_breaches(item, report, s)
    if s is not None and s.settings.disabled:  # nothing was measured: no verdict, no JUnit figures
        if report.failed and SPEC_KEY in item.stash:
            report.sections.append(("edgeperf", DISABLED_HINT))
        return
    fixture = item.stash.get(FIXTURE_KEY, None)
    if fixture is None or not fixture.results:
        return
    from .report.junit import record_properties
    from .report.outcome import settle

    failure = _first_line(report.longreprtext) if report.failed else ""
    for result in fixture.results:
        settle(result, report.outcome, failure)
    record_properties(item.user_properties, item.nodeid, fixture.results)


def _fail_on_breaches(item: pytest.Item, report: pytest.TestReport, s: EdgeperfSession) -> None:
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


def _first_line(text: str) -> str:
    """The line of a failure that says what failed: the assertion or error, not the source around it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    chosen = next((ln[1:].strip() for ln in lines if ln.startswith("E ")), lines[0] if lines else "")
    return chosen[:200]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """An update pass that a later pass repeats runs its tests without reporting them.

    Each test is then reported once, from the last pass it ran in, so pytest counts the tests it collected
    (9 collected, 9 passed; one JUnit testcase each) rather than one outcome per pass. A test the next pass will not
    repeat (it failed, was skipped or recorded nothing) is reported from this pass.
    """
    s = item.config.stash.get(SESSION_KEY, None)
    if s is None or not s.silent_pass:
        return None
    from _pytest.runner import runtestprotocol

    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    if item.nodeid in s.recorded_nodeids and not any(r.failed for r in reports):
        return True  # the next pass runs it again and reports it
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


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
    passes = s.settings.update_passes
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for number in range(1, passes + 1):
        s.update_pass = number
        s.silent_pass = number < passes
        if number > 1:
            items = [item for item in items if item.nodeid in s.recorded_nodeids]
        if reporter is not None:
            reporter.write_sep("-", f"edgeperf: update pass {number} of {passes}, {len(items)} test(s)"
                               + (" (reported after the last pass)" if number < passes else ""))
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
    fixture = item.stash.get(FIXTURE_KEY, None)
    if fixture is None or not fixture.results:
        return
    from .baseline import BaselineError

    try:
        s.record_baselines(fixture.results)
        s.recorded_nodeids.add(item.nodeid)
    except BaselineError as exc:
        report.outcome = "failed"
        report.longrepr = f"[edgeperf] baseline not updated: {exc}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    s = config.stash.get(SESSION_KEY, None)
    if s is None:
        return
    if s.report_error:
        terminalreporter.write_line(f"edgeperf: {s.report_error}", red=True, bold=True)
    if s.history_line:  # recorded in pytest_sessionfinish, which runs before this summary
        terminalreporter.write_line(s.history_line)
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

        s.history_line = record_session(s.settings.history_url, s.settings.rootdir, results_payload(s))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: WorkerController, error: object | None) -> None:
    """xdist controller: collect a finished worker's results so one summary and one JSON cover every worker."""
    s = node.config.stash.get(SESSION_KEY, None)
    payload = getattr(node, "workeroutput", {}).get("edgeperf")
    if s is not None and payload:
        s.take_handoff(json.loads(payload))
