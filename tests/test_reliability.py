"""Issue 9 through the real plugin (pytester): bad input, injected faults and security rules, each with its outcome.

Every inner run measures a tiny ONNX model (built with onnx.helper) in a real worker process with a tiny budget.
Bad input must give a one-line reason naming the thing, no traceback, and leave every stored file as it was;
faults (a crashing, killed or starving worker, sensors that vanish, a clock that never reaches the floor) must
cost one test at most, never the session. Concurrency and killed updates are in ``test_reliability_kill.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from fakedevice import FakeDevice
from onnx import TensorProto, helper, numpy_helper

from pytest_edgeperf.baseline import BaselineStore

# record once: these tests count outcomes and entries of one pass (update passes: test_noise_plugin.py)
UPDATE_ONCE = ("--edgeperf-update-baselines", "--edgeperf-update-passes=1")

pytest_plugins = ["pytester"]

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_edgeperf"

def _save_model(nodes: list, inits: list, path: Path) -> None:
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def build_tiny(path: Path) -> None:
    """One 3x3 convolution and a ReLU on a 16x16 image: fast enough for many samples in a 0.3 s budget."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    _save_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["y"])], [w], path)


def build_unknown_op(path: Path) -> None:
    """A well-formed ONNX file whose operator no runtime implements: the runtime, not the parser, refuses it."""
    _save_model([helper.make_node("NoSuchOperator", ["x"], ["y"])], [], path)

# The brief's tiny budget; one inference thread leaves the other core to the samplers.
# One worker process: crashes, hangs and vanishing sensors are armed per worker; the code path that reports them is
# the same for every process of a measurement.
FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.3", "--edgeperf-max-time=5",
        "--edgeperf-idle-time=0", "--edgeperf-threads=1", "--edgeperf-no-progress", "--edgeperf-processes=1"]
GUARD = ["--edgeperf-guard-hold=0.2", "--edgeperf-guard-timeout=1"]

ONE_TEST = """
import pytest

@pytest.mark.edgeperf(model={model!r}, frameworks="onnxruntime", warmup_s=0.05{extra})
def test_model(edgeperf):
    edgeperf.measure()
"""


@pytest.fixture(autouse=True)
def private_device_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give this test's inner runs their own device lock (``$TMPDIR/pytest-edgeperf-<uid>/<device>.lock``).

    The lock is per machine on purpose; here it would make these tests queue behind every other measuring
    pytest on the machine, which proves nothing about the fault under test.
    """
    import tempfile

    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    build_tiny(pytester.path / "tiny.onnx")
    return pytester


def reasons(result: pytest.RunResult) -> list[str]:
    """The one-line ``[edgeperf] ...`` reasons the plugin put on failed tests."""
    return [ln for ln in result.stdout.lines if ln.startswith("[edgeperf] ")]


def assert_no_traceback(result: pytest.RunResult, skipped: bool = False) -> None:
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    if not skipped:  # -rs shows where pytest.skip() was called (in the package): a location, not a traceback
        # pytest's own long-repr of an exception from our code would show source lines of the package
        assert "pytest_edgeperf/" not in text, text


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: "nothing stored changed" compares two of these."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- 1. bad input ---------------------------------------------------------------------------------------------


def test_bad_model_files_fail_one_line_each_and_store_nothing(project: pytest.Pytester) -> None:
    good = (project.path / "tiny.onnx").read_bytes()
    (project.path / "truncated.onnx").write_bytes(good[: len(good) // 2])
    (project.path / "empty.onnx").write_bytes(b"")
    (project.path / "readme.onnx").write_text("# not a model, just text that happens to end in .onnx\n")
    build_unknown_op(project.path / "unknown_op.onnx")
    project.makepyfile(test_bad_inputs="""
        import pytest

        @pytest.mark.parametrize("name", ["truncated", "empty", "readme", "unknown_op", "nothere"])
        @pytest.mark.edgeperf(frameworks="onnxruntime")
        def test_model(edgeperf, name):
            edgeperf.measure(f"{name}.onnx")
    """)
    baselines = project.path / "baselines"
    result = project.runpytest(*FAST, *UPDATE_ONCE)
    result.assert_outcomes(failed=5)
    lines = reasons(result)
    assert len(lines) == 5, lines
    by_model = {m: next(ln for ln in lines if f"{m}.onnx" in ln) for m in
                ("truncated", "empty", "readme", "unknown_op", "nothere")}
    assert by_model["empty"] == "[edgeperf] model file is empty: empty.onnx"
    assert by_model["nothere"].startswith("[edgeperf] model not found: nothere.onnx")
    for name in ("truncated", "readme", "unknown_op"):
        assert by_model[name].startswith(f"[edgeperf] onnxruntime on {name}.onnx: the runtime refused the model: ")
    assert "NoSuchOperator" in by_model["unknown_op"]
    assert_no_traceback(result)
    assert tree_snapshot(baselines) == {}  # an update run whose every test failed records nothing


def test_unknown_framework_name_in_measure_is_one_line(project: pytest.Pytester) -> None:
    project.makepyfile(test_fw="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            edgeperf.measure(framework="caffe")
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(failed=1)
    (line,) = reasons(result)
    assert line.startswith("[edgeperf] unknown framework 'caffe' (known: onnxruntime, litert, opencv")
    assert_no_traceback(result)


# A corrupt, empty, wrong-schema or other-device baseline file through the plugin (compare and update runs) is
# tests/test_baseline_plugin.py::test_corrupt_baselines_are_one_line_errors_and_never_overwritten.


def test_dataset_with_unreadable_image_or_bad_labels_is_one_line(project: pytest.Pytester) -> None:
    import cv2

    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for cls in ("cat", "dog"):
        (project.path / "broken" / cls).mkdir(parents=True)
        (project.path / "broken" / cls / "a.png").write_bytes(png)
    (project.path / "broken" / "dog" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt image
    (project.path / "labelled" / "cat").mkdir(parents=True)
    (project.path / "labelled" / "cat" / "a.png").write_bytes(png)
    (project.path / "labelled" / "labels.txt").write_text("dog\nbird\n")  # the folder 'cat' is not a class
    (project.path / "csvset").mkdir()
    (project.path / "csvset" / "a.png").write_bytes(png)
    (project.path / "csvset" / "val.csv").write_text("path,label\na.png,0\na.png,minus-one\n")
    project.makepyfile(test_data="""
        import pytest

        PRE = {"size": 16, "crop": 16, "layout": "NHWC"}

        @pytest.mark.parametrize("inputs", ["broken", "labelled", "csvset/val.csv"])
        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
        def test_model(edgeperf, inputs):
            edgeperf.measure(inputs=inputs, preprocess=PRE)
    """)
    result = project.runpytest(*FAST)
    result.assert_outcomes(failed=3)
    lines = reasons(result)
    assert len(lines) == 3, lines
    assert any("preparing the inputs failed: DatasetError:" in ln and "broken/dog/b.png: not a readable image" in ln
               for ln in lines), lines
    assert any("labelled/cat" in ln and "unknown class 'cat'" in ln and "labels.txt" in ln for ln in lines), lines
    assert any("val.csv:3: label 'minus-one' is not an integer" in ln for ln in lines), lines
    assert_no_traceback(result)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kb: int) -> Iterator[bool]:
    """Mount a tmpfs of ``size_kb`` at ``path`` when this process may (root in a container); yields whether it did.

    A real, tiny filesystem is the honest way to get ENOSPC and EROFS: nothing in the plugin is patched.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "edgeperf-test", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _record_one(project: pytest.Pytester, baselines: Path) -> pytest.RunResult:
    project.makepyfile(test_rec=ONE_TEST.format(model="tiny.onnx", extra=""))
    result = project.runpytest(*FAST, f"--edgeperf-baselines={baselines}", *UPDATE_ONCE)
    return result


def test_baseline_directory_that_is_not_writable(project: pytest.Pytester, tmp_path: Path) -> None:
    baselines = tmp_path / "ro"
    with small_tmpfs(baselines, 1024) as mounted:
        if not mounted and os.geteuid() == 0:
            pytest.skip("root ignores permissions and no tmpfs could be mounted here")
        _record_one(project, baselines).assert_outcomes(passed=1)
        before = tree_snapshot(baselines)
        # the module file, its raw-samples sidecar (named by content) and the sidecar folder's .gitattributes
        files = sorted(f for f in before if f != "host/.lock")
        assert files[0] == "host/samples/.gitattributes" and files[2] == "host/test_rec.json", files
        assert re.fullmatch(r"host/samples/[0-9a-f]{16}\.json", files[1]) and len(files) == 3, files
        if mounted:  # a read-only filesystem (EROFS), as on a read-only checkout
            subprocess.run(["mount", "-o", "remount,ro", str(baselines)], check=True)
        else:  # a directory this user may not write
            (baselines / "host").chmod(0o500)
        try:
            result = _record_one(project, baselines)
        finally:
            if not mounted:
                (baselines / "host").chmod(0o700)
        result.assert_outcomes(failed=1)
        (line,) = reasons(result)
        assert line.startswith(f"[edgeperf] baseline not updated: {baselines / 'host'}"), line
        assert "cannot" in line and ("Read-only file system" in line or "Permission denied" in line), line
        assert_no_traceback(result)
        assert tree_snapshot(baselines) == before


def test_baseline_path_through_a_regular_file_is_one_line(project: pytest.Pytester, tmp_path: Path) -> None:
    blocker = tmp_path / "baselines"
    blocker.write_text("this is a file, not a directory\n")
    result = _record_one(project, blocker)
    result.assert_outcomes(failed=1)
    (line,) = reasons(result)
    # the lookup before the update already hits it: one line naming the file it could not reach
    assert line == f"[edgeperf] {blocker / 'host' / 'test_rec.json'}: cannot read baseline (Not a directory)", line
    assert blocker.read_text() == "this is a file, not a directory\n"
    assert_no_traceback(result)


def test_disk_full_during_update_keeps_the_old_file(project: pytest.Pytester, tmp_path: Path) -> None:
    baselines = tmp_path / "full"
    with small_tmpfs(baselines, 256) as mounted:
        if not mounted:
            pytest.skip("needs a tiny tmpfs (root); tests/test_baseline.py covers a full disk with RLIMIT_FSIZE")
        # a first update with few samples writes a small file ...
        project.makepyfile(test_rec=ONE_TEST.format(model="tiny.onnx", extra=""))
        small = project.runpytest(*FAST, "--edgeperf-max-time=0.3", f"--edgeperf-baselines={baselines}",
                                  *UPDATE_ONCE)
        small.assert_outcomes(passed=1)
        before = tree_snapshot(baselines)
        old_size = len(before["host/test_rec.json"])
        # ... then the disk fills up: leave less room than the old file took, so any rewrite cannot fit
        filler = baselines / "filler"
        with open(filler, "wb", buffering=0) as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        with open(filler, "r+b") as fh:
            fh.truncate(filler.stat().st_size - max(old_size // 2, 1))
        before = tree_snapshot(baselines)
        result = project.runpytest(*FAST, "--edgeperf-min-samples=200", f"--edgeperf-baselines={baselines}",
                                   *UPDATE_ONCE)
        result.assert_outcomes(failed=1)
        (line,) = reasons(result)
        path = baselines / "host" / "test_rec.json"
        # the raw-samples sidecar is written first, so the full disk is met there and named
        assert re.fullmatch(rf"\[edgeperf\] baseline not updated: {re.escape(str(path))}: cannot write baseline "
                            rf"\(disk full: its raw samples {re.escape(str(path.parent))}/samples/[0-9a-f]{{16}}"
                            rf"\.json\); the old file is unchanged", line), line
        assert_no_traceback(result)
        assert tree_snapshot(baselines) == before  # byte for byte, and no temp file left behind


# ---- 4. security ----------------------------------------------------------------------------------------------

# Things that run code from data or through a shell. ``exec_module`` (loading a user's own 'module:function')
# is by design and not in this list.
FORBIDDEN = {
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.system\s*\("),
    "os.popen": re.compile(r"\bos\.popen\s*\("),
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "pickle": re.compile(r"\b(c?pickle|marshal|shelve|dill)\b"),
    "yaml.load": re.compile(r"\byaml\.(unsafe_)?load\s*\((?![^)]*SafeLoader)"),
    "yaml.Loader": re.compile(r"\byaml\.(Unsafe|Full)?Loader\b"),
}


def test_package_has_no_shell_eval_or_pickle() -> None:
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            hits.extend(f"{path.relative_to(PACKAGE.parent)}:{no}: {name}: {line.strip()}"
                        for name, pattern in FORBIDDEN.items() if pattern.search(code))
    assert not hits, "\n".join(hits)
    assert len(list(PACKAGE.rglob("*.py"))) > 20  # the scan really saw the package


PAYLOADS = {
    "yaml tag": b'!!python/object/apply:os.system ["touch {pwned}"]\n',
    "pickle": b"cos\nsystem\n(S'touch {pwned}'\ntR.",
    "json with a reduce-looking object": b'{"schema_version": 1, "device": "host", "entries": {"test_model": '
                                         b'{"__reduce__": ["os.system", ["touch {pwned}"]]}}}',
}


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_baseline_and_result_files_are_parsed_as_data_only(tmp_path: Path, kind: str) -> None:
    pwned = tmp_path / "pwned"
    payload = PAYLOADS[kind].replace(b"{pwned}", str(pwned).encode())
    path = tmp_path / "host" / "test_m.json"
    path.parent.mkdir()
    path.write_bytes(payload)
    from pytest_edgeperf.baseline import BaselineError

    with pytest.raises(BaselineError) as info:
        BaselineStore(tmp_path, "host").lookup("test_m.py::test_model")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    # the `edgeperf` command reads result files the same way: an error exit (2), never the payload run
    results = tmp_path / "results.json"
    results.write_bytes(payload)
    out = subprocess.run([sys.executable, "-m", "pytest_edgeperf.cli", "report", str(results), "-o",
                          str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60,
                         cwd=PACKAGE.parent)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    assert not pwned.exists()


# ---- 2. faults --------------------------------------------------------------------------------------------------

FAULTY = """
import ctypes
import os
import resource
import signal

import numpy as np

_calls = [0]


def frames(shape, dtype):
    return [np.zeros(shape, dtype=dtype)]


def _nth_call():
    _calls[0] += 1
    return _calls[0]


def segfault_while_timing(x):
    # prepare() runs once before warm-up, then once per timed sample: call 3 is inside the timed window
    if _nth_call() == 3:
        ctypes.string_at(0)  # a real SIGSEGV, as a crashing runtime would die
    return x


def raises_while_timing(x):
    if _nth_call() == 3:
        raise RuntimeError("the runtime lost its accelerator")
    return x


def oom_killed(shape, dtype):
    # What the kernel OOM killer does to the biggest process: SIGKILL, no warning, no exception.
    os.kill(os.getpid(), signal.SIGKILL)


def _limit_address_space(extra_mb):
    with open("/proc/self/status") as fh:
        vm_kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmSize:"))
    limit = (vm_kb + extra_mb * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def memory_limit_while_loading(shape, dtype):
    # A worker under a memory limit (RLIMIT_AS, like a container's): the next big allocation fails.
    _limit_address_space(64)
    return [np.ones((1 << 30) // 4, dtype=np.float32)]


_process = [0]


def frames_counting_processes(shape, dtype):
    # runs once in every worker process of a measurement: a file in the test's directory counts them
    count = int(open("processes.count").read()) + 1 if os.path.exists("processes.count") else 1
    with open("processes.count", "w") as fh:
        fh.write(str(count))
    _process[0] = count
    return [np.zeros(shape, dtype=dtype)]


def segfault_in_the_third_process(x):
    if _process[0] == 3 and _nth_call() == 3:
        ctypes.string_at(0)
    return x


_hoard = []


def memory_limit_while_timing(x):
    if _nth_call() == 1:
        _limit_address_space(64)
    if _calls[0] >= 3:
        _hoard.append(np.ones((64 << 20) // 4, dtype=np.float32))  # 64 MB a sample: the limit is hit at once
    return x
"""


def test_worker_faults_cost_one_test_each_and_the_session_goes_on(project: pytest.Pytester) -> None:
    project.makepyfile(faulty=FAULTY)
    project.makepyfile(test_faults="""
        import pytest

        CASES = {
            "segv": dict(inputs="faulty:frames", prepare="faulty:segfault_while_timing"),
            "raise": dict(inputs="faulty:frames", prepare="faulty:raises_while_timing"),
            "oomkill": dict(inputs="faulty:oom_killed"),
            "rlimit_load": dict(inputs="faulty:memory_limit_while_loading"),
            "rlimit_timing": dict(inputs="faulty:frames", prepare="faulty:memory_limit_while_timing"),
        }

        @pytest.mark.parametrize("case", list(CASES))
        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
        def test_fault(edgeperf, case):
            edgeperf.measure(**CASES[case])

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
        def test_after_the_faults(edgeperf):
            assert edgeperf.measure().valid_count >= 10
    """)
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", *UPDATE_ONCE)
    result.assert_outcomes(failed=5, passed=1)
    lines = reasons(result)
    assert len(lines) == 5, lines
    prefix = "[edgeperf] onnxruntime on tiny.onnx: "

    def reason(case: str) -> str:
        (idx,) = [i for i, ln in enumerate(result.stdout.lines) if ln.startswith("_") and f"-{case}]" in ln]
        return next(ln for ln in result.stdout.lines[idx:] if ln.startswith("[edgeperf] "))

    assert reason("segv").startswith(prefix + "worker crashed with SIGSEGV while timing")
    assert reason("raise") == prefix + "inference failed: RuntimeError: the runtime lost its accelerator"
    assert re.fullmatch(re.escape(prefix) + r"worker killed \(SIGKILL\) during warm-up, possibly out of memory, "
                        r"peak RSS at least \d+ MB", reason("oomkill")), reason("oomkill")
    assert reason("rlimit_load").startswith(prefix + "preparing the inputs failed: MemoryError: Unable to allocate")
    assert reason("rlimit_timing").startswith(prefix + "inference failed: MemoryError: Unable to allocate")
    for case in ("rlimit_load", "rlimit_timing"):  # the worker's own VmHWM, reported with its MemoryError
        assert re.search(r" \(out of memory, peak RSS \d+ MB\)$", reason(case)), reason(case)
    assert_no_traceback(result)
    # only the healthy measurement is reported and stored
    data = json.loads(out.read_text())
    assert [r["test_id"] for r in data["results"]] == ["test_faults.py::test_after_the_faults[onnxruntime]"]
    stored = json.loads((project.path / "baselines" / "host" / "test_faults.json").read_text())
    assert list(stored["entries"]) == ["test_after_the_faults[onnxruntime]"]


def test_a_crash_in_a_later_worker_process_fails_the_test_and_stores_nothing(project: pytest.Pytester) -> None:
    """Two processes measured fine, the third crashes: the test fails with one line, no partial result is kept."""
    project.makepyfile(faulty=FAULTY)
    project.makepyfile(test_late="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
        def test_model(edgeperf):
            edgeperf.measure(inputs="faulty:frames_counting_processes", prepare="faulty:segfault_in_the_third_process")
    """)
    out = project.path / "r.json"
    result = project.runpytest(*FAST, "--edgeperf-processes=4", f"--edgeperf-json={out}",
                               *UPDATE_ONCE)
    result.assert_outcomes(failed=1)
    assert (project.path / "processes.count").read_text() == "3"  # the fourth was never started
    (line,) = reasons(result)
    assert line.startswith("[edgeperf] onnxruntime on tiny.onnx: worker crashed with SIGSEGV while timing")
    assert_no_traceback(result)
    assert json.loads(out.read_text())["results"] == []
    assert not (project.path / "baselines" / "host" / "test_late.json").exists()


SENSOR_KILLER = """
import os
import shutil
import threading
import time

import numpy as np

_calls = [0]


def frames(shape, dtype):
    return [np.zeros(shape, dtype=dtype)]


def _unplug():
    time.sleep(0.6)
    os.unlink({vcgencmd!r})
    shutil.rmtree({thermal!r})
    shutil.rmtree({cpufreq!r})
    with open({marker!r}, "w") as fh:
        fh.write(repr(time.perf_counter()))


def unplug_while_timing(x):
    # prepare() runs once before warm-up, then once per timed sample: call 2 opens the timed window, and
    # 0.6 s later the sensors disappear (vcgencmd, thermal zone and cpufreq), as when a board's firmware wedges
    _calls[0] += 1
    if _calls[0] == 2:
        threading.Thread(target=_unplug, daemon=True).start()
    return x
"""


def test_sensors_vanishing_mid_run_keep_the_measurement(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev")
    marker = tmp_path / "unplugged_at"
    project.makepyfile(unplug=SENSOR_KILLER.format(
        vcgencmd=str(dev.vcgencmd), thermal=str(dev.root / "sys/class/thermal"),
        cpufreq=str(dev.root / "sys/devices/system/cpu"), marker=str(marker)))
    project.makepyfile(test_m=ONE_TEST.format(
        model="tiny.onnx", extra=", inputs='unplug:frames', min_time_s=1.5").replace(
        "edgeperf.measure()", "edgeperf.measure(prepare='unplug:unplug_while_timing')"))
    out = project.path / "r.json"
    result = project.runpytest(*FAST, *GUARD, *dev.plugin_args(), f"--edgeperf-json={out}")
    result.assert_outcomes(passed=1)
    assert not dev.vcgencmd.exists()  # the unplug really happened
    (r,) = json.loads(out.read_text())["results"]
    assert r["status"] == "ok" and r["device"] == "pi3"
    unplugged = float(marker.read_text())
    assert r["window_start_s"] < unplugged < r["window_end_s"]
    timeline = sorted(r["timeline"], key=lambda p: p["t_s"])
    shown = [(round(p["t_s"] - unplugged, 3), p["freq_ghz"], p["temp_c"], p["throttled"]) for p in timeline]
    # the sampler spaces its vcgencmd calls by their cost (cheap ticks between leave readings None); what it
    # read before the unplug is the device's, and after it nothing is invented
    before = [p for p in timeline if p["t_s"] < unplugged and p["freq_ghz"] is not None]
    after = [p for p in timeline if p["t_s"] > unplugged]
    assert before and after, shown
    assert all(p["freq_ghz"] == pytest.approx(1.2) for p in before), shown
    assert all(p["freq_ghz"] is None and p["temp_c"] is None and p["throttled"] is None for p in after), shown
    # an unknown clock is not a clock below the floor: no sample is thrown away for it
    assert r["invalid_count"] == 0
    assert r["device_end"]["clock_ghz"] is None and r["device_end"]["temp_c"] is None
    assert_no_traceback(result)


def test_vcgencmd_missing_on_a_pi_reads_what_is_left(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.pi3_cool(tmp_path / "dev", with_vcgencmd=False)
    project.makepyfile(test_m=ONE_TEST.format(model="tiny.onnx", extra=""))
    out = project.path / "r.json"
    result = project.runpytest(*FAST, *GUARD, *dev.plugin_args(), f"--edgeperf-json={out}", "-v")
    result.assert_outcomes(passed=1)
    data = json.loads(out.read_text())
    assert data["device"]["profile"] == "pi3"
    unavailable = data["device"]["unavailable"]
    assert any(u.startswith("throttle state: no ") and str(dev.vcgencmd) in u for u in unavailable), unavailable
    (r,) = data["results"]
    assert r["status"] == "ok"
    assert r["device_start"]["clock_ghz"] == pytest.approx(1.2)  # cpufreq still answers
    assert r["device_start"]["throttled_raw"] is None
    result.stdout.fnmatch_lines(["not measured on this device:", "  throttle state: no *vcgencmd*"])
    assert_no_traceback(result)


def test_clock_that_never_reaches_the_floor_is_skipped_on_time(project: pytest.Pytester, tmp_path: Path) -> None:
    # cool and unthrottled, but the clock stays at 0.6 GHz under load (a governor pinned to powersave)
    dev = FakeDevice(tmp_path / "dev", schedule=[{"freq_ghz": 0.6, "temp_c": 45.0, "throttled": 0}],
                     governor="powersave")
    project.makepyfile(test_m=ONE_TEST.format(model="tiny.onnx", extra=""))
    out = project.path / "r.json"
    result = project.runpytest(*FAST, *GUARD, *dev.plugin_args(), f"--edgeperf-json={out}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] *device not ready after 1 s (*clock 0.60 GHz < 1.10 GHz*"])
    assert json.loads(out.read_text())["results"] == []  # nothing measured below the floor is reported
    assert_no_traceback(result, skipped=True)


def test_marker_paths_resolve_from_the_rootdir_and_are_reported_as_given(project: pytest.Pytester,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    (project.path / "pytest.ini").write_text("[pytest]\n")  # the rootdir is the project, wherever pytest runs
    (project.path / "models").mkdir()
    (project.path / "tiny.onnx").rename(project.path / "models" / "tiny.onnx")
    (project.path / "data" / "cat").mkdir(parents=True)
    cv2.imwrite(str(project.path / "data" / "cat" / "a.png"), np.zeros((16, 16, 3), np.uint8))
    sub = project.path / "suite" / "deeper"
    sub.mkdir(parents=True)
    (sub / "test_paths.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.edgeperf(model='models/tiny.onnx', frameworks='onnxruntime', warmup_s=0.05, inputs='data',\n"
        "                      preprocess={'size': 16, 'crop': 16})\n"
        "def test_found(edgeperf):\n"
        "    edgeperf.measure()\n\n"
        "@pytest.mark.edgeperf(model='models/../models/absent.onnx', frameworks='onnxruntime')\n"
        "def test_absent(edgeperf):\n"
        "    edgeperf.measure()\n")
    monkeypatch.chdir(sub)  # neither the cwd nor the test's folder decides: the rootdir does
    out = project.path / "r.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", "test_paths.py")
    result.assert_outcomes(passed=1, failed=1)
    (r,) = json.loads(out.read_text())["results"]
    assert r["model"] == "models/tiny.onnx"  # reported as given
    assert r["environment"]["model_file"] == "tiny.onnx"
    (line,) = reasons(result)
    assert line == (f"[edgeperf] model not found: models/../models/absent.onnx "
                    f"(looked for {project.path / 'models/../models/absent.onnx'})")
