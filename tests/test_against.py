"""``--edgeperf-against=REF`` on models built by code: rebuilt from REF's sources (against.py), else not comparable.

The project commits its own builder module; REF's version builds twice the convolution work, far beyond what a
loaded machine moves a paired ratio, so the verdicts are robust; no test asserts on a measured time.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

NETBUILDER = '''
from pytest_edgeperf.models.graph import GraphBuilder


def build(width=16):
    b = GraphBuilder("net", (32, 32, 3), seed=0)
    x = b.conv("input", width, 3, act="relu", name="conv0")
    for i in range(1, CONVS):
        x = b.conv(x, width, 3, act="relu", name=f"conv{i}")
    x = b.op("gap", x, name="gap")
    return b.build(x)
'''

BUILT_TEST = """
    import pytest

    import netbuilder

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_built(edgeperf, model_cache):
        edgeperf.measure(model_cache.build(netbuilder.build, "net", formats=["onnx"], width=16))

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_graph_object(edgeperf, model_cache):
        edgeperf.measure(model_cache.build(netbuilder.build(), "net_object", formats=["onnx"]))
"""


def _git(project: pytest.Pytester, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=project.path,
                   check=True, capture_output=True)


def _builder(convs: int) -> str:
    return f"CONVS = {convs}\n{NETBUILDER}"


@pytest.fixture
def built_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A git repository whose committed builder module makes 8 convolutions, and tests that measure its model."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytester.makeini("[pytest]\n")
    pytester.makefile(".gitignore", ".edgeperf-cache/\n__pycache__/\n")
    pytester.makepyfile(test_built=BUILT_TEST, netbuilder=_builder(8))
    _git(pytester, "init", "-q")
    _git(pytester, "add", "-A")
    _git(pytester, "commit", "-qm", "builder")
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "--edgeperf-min-time=1", "--edgeperf-threads=1",
                                        "--edgeperf-no-progress", "--edgeperf-cache-dir=.edgeperf-cache", *args)


def test_a_model_built_by_code_is_rebuilt_from_refs_builder(built_project: pytest.Pytester) -> None:
    built_project.makepyfile(netbuilder=_builder(4))  # the working tree builds half REF's work: fps doubles
    report = built_project.path / "faster.json"
    result = _run(built_project, "--edgeperf-against=HEAD", f"--edgeperf-json={report}", "test_built.py::test_built")
    result.assert_outcomes(passed=1)
    paired = json.loads(report.read_text())["results"][0]["environment"]["paired_comparison"]
    assert paired["b"] == "HEAD" and paired["verdict"] == "PASS"
    assert paired["speedup"] > 1 and paired["low"] <= paired["speedup"] <= paired["high"]
    assert "Traceback" not in result.stdout.str()

    built_project.makepyfile(netbuilder=_builder(16))  # twice REF's work: fps regressed, with ratio and interval
    result = _run(built_project, "--edgeperf-against=HEAD", "test_built.py::test_built")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    title = next(line for line in out.splitlines()
                 if line.startswith("[edgeperf] ") and not line.startswith("[edgeperf] waiting for"))
    assert "fps regressed vs HEAD (interleaved): fps " in title
    assert "ratio 0." in title and "x [0." in title and "95% interval" in title
    assert "REGRESSION (max slowdown 5%)" in out

    built_project.makepyfile(netbuilder=_builder(8))  # back to REF's code
    result = _run(built_project, "--edgeperf-against=HEAD", "test_built.py::test_built")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*model unchanged since HEAD: judged against the stored baselines*"])


def test_a_graph_object_is_not_comparable_in_one_line(built_project: pytest.Pytester) -> None:
    built_project.makepyfile(netbuilder=_builder(16))
    result = _run(built_project, "--edgeperf-against=HEAD", "--edgeperf-quick", "test_built.py::test_graph_object")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*--edgeperf-against: *net_object: not comparable against HEAD (built from a "
                                 "Graph object; pass the builder function*; timing judged against the stored "
                                 "baselines*"])
    assert "Traceback" not in result.stdout.str()


def test_refs_builder_that_fails_is_not_comparable_in_one_line(built_project: pytest.Pytester) -> None:
    built_project.makepyfile(netbuilder="raise ImportError('REF is broken')\n")
    _git(built_project, "commit", "-qam", "broken")
    built_project.makepyfile(netbuilder=_builder(8))
    result = _run(built_project, "--edgeperf-against=HEAD", "--edgeperf-quick", "test_built.py::test_built")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*not comparable against HEAD (rebuilding it from HEAD's sources failed: "
                                 "ImportError: REF is broken)*"])
