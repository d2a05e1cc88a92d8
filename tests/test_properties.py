"""Property-based tests (hypothesis) for the two readers of user input: marker arguments and baseline files.

``config.parse_marker`` must turn any keyword arguments whatsoever into a MarkerSpec or a one-line
``pytest.UsageError`` naming the test and the argument, never another exception; valid arguments must round-trip.
The baseline reader must accept every file the writer produces and turn every damaged one into a one-line
``BaselineError`` naming the file (arbitrary bytes/JSON are already covered in tests/test_baseline.py); it refuses
out-of-range numbers (a zero, negative or absurd time), whatever ``BaselineStore.update`` writes from accepted input
the reader accepts again, and the verdict never raises on any entry the reader accepted.
"""

from __future__ import annotations

import dataclasses
import decimal
import fractions
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="property tests need hypothesis (pip install -e '.[dev]')")

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pytest_edgeperf.baseline import (
    ANY_RANGE,
    SAMPLE_RANGES,
    BaselineEntry,
    BaselineError,
    BaselineStore,
    metric_range,
)
from pytest_edgeperf.config import MarkerSpec, parse_marker
from pytest_edgeperf.frameworks import ALIASES, FRAMEWORKS
from pytest_edgeperf.result import Result, Samples
from pytest_edgeperf.verdict.judge import judge

TEST_ID = "suites/test_x.py::test_model"
FIELDS = tuple(MarkerSpec.__dataclass_fields__)

# ---- parse_marker: anything in, UsageError or a spec out -----------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
           | st.floats() | st.text(max_size=12) | st.binary(max_size=8)
           | st.sampled_from([decimal.Decimal("1.5"), decimal.Decimal("NaN"), fractions.Fraction(1, 3),
                              np.int64(4), np.float32(2.5), np.float64("nan"), Path("m.onnx"), object(),
                              "onnxruntime", "ort", "tflite", "zoo:tiny_cnn", "fps=5%", "random"]))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=3) | st.tuples(kids, kids)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(["fps", "size", "task", "dataset"]),
                                        kids, max_size=3), max_leaves=8)
names = st.sampled_from(FIELDS) | st.text(max_size=10)


def _parse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkerSpec | None:
    try:
        return parse_marker(TEST_ID, args, kwargs)
    except pytest.UsageError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert message.startswith(f"{TEST_ID}: @pytest.mark.edgeperf argument "), message
        return None


@settings(max_examples=400, deadline=None)
@given(args=st.lists(values, max_size=2).map(tuple), kwargs=st.dictionaries(names, values, max_size=5))
@example(args=(), kwargs={"min_fps": 10**400})  # an int too large for a float
@example(args=(), kwargs={"threads": np.int64(2)})
@example(args=(), kwargs={"tolerance": {"fps": 10**400}})
@example(args=(), kwargs={"accuracy": {"task": ["classification"], "dataset": "d"}})
@example(args=(), kwargs={"preprocess": {"size": 10**400}})
@example(args=(), kwargs={"preprocess": {"mean": ["a", "b", "c"]}})
@example(args=(), kwargs={"frameworks": []})
@example(args=(), kwargs={"inputs": "x:y", "min_time_s": 5, "max_time_s": 1})
def test_any_marker_arguments_give_a_spec_or_one_usage_error(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    spec = _parse(args, kwargs)
    if spec is not None:
        assert isinstance(spec, MarkerSpec)


def _pos_int() -> st.SearchStrategy[int]:
    return st.integers(min_value=1, max_value=10**6)


def _pos_float() -> st.SearchStrategy[float]:
    return st.floats(min_value=1e-6, max_value=1e9, allow_nan=False) | st.integers(min_value=1, max_value=10**6)


def _non_neg_float() -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.integers(min_value=0, max_value=10**6)


def _pct() -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=100, allow_nan=False) | st.integers(min_value=0, max_value=100)


VALID: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["tiny.onnx", "models/squeezenet1_1", "zoo:mobilenet_v1", "/abs/m.tflite"]),
    "frameworks": st.sampled_from(sorted(FRAMEWORKS) + sorted(ALIASES))
    | st.lists(st.sampled_from(sorted(FRAMEWORKS) + sorted(ALIASES)), min_size=1, max_size=4),
    "threads": st.integers(min_value=1, max_value=1024),  # the option ranges (config.RANGES) bound these too
    "min_samples": _pos_int(),
    "min_time_s": st.floats(min_value=0, max_value=86_000, allow_nan=False) | st.integers(0, 86_000),
    "warmup_s": _non_neg_float(),
    "min_fps": _pos_float(),
    "max_latency_ms": _pos_float(),
    "max_memory_mb": _pos_float(),
    "min_top1_pct": _pct(),
    "min_top5_pct": _pct(),
    "min_map50_pct": _pct(),
    "max_energy_per_inference_mj": _pos_float(),
    "min_freq_ghz": st.floats(min_value=1e-6, max_value=10, allow_nan=False) | st.integers(1, 10),
    "sustained_s": st.floats(min_value=1e-6, max_value=86_400, allow_nan=False) | st.integers(1, 86_400),
    "inputs": st.sampled_from(["random", "data/val", "data/val.csv", "inputs:frames"]),
    "preprocess": st.fixed_dictionaries({}, optional={"size": st.integers(1, 512), "crop": st.integers(1, 512),
                                                      "mean": st.lists(st.floats(0, 255), min_size=3, max_size=3),
                                                      "scale": st.floats(0.001, 10),
                                                      "channel_order": st.sampled_from(["RGB", "BGR", "bgr"]),
                                                      "layout": st.sampled_from(["NHWC", "NCHW"])}),
    "accuracy": st.fixed_dictionaries({"dataset": st.sampled_from(["data/val", "val.csv"])},
                                      optional={"task": st.sampled_from(["classification", "detection"])}),
    "tolerance": st.dictionaries(st.sampled_from(["fps", "latency_p90_ms", "peak_memory_mb", "timing"]),
                                 st.floats(0, 50), max_size=3),
    "counters": st.booleans(),
    "hotspots": st.booleans(),
}


@st.composite
def valid_markers(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=8))
    kwargs = {k: draw(VALID[k]) for k in keys}
    if "max_time_s" not in kwargs and draw(st.booleans()):
        kwargs["max_time_s"] = kwargs.get("min_time_s", 0) + draw(st.floats(0.001, 100))
    return kwargs


@settings(max_examples=300, deadline=None)
@given(kwargs=valid_markers(), positional=st.booleans())
def test_valid_marker_arguments_round_trip(kwargs: dict[str, Any], positional: bool) -> None:
    args: tuple[Any, ...] = ()
    if positional and "model" in kwargs:
        args = (kwargs.pop("model"),)
        expected_model = args[0]
    else:
        expected_model = kwargs.get("model")
    spec = parse_marker(TEST_ID, args, kwargs)
    assert spec.model == expected_model
    for name, value in kwargs.items():
        got = getattr(spec, name)
        if name == "frameworks":
            given_names = [value] if isinstance(value, str) else value
            want = tuple(dict.fromkeys(ALIASES.get(n, n) for n in given_names))
            assert got == want
        elif name == "tolerance":
            assert got == {k: float(v) for k, v in value.items()}
        elif isinstance(value, (bool, str, dict)):
            assert got == value
        elif isinstance(value, (int, float)) and name not in ("threads", "min_samples"):
            assert isinstance(got, float) and got == float(value)
        else:
            assert got == value
    # the spec is a fixed point: its own fields, given back as marker arguments, give the same spec
    again = parse_marker(TEST_ID, (), {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
    assert again == spec


# ---- the baseline reader --------------------------------------------------------------------------------------

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
metric_names = st.sampled_from(["fps", "latency_p50_ms", "latency_p90_ms", "peak_memory_mb", "top1_pct"]) | st.text(
    min_size=1, max_size=12)
json_text = st.text(max_size=20)
env_values = st.none() | st.booleans() | st.integers(-10**6, 10**6) | finite | json_text



def in_range(bounds: tuple[float, float]) -> st.SearchStrategy[float]:
    """Numbers the reader accepts for a field, the bounds themselves included."""
    lo, hi = bounds
    return st.floats(lo, hi) | st.sampled_from([lo, hi])


@st.composite
def valid_metrics(draw: st.DrawFn) -> dict[str, float]:
    names = draw(st.lists(metric_names, unique=True, max_size=5))
    return {name: draw(in_range(metric_range(name))) for name in names}


entries = st.builds(
    BaselineEntry,
    metrics=valid_metrics(),
    samples=st.dictionaries(st.just("latency_ms"), st.lists(st.floats(0.001, 1e4), max_size=30), max_size=1),
    sample_count=st.integers(0, 10**6),
    environment=st.dictionaries(json_text, env_values, max_size=4),
    recorded_at=st.just("2024-01-02T03:04:05+00:00") | json_text,
    recorded_by=st.dictionaries(st.sampled_from(["host", "command", "git_commit"]), json_text, max_size=3),
    quick=st.booleans(),
)
test_names = st.text(min_size=1, max_size=24).filter(lambda s: "::" not in s and s.strip() == s) | st.sampled_from(
    ["test_a[onnxruntime]", "TestX::test_b[litert-int8]", "test_ü[π]"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.dictionaries(test_names, entries, min_size=1, max_size=4))
def test_every_written_file_reads_back_the_same(tmp_path: Path, stored: dict[str, BaselineEntry]) -> None:
    module = "suites/test_prop.py"
    root = tmp_path / f"r{abs(hash(json.dumps(sorted(stored)))) % 10**9}"
    BaselineStore(root, "pi4").update({f"{module}::{name}": entry for name, entry in stored.items()})
    fresh = BaselineStore(root, "pi4")
    for name, entry in stored.items():
        back = fresh.lookup(f"{module}::{name}")
        assert back is not None and back.to_json() == entry.to_json()


def _valid_doc() -> dict[str, Any]:
    entry = {"metrics": {"fps": 30.0, "latency_p90_ms": 40.0}, "samples": {"latency_ms": [33.0, 34.5]},
             "sample_count": 2, "environment": {"device": "pi4"}, "recorded_at": "2024-01-02T03:04:05+00:00",
             "recorded_by": {"host": "h"}, "quick": False}
    return {"schema_version": 1, "device": "pi4", "module": "suites/test_prop.py",
            "entries": {"test_a[onnxruntime]": entry}}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.extend(_paths(v, (*prefix, i)))
    return out


PATHS = _paths(_valid_doc())
replacement = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
               | st.lists(st.integers(), max_size=2) | st.just({}))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(PATHS), new=replacement | st.just("<delete>"))
def test_one_damaged_field_is_read_or_refused_in_one_line(tmp_path: Path, where: tuple[Any, ...], new: Any) -> None:
    doc = _valid_doc()
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    if new == "<delete>":
        if isinstance(parent, list):
            parent.pop(where[-1])
        else:
            del parent[where[-1]]
    else:
        assume(not (isinstance(new, float) and math.isinf(new)))
        parent[where[-1]] = new
    path = tmp_path / "pi4" / "suites__test_prop.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    try:
        entry = BaselineStore(tmp_path, "pi4").lookup("suites/test_prop.py::test_a[onnxruntime]")
    except BaselineError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        # an update refuses to merge into it, and leaves it as it was
        with pytest.raises(BaselineError):
            BaselineStore(tmp_path, "pi4").update({"suites/test_prop.py::test_z": BaselineEntry(metrics={})})
        assert path.read_bytes() == before
    else:
        assert entry is None or all(math.isfinite(v) for v in entry.metrics.values())


# ---- out-of-range numbers: one set of rules for the reader and the writer ----------------------------------------

STORED_KEYS = ("latency_ms", "process_latency_ms", "process_reference_ms")
#: a mix the reader accepts and refuses: ordinary values, the bounds, zero, negatives, the absurd
any_number = (st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**20, 10**20)
              | st.sampled_from([0, 0.0, -0.0, -1.0, 1e-300, 1e-6, 1e9, 1e15, 1e16, 1e308, -1e308, 5e-324, 10**400])
              | st.floats(0.01, 1e4))
TIMING_METRICS = ["fps", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "reference_ms", "cpu_wait_pct",
                  "peak_memory_mb", "top1_pct", "model_memory_mb", "energy_per_inference_j", "my_own_metric"]


@st.composite
def raw_entries(draw: st.DrawFn) -> dict[str, Any]:
    """An entry as a file could hold it: right shape, any numbers (the reader decides which are in range)."""
    number = st.floats(0.05, 200.0) | any_number if draw(st.booleans()) else any_number
    per_process = st.lists(number, min_size=0, max_size=6)
    samples = {k: draw(st.lists(number, max_size=40) if k == "latency_ms" else per_process)
               for k in STORED_KEYS if draw(st.booleans())}
    history = [{"recorded_at": "2024-01-01T00:00:00+00:00", "process_latency_ms": draw(st.lists(number, min_size=1,
                                                                                                  max_size=6)),
                **({"process_reference_ms": draw(per_process)} if draw(st.booleans()) else {})}
               for _ in range(draw(st.integers(0, 3)))]
    env = {"device": "host", "runtime": "onnxruntime", "threads": 2, "runtime_version": "1.17",
           "hostname": "box", "cpu": "Some CPU", "model_sha256": "a" * 64,
           "min_time_s": draw(st.sampled_from([1.0, 5.0, "x", None, -1.0, 1e308]))}
    return {"metrics": draw(st.dictionaries(st.sampled_from(TIMING_METRICS), number, max_size=6)),
            "samples": samples, "sample_count": 3, "environment": env,
            "recorded_at": "2024-01-02T03:04:05+00:00", "recorded_by": {}, "quick": False, "history": history}


def _accepted(data: dict[str, Any]) -> BaselineEntry | None:
    try:
        return BaselineEntry.from_json(json.loads(json.dumps(data)))
    except BaselineError as exc:
        assert "\n" not in str(exc)
        return None


def _current() -> Result:
    """A measurement the stored entries are judged against: 5 processes, each timing the reference model too."""
    rng = np.random.default_rng(0)
    lat = list(2e-3 * (1.0 + rng.gamma(2.0, 0.01, 400)))
    ref = list(5e-5 * (1.0 + rng.gamma(2.0, 0.01, 100)))
    return Result(test_id="t.py::test_x", framework="onnxruntime", model="m.onnx", device="host", threads=2,
                  samples=Samples(latency_s=lat, valid=[True] * 400, process=[i // 80 for i in range(400)],
                                  reference_s=ref, reference_process=[i // 20 for i in range(100)]),
                  peak_rss_mb=100.0, cpu_wait_pct=1.0, accuracy={"top1_pct": 90.0},
                  environment={"device": "host", "runtime": "onnxruntime", "threads": 2, "runtime_version": "1.17",
                               "hostname": "box", "cpu": "Some CPU", "model_sha256": "a" * 64, "min_time_s": 1.0})


def _in_range(data: dict[str, Any]) -> bool:
    """What the rules say, written out again independently of baseline.py's code."""
    def ok(v: Any, bounds: tuple[float, float]) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300
                and bounds[0] <= v <= bounds[1])

    return (all(ok(v, metric_range(k)) for k, v in data["metrics"].items())
            and all(ok(v, SAMPLE_RANGES.get(k, ANY_RANGE)) for k, vs in data["samples"].items() for v in vs)
            and all(ok(v, SAMPLE_RANGES[k]) for h in data["history"] for k in STORED_KEYS for v in h.get(k, [])))


@settings(max_examples=300, deadline=None)
@given(data=raw_entries())
@example(data={"metrics": {"fps": -100.0}, "samples": {}, "sample_count": 0, "environment": {}, "recorded_at": "t",
               "history": []})
@example(data={"metrics": {}, "samples": {"latency_ms": [-1.0] * 20}, "sample_count": 0, "environment": {},
               "recorded_at": "t", "history": []})
@example(data={"metrics": {}, "samples": {"latency_ms": [1e308] * 20}, "sample_count": 0, "environment": {},
               "recorded_at": "t", "history": []})
@example(data={"metrics": {}, "samples": {"process_latency_ms": [0]}, "sample_count": 0, "environment": {},
               "recorded_at": "t", "history": []})
def test_the_reader_refuses_out_of_range_numbers_and_the_verdict_never_raises_on_what_it_accepts(
        data: dict[str, Any]) -> None:
    entry = _accepted(data)
    assert (entry is not None) == _in_range(data), data
    if entry is None:
        return
    for limit in (10.0, 100.0):  # timing judged (100) or left inconclusive by a busy side (10)
        verdict = judge(_current(), entry, {}, max_cpu_wait_pct=limit)
        assert verdict.overall in ("PASS", "REGRESSION", "IMPROVED", "INCONCLUSIVE", "NEW")
        assert all(m.change_pct is None or not math.isnan(m.change_pct) for m in verdict.metrics)


def _as_entry(data: dict[str, Any]) -> BaselineEntry:
    """An entry offered to an update, built from the same fields (not through the reader)."""
    return BaselineEntry(metrics=dict(data["metrics"]), samples={k: list(v) for k, v in data["samples"].items()},
                         sample_count=data["sample_count"], environment=dict(data["environment"]),
                         recorded_at=data["recorded_at"], history=[dict(h) for h in data["history"]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=raw_entries(), new=raw_entries())
@example(old={"metrics": {}, "samples": {"process_latency_ms": [0]}, "sample_count": 0,
              "environment": {"device": "host"}, "recorded_at": "t", "history": []},
         new={"metrics": {}, "samples": {"process_latency_ms": [2.0]}, "sample_count": 0,
              "environment": {"device": "host"}, "recorded_at": "u", "history": []})
def test_whatever_an_update_writes_the_reader_accepts(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Round trip: an accepted file plus any offered entry -> update -> the file is still accepted (or, when the
    offered entry breaks the rules, the update refuses it and the stored file stays byte-for-byte as it was)."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))  # one fresh directory per example
    path = root / "pi4" / "suites__test_prop.json"
    path.parent.mkdir(parents=True)
    doc = {"schema_version": 1, "device": "pi4", "module": "suites/test_prop.py", "entries": {"test_a": old}}
    raw = json.dumps(doc).encode()
    path.write_bytes(raw)
    stored_ok = _accepted(old) is not None
    offered_ok = _accepted(new) is not None
    try:
        BaselineStore(root, "pi4").update({"suites/test_prop.py::test_a": _as_entry(new),
                                           "suites/test_prop.py::test_b": _as_entry(new)})
    except BaselineError as exc:
        assert not (stored_ok and offered_ok), exc  # accepted input is never refused
        assert "\n" not in str(exc) and str(path) in str(exc)
        assert path.read_bytes() == raw  # a refused update leaves the stored file as it was
        return
    assert stored_ok and offered_ok
    fresh = BaselineStore(root, "pi4")
    again = fresh.lookup("suites/test_prop.py::test_a")  # raises if the written file broke the rules
    assert again is not None and again.metrics == _accepted(new).metrics
    assert fresh.lookup("suites/test_prop.py::test_b") is not None
    judge(_current(), again, {}, max_cpu_wait_pct=100.0)
