"""Interleaved A/B comparisons: ``edgeperf.compare(model_a, model_b)`` and ``--edgeperf-against=REF``.

The models differ by a factor of two in convolution work, far beyond what a loaded machine moves a paired ratio,
so the verdicts are robust; no test asserts on a measured time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pytest_edgeperf.worker.paired import MIN_BLOCKS

BUILDER = '''
import os
import signal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(path, convs=4, side=32, ch=16):
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(convs):
        w = rng.standard_normal((ch, 3 if i == 0 else ch, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev = f"r{i}"
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, ch, side, side])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def frames(shape, dtype):
    return [np.zeros(shape, dtype=dtype)]


_calls = 0


def crash_on_24(x):
    """Segfaults the worker whose model takes 24x24 inputs, once it is timing."""
    global _calls
    _calls += 1
    if x.shape[-1] == 24 and _calls > 20:
        os.kill(os.getpid(), signal.SIGSEGV)
    return x
'''


@pytest.fixture
def ab_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """fast.onnx (4 convolutions) and slow.onnx (8: twice the work), built at collection."""
    pytester.makepyfile(abmodels=BUILDER)
    pytester.makeconftest("""
        import abmodels
        abmodels.build("fast.onnx", convs=4)
        abmodels.build("slow.onnx", convs=8)
        abmodels.build("crashy.onnx", convs=4, side=24)
    """)
    pytester.makeini("[pytest]\n")
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "--edgeperf-min-time=1", "--edgeperf-threads=1",
                                        "--edgeperf-no-progress", *args)


AB_TESTS = """
    import pytest

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_optimised_variant(edgeperf):
        comparison = edgeperf.compare("fast.onnx", "slow.onnx", min_speedup=1.2)
        low, high = comparison.speedup_interval
        assert low <= comparison.speedup <= high
        assert comparison.paired.pairs >= 6
        assert [r.model for r in edgeperf.results] == ["fast.onnx", "slow.onnx"]

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_heavier_model(edgeperf):
        edgeperf.compare("slow.onnx", "fast.onnx", max_slowdown_pct=5)

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_speedup_not_reached(edgeperf):
        edgeperf.compare("fast.onnx", "slow.onnx", min_speedup=5)
"""


def test_interleaved_gates_pass_and_fail_with_ratio_and_interval(ab_project: pytest.Pytester) -> None:
    ab_project.makepyfile(test_ab=AB_TESTS)
    result = _run(ab_project)
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    heavier = next(line for line in out.splitlines()
                   if line.startswith("[edgeperf] slow.onnx vs fast.onnx, interleaved: max slowdown 5%"))
    assert "fps ratio 0." in heavier and "x [0." in heavier and "slower than the 5% allowed" in heavier
    # the table: each arm, the ratio, its interval, the p-value and the verdict
    assert "metric" in out and "95% interval" in out and "REGRESSION (max slowdown 5%)" in out
    assert "[edgeperf] fast.onnx vs slow.onnx, interleaved: min speed-up 5x: speed-up " in out
    assert "is below the required 5x" in out
    assert "PASS: speed-up " in out and "is at least 1.2x" in out  # the passing test's note


def test_quick_mode_reports_the_gates_without_failing(ab_project: pytest.Pytester) -> None:
    ab_project.makepyfile(test_ab="""
        import pytest

        @pytest.mark.edgeperf(frameworks=["onnxruntime"])
        def test_heavier_model(edgeperf):
            edgeperf.compare("slow.onnx", "fast.onnx", max_slowdown_pct=5)
    """)
    result = _run(ab_project, "--edgeperf-quick")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*quick run: interleaved timing gates are informational only (max slowdown 5%:*"])


def test_a_crashing_arm_fails_only_its_comparison(ab_project: pytest.Pytester) -> None:
    ab_project.makepyfile(test_ab="""
        import pytest

        @pytest.mark.edgeperf(frameworks=["onnxruntime"], inputs="abmodels:frames", threads=1)
        def test_crashing_arm(edgeperf):
            edgeperf.compare("fast.onnx", "crashy.onnx", prepare="abmodels:crash_on_24", max_slowdown_pct=5)

        @pytest.mark.edgeperf(frameworks=["onnxruntime"])
        def test_next_comparison(edgeperf):
            edgeperf.compare("fast.onnx", "slow.onnx", min_speedup=1.2)
    """)
    result = _run(ab_project)
    result.assert_outcomes(passed=1, failed=1)
    line = next(ln for ln in result.stdout.str().splitlines()
                if ln.startswith("[edgeperf] ") and not ln.startswith("[edgeperf] waiting for"))
    assert "onnxruntime on crashy.onnx (parent): worker crashed with SIGSEGV while timing" in line
    assert "Traceback" not in result.stdout.str()


def test_compare_needs_two_models_or_two_results(ab_project: pytest.Pytester) -> None:
    ab_project.makepyfile(test_ab="""
        import pytest

        @pytest.mark.edgeperf(frameworks=["onnxruntime"])
        def test_mixed(edgeperf):
            edgeperf.compare(edgeperf.measure("fast.onnx"), "slow.onnx")
    """)
    result = _run(ab_project, "--edgeperf-quick")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["[[]edgeperf[]] compare() takes two models (measured interleaved) or two Results*"])


PAIRS_TESTS = """
    import pytest

    def _pairs(comparison):
        est = comparison.paired
        pairs = {comparison.variant.environment["worker_pairs"], comparison.parent.environment["worker_pairs"]}
        assert pairs == {est.blocks}, (pairs, est.blocks)
        return est.blocks

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_default(edgeperf):
        print("PAIRS default", _pairs(edgeperf.compare("fast.onnx", "slow.onnx")))

    @pytest.mark.edgeperf(frameworks=["onnxruntime"], processes=4)
    def test_marker(edgeperf):
        print("PAIRS marker", _pairs(edgeperf.compare("fast.onnx", "slow.onnx")))

    @pytest.mark.edgeperf(frameworks=["onnxruntime"], processes=4)
    def test_keyword(edgeperf):
        print("PAIRS keyword", _pairs(edgeperf.compare("fast.onnx", "slow.onnx", processes=1)))

    @pytest.mark.edgeperf(frameworks=["onnxruntime"])
    def test_bad(edgeperf):
        edgeperf.compare("fast.onnx", "slow.onnx", processes=0)
"""


def test_worker_pairs_follow_processes_from_the_keyword_the_marker_or_the_option(ab_project: pytest.Pytester) -> None:
    """compare(processes=N) over the marker's processes over --edgeperf-processes as given over the plugin's own
    choice (paired.auto_blocks: 3 for a 0.3 s budget, whose timing is shorter than starting a worker pair): more
    worker pairs average more process layouts (docs/guides/ab.md); a bad count is one line."""
    ab_project.makepyfile(test_ab=PAIRS_TESTS)
    result = _run(ab_project, "--edgeperf-min-time=0.3", "-s")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert f"PAIRS default {MIN_BLOCKS}" in out and "PAIRS marker 4" in out and "PAIRS keyword 1" in out
    result.stdout.fnmatch_lines(
        ["[[]edgeperf[]] compare(processes=0): the worker pairs must be > 0 (range 0 < x <= 64), got 0"])
    given = _run(ab_project, "--edgeperf-min-time=0.3", "-s", "--edgeperf-processes=2", "-k", "default")
    given.assert_outcomes(passed=1)
    assert "PAIRS default 2" in given.stdout.str()


# ---- --edgeperf-against=REF -----------------------------------------------------------------------------------

MODEL_TEST = """
    import pytest

    @pytest.mark.edgeperf(model="model.onnx", frameworks=["onnxruntime"])
    def test_model(edgeperf):
        edgeperf.measure()
"""


def _build(path: str, **kwargs: int) -> None:
    namespace: dict[str, object] = {}
    exec(compile(BUILDER, "abmodels", "exec"), namespace)
    namespace["build"](path, **kwargs)  # type: ignore[operator]


def _git(project: pytest.Pytester, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=project.path,
                   check=True, capture_output=True)


@pytest.fixture
def git_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A git repository with model.onnx (4 convolutions) and a test measuring it, committed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_model=MODEL_TEST)
    _build(str(pytester.path / "model.onnx"), convs=4)
    _git(pytester, "init", "-q")
    _git(pytester, "add", "-A")
    _git(pytester, "commit", "-qm", "model")
    return pytester


def test_against_ref_times_a_changed_model_interleaved_with_refs(git_project: pytest.Pytester) -> None:
    _build(str(git_project.path / "model.onnx"), convs=8)  # twice the work, not committed
    result = _run(git_project, "--edgeperf-against=HEAD")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    title = next(line for line in out.splitlines()
                 if line.startswith("[edgeperf] ") and not line.startswith("[edgeperf] waiting for"))
    assert title.startswith("[edgeperf] onnxruntime on model.onnx: fps regressed vs HEAD (interleaved): fps ")
    assert "ratio 0." in title and "x [0." in title and "95% interval" in title
    assert "REGRESSION (max slowdown 5%)" in out  # the fps tolerance is the slowdown allowed
    assert "vs HEAD (interleaved): ratio 0." in out  # the verdict table's fps row

    _build(str(git_project.path / "model.onnx"), convs=4)  # back to HEAD's bytes
    result = _run(git_project, "--edgeperf-against=HEAD")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*model unchanged since HEAD: judged against the stored baselines*"])


def test_against_ref_says_in_one_line_why_it_cannot_compare(git_project: pytest.Pytester,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    git_project.makepyfile(test_more="""
        import pytest

        @pytest.mark.edgeperf(model="new.onnx", frameworks=["onnxruntime"])
        def test_new_model(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"])
        def test_zoo_model(edgeperf):
            edgeperf.measure()
    """)
    _build(str(git_project.path / "new.onnx"), convs=2)  # not at HEAD
    result = _run(git_project, "--edgeperf-against=HEAD", "--edgeperf-quick")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*--edgeperf-against: new.onnx does not exist at HEAD; timing judged against the stored baselines*"])
    # the zoo is the installed plugin's code, not this repository's: REF cannot have changed it
    result.stdout.fnmatch_lines(["*model unchanged since HEAD: judged against the stored baselines*"])
    result = _run(git_project, "--edgeperf-against=nope", "--edgeperf-quick", "test_model.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["note: --edgeperf-against: unknown git revision 'nope'; timing judged against*"])

    _git(git_project, "commit", "-qam", "second", "--allow-empty")
    clone = git_project.path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{git_project.path}", str(clone)], check=True,
                   capture_output=True)
    result = git_project.runpytest_subprocess("-p", "no:cacheprovider", "--edgeperf-quick", "--rootdir", str(clone),
                                              "--edgeperf-against=HEAD~1", str(clone / "test_model.py"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*revision 'HEAD~1' is not in this shallow clone (fetch it, e.g.*"])
    assert "Traceback" not in result.stdout.str()

    empty = git_project.path / "nogit"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the interpreter is started by its full path; git is not found
    result = _run(git_project, "--edgeperf-against=HEAD", "--edgeperf-quick", "test_model.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["note: --edgeperf-against: git is not installed (--edgeperf-against needs it)*"])


# ---- --edgeperf-against-python ------------------------------------------------------------------------------


def test_against_python_runs_the_b_arm_under_that_interpreter(ab_project: pytest.Pytester) -> None:
    """The same interpreter by its path (a second venv is too slow to build here): both arms' versions reported."""
    ab_project.makepyfile(test_ab="""
        import pytest

        @pytest.mark.edgeperf(frameworks=["onnxruntime"])
        def test_upgrade(edgeperf):
            comparison = edgeperf.compare("fast.onnx", "slow.onnx", min_speedup=1.2)
            assert comparison.parent.environment["python_executable"]
    """)
    result = _run(ab_project, f"--edgeperf-against-python={sys.executable}")
    result.assert_outcomes(passed=1)
    version = sys.version.split()[0]
    result.stdout.fnmatch_lines([f"*interpreters: fast.onnx: Python {version} (*), onnxruntime *; "
                                 f"slow.onnx: Python {version} ({sys.executable}), onnxruntime *"])


def test_against_python_that_does_not_run_is_a_usage_error(ab_project: pytest.Pytester) -> None:
    ab_project.makepyfile(test_ab="def test_nothing():\n    pass\n")
    result = ab_project.runpytest("--edgeperf-against-python=/nonexistent/python")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --edgeperf-against-python: '/nonexistent/python' is not an executable file*"])
