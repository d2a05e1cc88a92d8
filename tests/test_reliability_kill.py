"""Issue 9, killed and concurrent runs: SIGKILL/SIGINT during baseline updates, two updaters, pytest-xdist.

Real ``pytest`` processes are started on a small project (a tiny ONNX model, a tiny budget) and killed or run side
by side; what is left on disk must be valid baselines holding the old or the new content, never a mixture, and no
entry may be lost. The 50-kill loop drives the baseline store from forked writer processes (a full pytest run per
kill would take minutes); a few kills hit real ``pytest --edgeperf-update-baselines`` runs.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import psutil
import pytest
from onnx import TensorProto, helper, numpy_helper
from realtiming import REAL_TIMING

from pytest_edgeperf.baseline import BaselineEntry, BaselineStore, module_filename
from pytest_edgeperf.baseline.files import module_document
from pytest_edgeperf.result import Result, Samples

FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=10", "--edgeperf-min-time=0.3", "--edgeperf-max-time=5",
        "--edgeperf-idle-time=0", "--edgeperf-threads=1", "--edgeperf-no-progress", "-q"]

MANY = """
import pytest

@pytest.mark.parametrize("n", range({count}))
@pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
def test_{name}(edgeperf, n):
    edgeperf.measure()
"""


def build_tiny(path: Path) -> None:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


class Project:
    """A directory a user would run pytest in, run by real ``python -m pytest`` subprocesses.

    Its own TMPDIR gives it its own device lock, so it does not queue behind other pytest runs on the machine.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        (path / "pytest.ini").write_text("[pytest]\n")  # the rootdir is here
        build_tiny(path / "tiny.onnx")
        self.tmp = path / ".tmp"
        self.tmp.mkdir()
        self.baselines = path / "baselines"

    def write(self, name: str, text: str) -> None:
        (self.path / name).write_text(text)

    def start(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        return subprocess.Popen([sys.executable, "-m", "pytest", *FAST, *args], cwd=self.path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    def run(self, *args: str, timeout_s: float = 120) -> tuple[int, str]:
        proc = self.start(*args)
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out

    def entries(self, module: str, device: str = "host") -> dict[str, BaselineEntry]:
        """Read through the plugin's own reader: raises if the file is half-written or invalid."""
        store = BaselineStore(self.baselines, device)
        store.lookup(f"{module}::none")
        return dict(store._cache[store.path_for(f"{module}::none")])

    def workers(self) -> list[psutil.Process]:
        """Measurement workers still running in this project (started by a pytest that may be dead)."""
        found = []
        for proc in psutil.process_iter(["cmdline", "cwd"]):
            cmdline = proc.info.get("cmdline") or []
            if "pytest_edgeperf.worker" in cmdline and proc.info.get("cwd") == str(self.path):
                found.append(proc)
        return found

    def wait_no_workers(self, timeout_s: float) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout_s
        while (left := self.workers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_old_or_new(before: dict[str, BaselineEntry], after: dict[str, BaselineEntry], started: datetime) -> int:
    """Every entry is the old one or one recorded by the run that started at ``started``; returns how many new."""
    assert set(after) >= set(before), f"entries lost: {set(before) - set(after)}"
    new = 0
    for key, entry in after.items():
        if key in before and entry.to_json() == before[key].to_json():
            continue
        assert _iso(entry.recorded_at) >= started.replace(microsecond=0), (key, entry.recorded_at, started)
        new += 1
    return new


def no_temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# ---- SIGKILL and SIGINT of real pytest runs during --edgeperf-update-baselines ----------------------------------


def test_sigkill_and_sigint_of_pytest_during_update_leave_old_or_new_files(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_many.py", MANY.format(count=4, name="many"))
    t0 = time.monotonic()
    code, out = project.run("--edgeperf-update-baselines")
    full_run_s = time.monotonic() - t0
    assert code == 0, out
    module = "test_many.py"
    entries = project.entries(module)
    assert len(entries) == 4
    directory = project.baselines / "host"
    rng = random.Random(9)
    # kills timed by the store's own files are tests/test_baseline_plugin.py::test_sigkill_during_update_...;
    # these land at random moments, and check what happens to the measurement worker
    kills = [signal.SIGKILL, signal.SIGKILL, signal.SIGINT]
    new_seen = 0
    for sig in kills:
        started = datetime.now(timezone.utc)
        proc = project.start("--edgeperf-update-baselines")
        if sig == signal.SIGKILL:
            # anywhere in the run: while pytest starts, a worker measures, or the store writes a file
            time.sleep(rng.uniform(0.2, max(full_run_s, 1.0)))
        else:
            # Ctrl-C while a measurement is under way (before the session starts, Python itself handles it)
            deadline = time.monotonic() + 60
            while not project.workers() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(sig)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if sig == signal.SIGKILL:
            assert proc.returncode in (-signal.SIGKILL, 0), out
        else:  # Ctrl-C: pytest stops the session (2), or had already finished (0)
            assert proc.returncode in (pytest.ExitCode.INTERRUPTED, 0), out
            assert "Traceback" not in out
            assert project.workers() == []  # the interrupted measurement's worker was stopped, not orphaned
        after = project.entries(module)  # valid JSON, valid schema: never half-written
        new_seen += check_old_or_new(entries, after, started)
        entries = after
        # a worker orphaned by the kill notices its parent is gone and exits by itself (stdin closes)
        assert project.wait_no_workers(20) == [], "measurement workers outlived the killed pytest"
    # temp files a killed writer may leave are swept by the next update, which still merges everything
    code, out = project.run("--edgeperf-update-baselines", "-k", "many and 0")
    assert code == 0, out
    assert set(project.entries(module)) == set(entries)
    assert no_temp_files(directory) == []
    print(f"{len(kills)} kills of real pytest runs, {new_seen} entries replaced by killed runs")


# ---- 50 SIGKILLs of a writer in the middle of baseline updates -----------------------------------------------------

NODE_MODULE = "suites/test_kill.py"


def _entry(seed: int) -> BaselineEntry:
    rng = np.random.default_rng(seed)
    lat = (0.01 * (1 + rng.gamma(2.0, 0.05, 2000))).tolist()
    result = Result(test_id=f"{NODE_MODULE}::t", framework="onnxruntime", model="m", device="host", threads=1,
                    samples=Samples(latency_s=lat, valid=[True] * len(lat)), peak_rss_mb=50.0 + seed)
    return BaselineEntry.from_result(result, recorded_at=f"2024-01-01T00:00:{seed:02d}+00:00",
                                     recorded_by={"host": "h", "command": "pytest", "git_commit": ""})


def _without_history(doc: dict[str, Any]) -> dict[str, Any]:
    """The file minus the entries' run histories, which each update extends (noise.py)."""
    return {**doc, "entries": {k: {f: v for f, v in e.items() if f != "history"} for k, e in doc["entries"].items()}}


def _writer(root: str, versions: list[dict[str, dict[str, Any]]], ready: Any) -> None:
    """Forever: rewrite the whole module file with version 0, 1, 0, 1, ... (each update replaces every entry)."""
    store = BaselineStore(Path(root), "host")
    docs = [{f"{NODE_MODULE}::{k}": BaselineEntry.from_json(v) for k, v in version.items()} for version in versions]
    ready.set()
    i = 1
    while True:
        store.update(docs[i % 2])
        i += 1


@REAL_TIMING
def test_fifty_sigkills_during_updates_leave_valid_old_or_new_files(tmp_path: Path) -> None:
    names = [f"test_{c}" for c in "abcdefgh"]
    versions = [{n: _entry(v * 10 + i).to_json() for i, n in enumerate(names)} for v in range(2)]
    BaselineStore(tmp_path, "host").update({f"{NODE_MODULE}::{k}": BaselineEntry.from_json(v)
                                            for k, v in versions[0].items()})
    path = tmp_path / "host" / module_filename(NODE_MODULE)
    complete = []
    for version in versions:
        doc = module_document("host", NODE_MODULE, {k: BaselineEntry.from_json(v) for k, v in version.items()})[0]
        complete.append(_without_history(doc))
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(50)
    seen = [0, 0]
    for _ in range(50):
        ready = ctx.Event()
        proc = ctx.Process(target=_writer, args=(str(tmp_path), versions, ready), daemon=True)
        proc.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0.0, 0.1))  # some updates in: the kill lands anywhere in one of them
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        data = _without_history(json.loads(path.read_text()))  # valid JSON after every kill ...
        assert data in complete  # ... holding exactly the old or the new file, never a mixture
        seen[complete.index(data)] += 1
        BaselineStore(tmp_path, "host").lookup(f"{NODE_MODULE}::test_a")  # and the plugin's reader agrees
    assert seen[0] > 0 and seen[1] > 0, seen  # the kills really interrupted both kinds of update
    BaselineStore(tmp_path, "host").update({f"{NODE_MODULE}::test_a": BaselineEntry.from_json(versions[1]["test_a"])})
    assert no_temp_files(path.parent) == []


# ---- two pytest processes updating one baselines directory ------------------------------------------------------


def test_two_pytest_processes_updating_the_same_baselines_lose_no_entry(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    project.write("test_pair.py", MANY.format(count=4, name="left") + MANY.format(count=4, name="right"))
    project.write("test_solo.py", MANY.format(count=2, name="solo"))
    left = project.start("--edgeperf-update-baselines", "-k", "left or solo and 0")
    right = project.start("--edgeperf-update-baselines", "-k", "right or solo and 1")
    outs = [proc.communicate(timeout=180)[0] for proc in (left, right)]
    assert left.returncode == 0 and right.returncode == 0, outs
    pair = project.entries("test_pair.py")
    assert set(pair) == {f"test_{side}[onnxruntime-{n}]" for side in ("left", "right") for n in range(4)}
    assert set(project.entries("test_solo.py")) == {"test_solo[onnxruntime-0]", "test_solo[onnxruntime-1]"}


# ---- pytest-xdist: measurements one at a time, ordinary tests in parallel ---------------------------------------

XDIST_TESTS = """
import json
import os
import time
from pathlib import Path

import pytest

OUT = Path({out!r})


def _rendezvous(me, other):
    (OUT / me).write_text(os.environ.get("PYTEST_XDIST_WORKER", "?"))
    deadline = time.monotonic() + 60
    while not (OUT / other).exists():
        assert time.monotonic() < deadline, f"{{other}} never ran at the same time as {{me}}"
        time.sleep(0.05)


@pytest.mark.xdist_group("a")
def test_plain_a():
    _rendezvous("plain_a", "plain_b")


@pytest.mark.xdist_group("b")
def test_plain_b():
    _rendezvous("plain_b", "plain_a")


def _measure(edgeperf, name):
    r = edgeperf.measure()
    (OUT / f"window_{{name}}.json").write_text(json.dumps({{
        "worker": os.environ.get("PYTEST_XDIST_WORKER"), "start": r.window_start_s, "end": r.window_end_s,
        "test_id": r.test_id}}))


@pytest.mark.xdist_group("a")
@pytest.mark.parametrize("n", range(3))
@pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
def test_perf_a(edgeperf, n):
    _measure(edgeperf, f"a{{n}}")


@pytest.mark.xdist_group("b")
@pytest.mark.parametrize("n", range(3))
@pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime", warmup_s=0.05)
def test_perf_b(edgeperf, n):
    _measure(edgeperf, f"b{{n}}")
"""


@pytest.fixture(scope="module")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path, int, str]:
    """One ``pytest -n 2`` run, shared by the tests below (it costs a few seconds)."""
    tmp_path = tmp_path_factory.mktemp("xdist")
    project = Project(tmp_path / "proj")
    out = tmp_path / "out"
    out.mkdir()
    project.write("test_x.py", XDIST_TESTS.format(out=str(out)))
    code, text = project.run("-n", "2", "--dist=loadgroup", "--edgeperf-json=results.json", "-p", "xdist",
                             timeout_s=180)
    return project, out, code, text


def test_xdist_measurements_never_overlap_and_plain_tests_run_in_parallel(
        xdist_run: tuple[Project, Path, int, str]) -> None:
    _, out, code, text = xdist_run
    assert code == 0, text
    assert "8 passed" in text, text
    # the two plain tests met: they ran at the same time on the two workers
    assert {(out / "plain_a").read_text(), (out / "plain_b").read_text()} == {"gw0", "gw1"}
    windows = [json.loads(p.read_text()) for p in sorted(out.glob("window_*.json"))]
    assert len(windows) == 6
    assert {w["worker"] for w in windows} == {"gw0", "gw1"}  # both workers measured
    # perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process on the machine
    spans = sorted((w["start"], w["end"], w["test_id"]) for w in windows)
    for (s1, e1, id1), (s2, _, id2) in itertools.pairwise(spans):
        assert e1 <= s2, f"{id1} [{s1:.3f}, {e1:.3f}] overlaps {id2} starting {s2:.3f}"


def test_xdist_json_holds_the_results_of_every_worker(xdist_run: tuple[Project, Path, int, str]) -> None:
    project, _, code, text = xdist_run
    assert code == 0, text
    data = json.loads((project.path / "results.json").read_text())
    assert len(data["results"]) == 6, [r["test_id"] for r in data["results"]]
