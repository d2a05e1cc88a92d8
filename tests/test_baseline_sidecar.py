"""Baselines a reviewer can read (issue 19 point 6): the raw samples live in a content-named sidecar.

The module file keeps what a reviewer reads; ``samples/<sha256 prefix>.json`` keeps the raw latencies the verdict's
rank tests read. The verdict must not see a difference: an entry read from the new layout gives exactly the verdict
of the same entry read from an old (schema 1, samples inline) file, and old files are still read.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from test_baseline import NODE, entry, make_result
from test_baseline_plugin import (  # noqa: F401 (own_device_lock: a fixture)
    BRIEF,
    SUITE,
    UPDATE_ONCE,
    baseline_file,
    failure_text,
    own_device_lock,
    write_conv_model,
)

from pytest_edgeperf.baseline import BaselineError, BaselineStore
from pytest_edgeperf.baseline.files import _dumps
from pytest_edgeperf.verdict.judge import judge

OTHER = "suites/sub/test_arch.py::test_other[m]"


def write_old_format(root: Path, entries: dict[str, object]) -> Path:
    """A module file as schema-1 writers wrote it: raw samples inline in each entry."""
    path = root / "pi4" / "suites__sub__test_arch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema_version": 1, "device": "pi4", "module": "suites/sub/test_arch.py",
           "entries": {k.split("::", 1)[1]: e.to_json() for k, e in entries.items()}}  # type: ignore[attr-defined]
    path.write_text(_dumps(doc) + "\n")
    return path


def test_new_layout_gives_exactly_the_verdict_of_the_old_inline_format(tmp_path: Path) -> None:
    recorded = entry(1)
    write_old_format(tmp_path / "old", {NODE: recorded})
    BaselineStore(tmp_path / "new", "pi4").update({NODE: recorded})
    old = BaselineStore(tmp_path / "old", "pi4").lookup(NODE)
    new = BaselineStore(tmp_path / "new", "pi4").lookup(NODE)
    assert old is not None and new is not None
    assert new == old  # every sample, every figure
    assert len(new.samples["latency_ms"]) == len(recorded.samples["latency_ms"]) > 0
    for current in (make_result(2), make_result(3, scale=1.5), make_result(4, scale=0.7)):
        v_old, v_new = judge(current, old, {}), judge(current, new, {})
        assert repr(v_new) == repr(v_old)  # the same TestVerdict, figure for figure (repr: NaN == NaN)
        assert v_new.overall == v_old.overall


def test_module_file_holds_no_raw_samples_and_a_rerecording_is_a_short_diff(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: entry(1), OTHER: entry(5)})
    path = store.path_for(NODE)
    before = path.read_text()
    doc = json.loads(before)
    assert doc["schema_version"] == 2 and doc["samples_file"].startswith("samples/")
    assert all("latency_ms" not in e["samples"] for e in doc["entries"].values())
    assert max(len(line) for line in before.splitlines()) < 300  # no line of thousands of numbers
    sidecar = path.parent / doc["samples_file"]
    assert len(json.loads(sidecar.read_text())[NODE.split("::")[1]]["latency_ms"]) == 300
    attributes = (path.parent / "samples" / ".gitattributes").read_text()
    assert "*.json linguist-generated=true" in attributes  # GitHub collapses the sidecars in a review

    store.update({NODE: entry(2)})  # re-record one test
    after = path.read_text()
    changed = [ln for ln in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert 0 < len(changed) < 60, changed  # metrics, per-process values, history, the sidecar reference
    assert max(len(ln) for ln in changed) < 300
    assert not sidecar.exists()  # the replaced samples file nothing references any more is removed
    assert sorted(p.name for p in (path.parent / "samples").iterdir()) == sorted(
        [".gitattributes", json.loads(after)["samples_file"].split("/")[1]])


def test_old_inline_files_are_read_and_converted_by_an_update(tmp_path: Path) -> None:
    path = write_old_format(tmp_path, {NODE: entry(1), OTHER: entry(5)})
    store = BaselineStore(tmp_path, "pi4")
    old_other = store.lookup(OTHER)
    assert old_other is not None and len(old_other.samples["latency_ms"]) == 300
    BaselineStore(tmp_path, "pi4").update({NODE: entry(2)})
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 2 and "latency_ms" not in doc["entries"]["test_other[m]"]["samples"]
    assert BaselineStore(tmp_path, "pi4").lookup(OTHER) == old_other  # the untouched entry keeps every sample


@pytest.mark.parametrize("damage", ["missing", "edited", "not json"])
def test_missing_or_corrupt_sidecar_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: entry(1), OTHER: entry(5)})
    path = store.path_for(NODE)
    sidecar = path.parent / json.loads(path.read_text())["samples_file"]
    if damage == "missing":
        sidecar.unlink()
    elif damage == "edited":
        sidecar.write_text(sidecar.read_text().replace("[", "[1.5, ", 1))
    else:
        sidecar.write_text("{")
    with pytest.raises(BaselineError) as err:
        BaselineStore(tmp_path, "pi4").lookup(NODE)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{sidecar}: ") and str(path) in message
    # an update that would keep an entry without its raw samples refuses, naming the sidecar; nothing is written
    text = path.read_text()
    with pytest.raises(BaselineError, match=r"raw samples|does not match|not valid JSON"):
        BaselineStore(tmp_path, "pi4").update({NODE: entry(2)})
    assert path.read_text() == text
    # re-recording every test of the file repairs it
    BaselineStore(tmp_path, "pi4").update({NODE: entry(2), OTHER: entry(6)})
    repaired = BaselineStore(tmp_path, "pi4").lookup(OTHER)
    assert repaired is not None and repaired.metrics == entry(6).metrics and len(repaired.samples["latency_ms"]) == 300


def test_samples_file_pointing_elsewhere_is_refused(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, "pi4")
    store.update({NODE: entry(1)})
    path = store.path_for(NODE)
    doc = json.loads(path.read_text())
    doc["samples_file"] = "../../etc/passwd"
    path.write_text(json.dumps(doc))
    with pytest.raises(BaselineError, match=r"'samples_file' must be 'samples/") as err:
        BaselineStore(tmp_path, "pi4").lookup(NODE)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.usefixtures("own_device_lock")
def test_a_run_with_a_missing_sidecar_fails_in_one_line_naming_it(pytester: pytest.Pytester) -> None:
    write_conv_model(pytester.path / "model.onnx", 1)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest(*BRIEF, *UPDATE_ONCE).assert_outcomes(passed=1)
    path = baseline_file(pytester)
    sidecar = path.parent / json.loads(path.read_text())["samples_file"]
    sidecar.unlink()
    res = pytester.runpytest(*BRIEF)
    res.assert_outcomes(failed=1)
    assert "Traceback" not in res.stdout.str() + res.stderr.str()
    text = failure_text(res, "test_suite.py::")
    assert "\n" not in text.strip() and text.startswith(f"[edgeperf] {sidecar}: raw samples file missing"), text
