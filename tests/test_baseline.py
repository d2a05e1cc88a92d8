"""Tests for pytest_edgeperf.baseline: entries, file layout, errors, atomic and concurrent updates."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="property tests need hypothesis (pip install -e '.[dev]')")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_edgeperf.baseline import (
    BASELINE_SCHEMA_VERSION,
    MAX_STORED_SAMPLES,
    BaselineEntry,
    BaselineError,
    BaselineStore,
    describe_changes,
    module_filename,
    recordable_reason,
)
from pytest_edgeperf.result import Result, Samples

REPO = Path(__file__).resolve().parent.parent
NODE = "suites/sub/test_arch.py::test_arch[squeezenet-onnxruntime]"


def make_result(seed: int = 0, n: int = 300, scale: float = 1.0, test_id: str = NODE, **kw) -> Result:
    rng = np.random.default_rng(seed)
    lat = (0.02 * scale * (1 + rng.gamma(2.0, 0.02, n))).tolist()
    return Result(test_id=test_id, framework="onnxruntime", model="squeezenet", device="pi4", threads=2,
                  samples=Samples(latency_s=lat, valid=[True] * n), peak_rss_mb=100.0,
                  environment={"model_sha256": "ab" * 32, "git_commit": "deadbeef"}, **kw)


def entry(seed: int = 0, **kw) -> BaselineEntry:
    return BaselineEntry.from_result(make_result(seed, **kw), recorded_at="2024-01-02T03:04:05+00:00",
                                     recorded_by={"host": "h", "command": "pytest", "git_commit": "deadbeef"})


# --- entries ---------------------------------------------------------------------------------------------
def test_entry_round_trip_and_samples_mirror_result() -> None:
    result = make_result(1)
    e = BaselineEntry.from_result(result)
    back = BaselineEntry.from_json(json.loads(json.dumps(e.to_json())))
    assert back == e
    assert back.metrics["fps"] == pytest.approx(result.metric_values()["fps"], rel=1e-5)
    assert back.environment["device"] == "pi4" and back.environment["threads"] == 2
    assert back.environment["runtime"] == "onnxruntime"
    assert back.recorded_by["git_commit"] == "deadbeef"
    assert back.recorded_at.endswith("+00:00")
    np.testing.assert_allclose(back.metric_samples("latency_p50_ms"), result.metric_samples("latency_p50_ms"),
                               rtol=1e-5)
    np.testing.assert_allclose(back.metric_samples("fps"), result.metric_samples("fps"), rtol=1e-5)
    assert back.metric_samples("peak_memory_mb") is None


def test_samples_are_bounded_by_deterministic_decimation() -> None:
    result = make_result(2, n=5000)
    a, b = BaselineEntry.from_result(result), BaselineEntry.from_result(result)
    assert len(a.samples["latency_ms"]) == MAX_STORED_SAMPLES
    assert a.samples == b.samples
    assert a.sample_count == 5000
    full = result.metric_samples("latency_p50_ms")
    assert np.median(a.samples["latency_ms"]) == pytest.approx(np.median(full), rel=0.01)


def test_recordable_reason() -> None:
    assert recordable_reason(make_result()) is None
    assert "quick" in (recordable_reason(make_result(quick=True)) or "")
    assert "inconclusive" in (recordable_reason(make_result(status="inconclusive")) or "")
    assert "no valid samples" in (recordable_reason(make_result(n=0)) or "")


@pytest.mark.parametrize(
    ("data", "says"),
    [([], "expected an object"), ({"metrics": {}}, "missing field"),
     ({"metrics": {"fps": True}, "environment": {}, "recorded_at": "x"}, "'metrics'"),
     ({"metrics": {}, "environment": {}, "recorded_at": "x", "samples": {"latency_ms": ["1"]}}, "'samples'"),
     ({"metrics": {}, "environment": [], "recorded_at": "x"}, "'environment'"),
     ({"metrics": {}, "environment": {}, "recorded_at": 5}, "'recorded_at'"),
     ({"metrics": {}, "environment": {}, "recorded_at": "x", "sample_count": -1}, "'sample_count'")],
)
def test_entry_from_json_rejects_bad_shapes(data, says: str) -> None:
    with pytest.raises(BaselineError, match=says):
        BaselineEntry.from_json(data)


# --- the store ---------------------------------------------------------------------------------------
def test_layout_and_diff_friendly_format(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: entry(1), "suites/sub/test_arch.py::TestX::test_a[m]": entry(2)})
    path = tmp_path / "pi4" / "suites__sub__test_arch.json"
    assert store.path_for(NODE) == path
    text = path.read_text()
    assert text.endswith("}\n")
    data = json.loads(text)
    assert data["schema_version"] == BASELINE_SCHEMA_VERSION and data["device"] == "pi4"
    keys = list(data["entries"])
    assert keys == sorted(keys) == ["TestX::test_a[m]", "test_arch[squeezenet-onnxruntime]"]
    assert '\n  "device": "pi4",\n' in text  # indent=2
    assert text.count("\n") < 100  # sample lists stay on one line each
    assert module_filename("tests/test_a.py") == "tests__test_a.json"
    fresh = BaselineStore(tmp_path, "pi4")
    assert fresh.lookup(NODE) == entry(1)
    assert fresh.lookup("suites/sub/test_arch.py::test_other") is None
    assert fresh.lookup("suites/none.py::test_x") is None


def test_update_merges_and_reports_changes(tmp_path: Path) -> None:
    other = "suites/sub/test_arch.py::test_arch[mobilenet-litert]"
    store = BaselineStore(tmp_path, "pi4")
    changes = store.update({NODE: entry(1), other: entry(2)})
    assert [c.kind for c in changes] == ["added", "added"]
    # A later update of one test (think `-k squeezenet`) leaves the other entry byte-for-byte alone.
    before = json.loads(store.path_for(NODE).read_text())["entries"]["test_arch[mobilenet-litert]"]
    changes = BaselineStore(tmp_path, "pi4").update({NODE: entry(3, scale=1.5)})
    assert [c.kind for c in changes] == ["updated"]
    after = json.loads(store.path_for(NODE).read_text())["entries"]
    assert after["test_arch[mobilenet-litert]"] == before
    text = describe_changes(changes)
    assert "test_arch[squeezenet-onnxruntime]: updated" in text
    assert "fps" in text and "->" in text and "%" in text
    again = BaselineStore(tmp_path, "pi4").update({NODE: entry(3, scale=1.5)})
    assert [c.kind for c in again] == ["unchanged"]


BAD_FILES = [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"[1, 2]", "expected an object"),
    (b'{"schema_version": 99, "device": "pi4", "entries": {}}', "schema_version is 99"),
    (b'{"schema_version": 1, "device": "pi5", "entries": {}}', "recorded for device 'pi5'"),
    (b'{"schema_version": 1, "device": "pi4"}', "missing field 'entries'"),
    (b'{"schema_version": 1, "device": "pi4", "entries": {"t": {"metrics": {}}}}', "missing field"),
    (b'{"schema_version": 1, "device": "pi4", "entries": {"t": {"metrics": {"fps": NaN}}}}',
     "not valid JSON"),
]


@pytest.mark.parametrize(("content", "says"), BAD_FILES)
def test_bad_file_is_a_one_line_error_and_left_untouched(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "pi4" / "suites__sub__test_arch.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(BaselineError) as info:
        BaselineStore(tmp_path, "pi4").lookup(NODE)
    msg = str(info.value)
    assert str(path) in msg and says in msg and "\n" not in msg
    # A merge must refuse the corrupt file too, and not touch it (nor any other file of the update).
    with pytest.raises(BaselineError) as info:
        BaselineStore(tmp_path, "pi4").update({NODE: entry(1), "suites/fine.py::test_y": entry(2)})
    assert str(path) in str(info.value)
    assert path.read_bytes() == content
    assert not (tmp_path / "pi4" / "suites__fine.json").exists()


@pytest.mark.parametrize("content", [b"", b"  \n"])
def test_an_empty_file_is_an_error_to_a_compare_and_re_recorded_by_an_update(tmp_path: Path, content: bytes) -> None:
    """The error's advice ("delete it or re-record with --edgeperf-update-baselines") must work as written."""
    path = tmp_path / "pi4" / "suites__sub__test_arch.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(BaselineError, match="file is empty; delete it or re-record with --edgeperf-update-baselines"):
        BaselineStore(tmp_path, "pi4").lookup(NODE)
    assert path.read_bytes() == content
    updating = BaselineStore(tmp_path, "pi4", updating=True)
    assert updating.lookup(NODE) is None  # an update judges the test as new, then records it
    assert [c.kind for c in updating.update({NODE: entry(1)})] == ["added"]
    assert BaselineStore(tmp_path, "pi4").lookup(NODE) == entry(1)


@pytest.mark.parametrize(("module", "name"), [
    ("suites/test_a.py", "suites__test_a.json"),  # committed names stay as they were
    ("tests/sub/test_x.py", "tests__sub__test_x.json"),
    ("a/" * 60 + "test_x.py", "a__" * 60 + "test_x.json"),  # 197 bytes: still readable
])
def test_short_module_names_are_unchanged(module: str, name: str) -> None:
    assert module_filename(module) == name


def test_a_deep_module_path_maps_to_a_legal_stable_file_name(tmp_path: Path) -> None:
    """Directories joined by "__" exceed 255 bytes long before the path does (PATH_MAX is 4096)."""
    parts = [f"package_level_{i:02d}_with_a_long_descriptive_name" for i in range(12)]
    module = "/".join(parts) + "/test_x.py"
    node = f"{module}::test_model[onnxruntime]"
    name = module_filename(module)
    assert len(name.encode()) <= 200 and name.endswith("__test_x-" + name[-21:-5] + ".json")
    assert module_filename(module) == name  # stable: a function of the path alone
    assert module_filename(module.replace("level_00", "level_0X")) != name  # other paths, other files
    unicode_module = "/".join(["ünïcödé_directory_name_" * 3] * 8) + "/test_π.py"
    assert len(module_filename(unicode_module).encode()) <= 200
    module_filename(unicode_module).encode("utf-8")  # cut on a character boundary
    store = BaselineStore(tmp_path, "pi4")
    assert [c.kind for c in store.update({node: entry(1)})] == ["added"]
    assert store.path_for(node).name == name
    assert BaselineStore(tmp_path, "pi4").lookup(node) == entry(1)
    assert json.loads(store.path_for(node).read_text())["module"] == module


OUT_OF_RANGE = [
    ({"samples": {"latency_ms": [-1.0, -2.0]}}, "'latency_ms' holds -1.0"),
    ({"samples": {"latency_ms": [1e308, 1e308]}}, "'latency_ms' holds 1e+308"),
    ({"samples": {"latency_ms": [0.0]}}, "'latency_ms' holds 0.0"),
    ({"samples": {"process_latency_ms": [0]}}, "'process_latency_ms' holds 0"),
    ({"samples": {"process_reference_ms": [-3.0]}}, "'process_reference_ms' holds -3.0"),
    ({"metrics": {"fps": -100}}, "'fps' is -100"),
    ({"metrics": {"fps": 0}}, "'fps' is 0"),
    ({"metrics": {"latency_p90_ms": 1e300}}, "'latency_p90_ms' is 1e+300"),
    ({"metrics": {"reference_ms": 0.0}}, "'reference_ms' is 0.0"),
    ({"metrics": {"top1_pct": 101}}, "'top1_pct' is 101"),
    ({"metrics": {"cpu_wait_pct": -5}}, "'cpu_wait_pct' is -5"),
    ({"metrics": {"peak_memory_mb": -1}}, "'peak_memory_mb' is -1"),
    ({"metrics": {"instructions_per_inference": -1}}, "'instructions_per_inference' is -1"),
    ({"metrics": {"my_own_metric": 1e200}}, "'my_own_metric' is 1e+200"),
    ({"metrics": {"fps": 10**400}}, "'fps' is"),
    ({"history": [{"recorded_at": "t", "process_latency_ms": [0.0]}]}, "'process_latency_ms' holds 0.0"),
]


@pytest.mark.parametrize(("change", "says"), OUT_OF_RANGE)
def test_out_of_range_values_are_refused_by_reader_and_writer_alike(tmp_path: Path, change: dict, says: str) -> None:
    """One set of rules: what the reader refuses, an update refuses to write (and a refused file stays as it was)."""
    good = entry(1).to_json()
    bad = {**good, **{k: {**good[k], **v} if isinstance(v, dict) else v for k, v in change.items()}}
    with pytest.raises(BaselineError, match=re.escape(says)):
        BaselineEntry.from_json(bad)
    # the reader: one line naming the file and the entry; the file is left byte-for-byte alone by an update too
    path = tmp_path / "pi4" / "suites__sub__test_arch.json"
    path.parent.mkdir()
    doc = {"schema_version": 1, "device": "pi4", "module": "suites/sub/test_arch.py",
           "entries": {"test_arch[squeezenet-onnxruntime]": bad}}
    raw = json.dumps(doc).encode()
    path.write_bytes(raw)
    for store in (BaselineStore(tmp_path, "pi4"), BaselineStore(tmp_path, "pi4", updating=True)):
        with pytest.raises(BaselineError) as info:
            store.lookup(NODE)
        assert str(path) in str(info.value) and "\n" not in str(info.value) and says.split()[0] in str(info.value)
    with pytest.raises(BaselineError):
        BaselineStore(tmp_path, "pi4").update({"suites/sub/test_arch.py::test_other": entry(2)})
    assert path.read_bytes() == raw
    # the writer: the same entry, offered to an update, is refused naming the test, and nothing is written
    path.unlink()
    offered = BaselineEntry(metrics=dict(good["metrics"]), samples={k: list(v) for k, v in good["samples"].items()},
                            environment=good["environment"], recorded_at=good["recorded_at"])
    for key, value in change.items():
        if key == "history":
            offered.history = value
        else:
            getattr(offered, key).update(value)
    with pytest.raises(BaselineError, match=r"entry 'test_arch\[squeezenet-onnxruntime\]' not recorded: "):
        BaselineStore(tmp_path, "pi4").update({NODE: offered, "suites/sub/test_arch.py::test_fine": entry(2)})
    assert not path.exists()


def test_a_zero_process_time_never_reaches_the_history(tmp_path: Path) -> None:
    """Issue 15.1: samples.process_latency_ms [0] was accepted, the next update moved it into ``history``, and the
    reader then refused the file for ever. Now the reader refuses the first file, and an update never writes it."""
    def recording(seed: int, process_ms: list[float]) -> BaselineEntry:
        e = entry(seed)
        e.samples["process_latency_ms"] = process_ms
        return e

    with pytest.raises(BaselineError, match=r"'process_latency_ms' holds 0\.0"):
        BaselineStore(tmp_path, "pi4").update({NODE: recording(1, [0.0])})
    assert not (tmp_path / "pi4" / "suites__sub__test_arch.json").exists()
    BaselineStore(tmp_path, "pi4").update({NODE: recording(2, [20.0, 21.0])})
    BaselineStore(tmp_path, "pi4").update({NODE: recording(3, [20.5, 20.7])})  # the first moves into the history
    again = BaselineStore(tmp_path, "pi4").lookup(NODE)
    assert again is not None and again.history[0]["process_latency_ms"] == [20.0, 21.0]


def test_unwritable_root_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(BaselineError) as info:
        BaselineStore(blocker, "pi4").update({NODE: entry(1)})
    assert str(blocker) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: entry(1)})
    old = store.path_for(NODE).read_bytes()
    (tmp_path / "pi4").chmod(0o500)
    try:
        with pytest.raises(BaselineError, match="cannot"):
            BaselineStore(tmp_path, "pi4").update({NODE: entry(2)})
    finally:
        (tmp_path / "pi4").chmod(0o700)
    assert store.path_for(NODE).read_bytes() == old


def test_disk_full_keeps_old_file_and_cleans_temp(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the write fail mid-file (EFBIG), the way a full disk does."""
    BaselineStore(tmp_path, "pi4").update({NODE: entry(1, n=10)})
    path = tmp_path / "pi4" / "suites__sub__test_arch.json"
    old = path.read_bytes()
    doc = entry(2, n=3000).to_json()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from pytest_edgeperf.baseline import BaselineEntry, BaselineStore, BaselineError
        e = BaselineEntry.from_json({doc!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(old) + 100}, {len(old) + 100}))
        try:
            BaselineStore(Path({str(tmp_path)!r}), "pi4").update({{{NODE!r}: e}})
        except BaselineError as exc:
            print("ERR", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("ERR "), out.stderr
    assert "cannot write baseline" in out.stdout and str(path) in out.stdout
    assert path.read_bytes() == old
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([".lock", path.name, "samples"])  # + raw samples
    assert not [p for p in (path.parent / "samples").iterdir() if p.name.endswith(".tmp")]  # no temp left there


def _concurrent_writer(root: str, worker: int, count: int) -> None:
    store = BaselineStore(Path(root), "pi4")
    for i in range(count):
        store.update({f"suites/test_c.py::test_w{worker}_{i}": entry(worker * 100 + i, n=50)})


def test_concurrent_updates_lose_no_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_concurrent_writer, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads((tmp_path / "pi4" / "suites__test_c.json").read_text())
    assert set(data["entries"]) == {f"test_w{w}_{i}" for w in range(4) for i in range(15)}


_KILL_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from pytest_edgeperf.baseline import BaselineEntry, BaselineStore
    NODE = {node!r}
    store = BaselineStore(Path({root!r}), "pi4")
    entries = [BaselineEntry.from_json(d) for d in {docs!r}]
    print("ready", flush=True)
    i = 0
    while True:
        store.update({{NODE: entries[i % 2], "suites/sub/test_arch.py::test_n" + str(i % 7): entries[0]}})
        i += 1
""")


def test_sigkill_mid_update_leaves_old_or_new_file(tmp_path: Path) -> None:
    BaselineStore(tmp_path, "pi4").update({NODE: entry(0, n=3000)})
    docs = [entry(i, n=3000).to_json() for i in range(2)]
    valid = {json.dumps(d, sort_keys=True) for d in docs}
    rng = random.Random(42)
    for _ in range(5):
        script = _KILL_WRITER.format(repo=str(REPO), root=str(tmp_path), node=NODE, docs=docs)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored = BaselineStore(tmp_path, "pi4").lookup(NODE)  # raises if half-written
        assert stored is not None
        stored.history = []  # each update extends the run history (noise.py); the rest is old or new, whole
        assert json.dumps(stored.to_json(), sort_keys=True) in valid
    # Temp files of killed writers are cleaned by the next update.
    BaselineStore(tmp_path, "pi4").update({NODE: entry(0, n=10)})
    assert not [p for p in (tmp_path / "pi4").iterdir() if p.name.endswith(".tmp")]


# --- the reader never crashes with anything but BaselineError ------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
almost_valid = st.fixed_dictionaries(
    {"schema_version": st.just(1) | json_values, "device": st.just("pi4") | json_values,
     "entries": st.dictionaries(st.just("test_arch[squeezenet-onnxruntime]") | st.text(max_size=5),
                                st.fixed_dictionaries({"metrics": json_values | st.just({"fps": 1.0}),
                                                       "environment": json_values | st.just({}),
                                                       "recorded_at": json_values | st.just("t")},
                                                      optional={"samples": json_values,
                                                                "sample_count": json_values,
                                                                "quick": json_values}),
                                max_size=2) | json_values},
)


def _read(root: Path, content: bytes) -> None:
    path = root / "pi4" / "suites__sub__test_arch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    try:
        got = BaselineStore(root, "pi4").lookup(NODE)
    except BaselineError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert got is None or isinstance(got, BaselineEntry)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200))
def test_reader_survives_arbitrary_bytes(tmp_path: Path, content: bytes) -> None:
    _read(tmp_path, content)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=json_values | almost_valid)
def test_reader_survives_arbitrary_json(tmp_path: Path, doc) -> None:
    _read(tmp_path, json.dumps(doc).encode())


def test_reader_survives_deep_nesting(tmp_path: Path) -> None:
    _read(tmp_path, b"[" * 100000 + b"]" * 100000)
