"""Tests of pytest_edgeperf.models: the IR, both exporters against the numpy reference, the zoo's parameter
counts against the seeds' Table 1, the build cache, and the variant transforms."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pytest_edgeperf.models.build import ModelBuildError, ModelFiles, build_model, ensure_zoo_model, file_sha256
from pytest_edgeperf.models.graph import Graph, GraphBuilder, GraphError, Layer
from pytest_edgeperf.models.transforms import (
    fold_batchnorm,
    lowrank_decompose,
    prune_channels,
    quantize_onnx_int8,
)
from pytest_edgeperf.models.zoo import TABLE1_PARAMS, ZOO, build_zoo_graph, squeezenet1_1, tiny_cnn, yolov4_tiny

ort = pytest.importorskip("onnxruntime")


# --- helpers ---------------------------------------------------------------------------------------------
def run_onnx(path: Path, x_nhwc: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x_nhwc.transpose(0, 3, 1, 2).copy()})
    return [o.transpose(0, 2, 3, 1) if o.ndim == 4 else o for o in outs]


def run_tflite(path: Path, x_nhwc: np.ndarray, names: list[str]) -> list[np.ndarray]:
    interp_mod = pytest.importorskip("ai_edge_litert.interpreter")
    it = interp_mod.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x_nhwc)
    it.invoke()
    by_name = {d["name"]: d["index"] for d in it.get_output_details()}
    return [it.get_tensor(by_name[n]) for n in names]


def assert_all_agree(graph: Graph, tmp_path: Path, seed: int = 0) -> ModelFiles:
    files = build_model(graph, tmp_path)
    x = np.random.default_rng(seed).random((1, *graph.input_shape), dtype=np.float32)
    ref = graph.forward_numpy(x)
    onnx_out = run_onnx(files.onnx, x)
    tfl_out = run_tflite(files.tflite, x, graph.outputs)
    for name, r, o, t in zip(graph.outputs, ref, onnx_out, tfl_out, strict=True):
        assert o.shape == r.shape == t.shape, name
        np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-4, err_msg=f"onnx vs numpy: {name}")
        np.testing.assert_allclose(t, r, rtol=1e-4, atol=1e-4, err_msg=f"tflite vs numpy: {name}")
        np.testing.assert_allclose(t, o, rtol=1e-4, atol=1e-4, err_msg=f"tflite vs onnx: {name}")
    return files


def every_op_graph(seed: int = 1) -> Graph:
    """One small graph that uses every IR op, padding mode and a standalone (unfoldable) batchnorm."""
    b = GraphBuilder("every_op", (20, 18, 3), seed=seed)
    x = b.conv("input", 8, 3, act="relu")
    x = b.maxpool(x, 3, 2, padding="same")
    x = b.conv(x, 12, (3, 5), stride=2, padding=1, bn=True, act="leaky_relu", alpha=0.125)
    d = b.dwconv(x, 3, act="relu6")
    a = b.avgpool(d, 3, 1, padding="same")
    m = b.maxpool(d, 3, 1, padding=1)
    dl = b.conv(x, 12, 3, dilation=2, padding="same")
    s = b.op("add", [a, m, dl])
    x = b.op("concat", [x, s])
    x = b.batchnorm(x)  # follows a concat: cannot be folded, exported as an affine op
    u = b.op("upsample2x", x)
    u = b.conv(u, 4, 1, padding="valid", act="sigmoid", name="spatial_out")
    f = b.op("flatten", x)
    f = b.dense(f, 16, act="relu")
    f = b.dense(f, 5, name="logits")
    p = b.op("softmax", f, name="prob")
    g = b.op("gap", x)
    return b.build([p, u, g, "logits"])


# --- IR --------------------------------------------------------------------------------------------------
def test_tiny_cnn_shapes_and_depth():
    g = tiny_cnn()
    shapes = g.infer_shapes()
    assert shapes["input"] == (32, 32, 3)
    assert shapes["conv0"] == (16, 16, 16)
    assert shapes[g.outputs[0]] == (10,)
    deep = tiny_cnn(depth=6)
    convs = [lay for lay in deep.layers if lay.op == "conv"]
    assert len(convs) == 2 * len([lay for lay in g.layers if lay.op == "conv"])
    assert deep.param_count() > g.param_count()
    probs = g.forward_numpy(np.ones((1, 32, 32, 3)))[0]
    assert probs.shape == (1, 10)
    assert np.isclose(probs.sum(), 1.0, atol=1e-5)


def test_same_padding_is_tensorflow_style():
    b = GraphBuilder("pad", (5, 5, 1), seed=0)
    one = np.ones((2, 2, 1, 1), np.float32)
    x = b.conv("input", 1, 2, stride=2, padding="same", w=one, b=np.zeros(1))
    g = b.build(x)
    assert g.infer_shapes()[x] == (3, 3, 1)
    out = g.forward_numpy(np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1))[0][0, :, :, 0]
    # TF SAME pads at the bottom/right only: the last window sees row 4 and a zero row
    assert out[0, 0] == 0 + 1 + 5 + 6
    assert out[2, 2] == 24


def test_bad_graphs_name_the_layer():
    b = GraphBuilder("bad", (8, 8, 3), seed=0)
    with pytest.raises(GraphError, match=r"layer 'c1'.*conv weight"):
        b.conv("input", 4, 3, name="c1", w=np.zeros((3, 3, 2, 4)))
    g = Graph("g", "input", (8, 8, 3), [Layer("dense", "fc", ["input"], {}, {"w": np.zeros((3, 2))})], ["fc"])
    with pytest.raises(GraphError, match=r"'fc'.*flat input"):
        g.validate()
    g = Graph("g", "input", (8, 8, 3), [Layer("relu", "r", ["nowhere"])], ["r"])
    with pytest.raises(GraphError, match="not earlier tensors"):
        g.validate()
    assert issubclass(GraphError, ValueError)


def test_graph_save_load_roundtrip(tmp_path):
    g = every_op_graph()
    path = g.save(tmp_path / "g.npz")
    back = Graph.load(path)
    x = np.random.default_rng(3).random((1, *g.input_shape))
    for a, b in zip(g.forward_numpy(x), back.forward_numpy(x), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GraphError, match=r"junk\.npz"):
        Graph.load(tmp_path / "junk.npz")


# --- exporters agree with each other and with numpy ------------------------------------------------------
def test_every_op_onnx_tflite_numpy_agree(tmp_path):
    assert_all_agree(every_op_graph(), tmp_path)


def test_tiny_cnn_agrees_across_runtimes(tmp_path):
    files = assert_all_agree(tiny_cnn(bn=True), tmp_path)
    meta = files.read_meta()
    assert meta["onnx_layout"] == "NCHW" and meta["tflite_layout"] == "NHWC"
    assert meta["input_shape_hwc"] == [32, 32, 3]


def test_squeezenet_reduced_input_agrees(tmp_path):
    g = squeezenet1_1(input_size=67, num_classes=20)
    g.outputs = ["conv10", *g.outputs]  # pre-softmax maps too: softmax of near-equal logits hides errors
    assert_all_agree(g, tmp_path)


def test_yolov4_tiny_reduced_input_agrees(tmp_path):
    g = yolov4_tiny(input_size=(64, 96), num_classes=3, alpha=0.125)
    shapes = g.infer_shapes()
    assert [shapes[o] for o in g.outputs] == [(2, 3, 24), (4, 6, 24)]
    assert any(lay.op == "batchnorm" for lay in g.layers)
    assert not any(lay.op == "batchnorm" for lay in fold_batchnorm(g).layers)
    assert_all_agree(g, tmp_path)


def test_opencv_loads_the_onnx_export(tmp_path):
    cv2 = pytest.importorskip("cv2")
    g = every_op_graph()
    files = build_model(g, tmp_path)
    x = np.random.default_rng(0).random((1, *g.input_shape), dtype=np.float32)
    net = cv2.dnn.readNet(str(files.onnx))
    net.setInput(x.transpose(0, 3, 1, 2).copy())
    out = net.forward("prob")
    np.testing.assert_allclose(out.reshape(1, -1), g.forward_numpy(x)[0], rtol=1e-4, atol=1e-4)


# --- the zoo ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TABLE1_PARAMS))
def test_param_counts_match_table1(name):
    params = build_zoo_graph(name).param_count()
    assert abs(params / TABLE1_PARAMS[name] - 1) < 0.03, params


def test_table1_ranges_from_the_issue():
    assert 1.2e6 <= squeezenet1_1().param_count() <= 1.3e6
    assert build_zoo_graph("yolov4_tiny", num_classes=20).param_count() < yolov4_tiny().param_count()


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_activations_stay_finite(name):
    small = {"yolov4_tiny": 64, "nin": 67}.get(name, 32)
    g = build_zoo_graph(name, input_size=small)
    inner = [lay.name for lay in g.layers if lay.op in ("conv", "dense")][-1]
    g.outputs = [inner]
    out = g.forward_numpy(np.random.default_rng(0).random((1, *g.input_shape)))[0]
    assert np.all(np.isfinite(out))
    assert 1e-3 < float(np.std(out)) < 1e3


def test_unknown_zoo_model_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown zoo model 'vgg16'"):
        build_zoo_graph("vgg16")
    with pytest.raises(ValueError, match="zoo model 'tiny_cnn': bad arguments"):
        build_zoo_graph("tiny_cnn", nope=1)


# --- build and cache -------------------------------------------------------------------------------------
def test_same_seed_same_bytes(tmp_path):
    a = build_model(tiny_cnn(seed=7), tmp_path / "a")
    b = build_model(tiny_cnn(seed=7), tmp_path / "b")
    c = build_model(tiny_cnn(seed=8), tmp_path / "c")
    for kind in ("onnx", "tflite"):
        assert file_sha256(getattr(a, kind)) == file_sha256(getattr(b, kind))
        assert file_sha256(getattr(a, kind)) != file_sha256(getattr(c, kind))
    meta = a.read_meta()
    assert meta["files"]["onnx"]["sha256"] == file_sha256(a.onnx)
    assert meta["seed"] == 7 and meta["num_classes"] == 10


def test_cache_reuses_and_rebuilds(tmp_path):
    first = ensure_zoo_model("tiny_cnn", tmp_path, depth=2)
    stamp = first.onnx.stat().st_mtime_ns
    again = ensure_zoo_model("tiny_cnn", tmp_path, depth=2)
    assert again == first and again.onnx.stat().st_mtime_ns == stamp
    other = ensure_zoo_model("tiny_cnn", tmp_path, depth=2, seed=1)
    assert other.stem != first.stem
    first.tflite.write_bytes(b"truncated")  # a damaged cache entry is rebuilt, not trusted
    fixed = ensure_zoo_model("tiny_cnn", tmp_path, depth=2)
    assert fixed.tflite.stat().st_size == fixed.read_meta()["files"]["tflite"]["size_bytes"] > 100
    meta = json.loads(first.meta.read_text())
    meta["builder_version"] = -1
    first.meta.write_text(json.dumps(meta))
    ensure_zoo_model("tiny_cnn", tmp_path, depth=2)
    assert first.read_meta()["builder_version"] != -1
    assert not list(tmp_path.glob("*.tmp"))


def _build_in_child(cache: str) -> str:
    files = ensure_zoo_model("tiny_cnn", Path(cache), depth=4)
    return file_sha256(files.tflite)


def test_zoo_model_is_built_in_the_requested_format_only(tmp_path):
    files = ensure_zoo_model("tiny_cnn", tmp_path, formats=["onnx"], depth=2)
    assert files.onnx.stat().st_size > 100 and not files.tflite.exists()
    assert set(files.read_meta()["files"]) == {"onnx"}
    stamp = files.onnx.stat().st_mtime_ns
    assert ensure_zoo_model("tiny_cnn", tmp_path, formats=["onnx"], depth=2).onnx.stat().st_mtime_ns == stamp
    pytest.importorskip("ai_edge_litert", reason="TFLite export needs ai-edge-litert")
    both = build_model(tiny_cnn(seed=1), tmp_path / "out", formats=["onnx", "tflite"])
    again = build_model(tiny_cnn(seed=2), tmp_path / "out", formats=["onnx"])
    assert not again.tflite.exists()  # the seed-1 TFLite file is gone, not left to be loaded as seed 2
    assert both.stem == again.stem and set(again.read_meta()["files"]) == {"onnx"}


def test_a_cached_model_gains_a_missing_format_and_keeps_the_other(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="TFLite export needs ai-edge-litert")
    onnx_only = ensure_zoo_model("tiny_cnn", tmp_path, formats=["onnx"], depth=2)
    stamp = onnx_only.onnx.stat().st_mtime_ns
    both = ensure_zoo_model("tiny_cnn", tmp_path, formats=["tflite"], depth=2)
    assert both == onnx_only and both.onnx.stat().st_mtime_ns == stamp  # the ONNX file was not rewritten
    meta = both.read_meta()["files"]
    assert set(meta) == {"onnx", "tflite"}
    assert meta["tflite"]["sha256"] == file_sha256(both.tflite)
    assert ensure_zoo_model("tiny_cnn", tmp_path, depth=2) == both  # default (both here): current, reused


def test_unknown_model_format_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelBuildError, match=r"model formats \['onnx', 'pt'\]: expected one or more of onnx, tflite"):
        ensure_zoo_model("tiny_cnn", tmp_path, formats=["onnx", "pt"])
    with pytest.raises(ModelBuildError, match="expected one or more"):
        build_model(tiny_cnn(), tmp_path, formats=[])


def test_without_litert_zoo_models_are_built_and_measured_for_onnxruntime(pytester: pytest.Pytester) -> None:
    """A user with only the [onnx] extra: the zoo model, the suites' model cache and the machine-speed reference
    are built as ONNX alone (no "TFLite export needs ai-edge-litert"), and measured."""
    cache = pytester.path / "cache"
    pytester.makeconftest("""
        import sys
        sys.modules["ai_edge_litert"] = None  # as if the litert extra were not installed
    """)
    pytester.makepyfile(test_zoo="""
        import pytest

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime", "opencv"])
        def test_model(edgeperf, framework):
            assert edgeperf.measure().valid_count >= 10

        def test_model_cache(model_cache):
            stem = model_cache.zoo("tiny_cnn", depth=2)
            assert stem.with_name(stem.name + ".onnx").exists()
            assert not stem.with_name(stem.name + ".tflite").exists()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--edgeperf-quick",
                                           f"--edgeperf-cache-dir={cache}", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("passed", 0) >= 2, result.stdout.str()
    assert "TFLite export needs" not in result.stdout.str()
    assert "reference model unavailable" not in result.stdout.str()
    assert list(cache.rglob("*.onnx")) and not list(cache.rglob("*.tflite"))


def test_concurrent_builders_do_not_corrupt_the_cache(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        digests = pool.map(_build_in_child, [str(tmp_path)] * 3)
    assert len(set(digests)) == 1
    files = ensure_zoo_model("tiny_cnn", tmp_path, depth=4)
    assert file_sha256(files.tflite) == digests[0]
    assert files.read_meta()["files"]["tflite"]["sha256"] == digests[0]
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_list_and_build(tmp_path, capsys):
    from pytest_edgeperf.models.__main__ import main

    assert main(["list", "--cache", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    for name in ZOO:
        assert name in listed
    assert main(["build", "tiny_cnn", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert "tiny_cnn" in capsys.readouterr().out
    assert len(list(tmp_path.glob("tiny_cnn*.tflite"))) == 1
    bad = subprocess.run([sys.executable, "-m", "pytest_edgeperf.models", "build", "nope", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown zoo model 'nope'" in bad.stderr


# --- variants --------------------------------------------------------------------------------------------
def test_lowrank_full_rank_is_exact_and_low_rank_is_smaller(tmp_path):
    g = yolov4_tiny(input_size=64, num_classes=3)
    x = np.random.default_rng(0).random((1, 64, 64, 3))
    ref = g.forward_numpy(x)
    exact = lowrank_decompose(g, rank_ratio=1.0, only_if_smaller=False)
    assert len(exact.layers) > len(g.layers)
    for a, b in zip(ref, exact.forward_numpy(x), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    small = lowrank_decompose(g, rank_ratio=0.25)
    assert small.param_count() < 0.8 * g.param_count()
    assert small.meta["variant"][-1]["ranks"]
    assert g.param_count() == yolov4_tiny(input_size=64, num_classes=3).param_count()  # parent untouched
    assert_all_agree(small, tmp_path)
    with pytest.raises(ValueError, match="exactly one"):
        lowrank_decompose(g)


def test_lowrank_energy_keeps_more_rank_for_more_energy():
    g = tiny_cnn(depth=3, width=32)
    lo = lowrank_decompose(g, energy=0.5).meta["variant"][-1]["ranks"]
    hi = lowrank_decompose(g, energy=0.95).meta["variant"][-1]["ranks"]
    assert lo and all(lo[k] <= hi.get(k, 10**9) for k in lo)
    assert sum(lo.values()) < sum(hi.get(k, 32) for k in lo)


def test_prune_removes_the_unimportant_channels(tmp_path):
    g = tiny_cnn(depth=4, width=16, bn=True, seed=2)
    dead: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    for lay in g.layers:
        if lay.op == "batchnorm":  # make 4 of 16 channels dead: gamma ~ 0, beta = 0 -> output exactly 0
            idx = rng.choice(16, 4, replace=False)
            lay.weights["gamma"][idx] = 1e-7
            lay.weights["beta"][idx] = 0.0
            dead[lay.inputs[0]] = np.sort(idx)
    x = rng.random((1, 32, 32, 3))
    pruned = prune_channels(g, ratio=0.25, by="bn_gamma")
    assert pruned.meta["variant"][-1]["pruned_channels"] == {name: 4 for name in dead}
    assert pruned.param_count() < g.param_count()
    assert pruned.infer_shapes()["conv1"] == (16, 16, 12)
    np.testing.assert_allclose(pruned.forward_numpy(x)[0], g.forward_numpy(x)[0], rtol=1e-4, atol=1e-5)
    assert_all_agree(pruned, tmp_path)


def test_prune_l1_on_concat_and_residual_graphs():
    yolo = yolov4_tiny(input_size=64, num_classes=3)
    pruned = prune_channels(yolo, ratio=0.15, by="l1")
    assert pruned.param_count() < 0.9 * yolo.param_count()
    assert [pruned.infer_shapes()[o] for o in pruned.outputs] == [yolo.infer_shapes()[o] for o in yolo.outputs]
    res = build_zoo_graph("resnet50", input_size=64)
    pr = prune_channels(res, ratio=0.2, by="l1")
    done = pr.meta["variant"][-1]["pruned_channels"]
    assert "res2a_branch2a" in done and "res2a_branch2c" not in done  # a residual sum ties branch2c's width
    pr.validate()
    with pytest.raises(ValueError, match="by must be"):
        prune_channels(res, by="magic")


def test_int8_quantized_onnx_runs(tmp_path):
    g = tiny_cnn(depth=3, width=16, seed=4)
    g.outputs = ["fc"]
    files = build_model(g, tmp_path)
    rng = np.random.default_rng(5)
    calib = [rng.random((1, 32, 32, 3), dtype=np.float32) for _ in range(8)]  # NHWC, transposed inside
    q = quantize_onnx_int8(files.onnx, tmp_path / "tiny_int8.onnx", calib)
    import onnx

    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = rng.random((1, 32, 32, 3), dtype=np.float32)
    fp32, int8 = run_onnx(files.onnx, x)[0], run_onnx(q, x)[0]
    assert int8.shape == fp32.shape
    assert np.corrcoef(fp32.ravel(), int8.ravel())[0, 1] > 0.95
    with pytest.raises(ValueError, match="does not fit input"):
        quantize_onnx_int8(files.onnx, tmp_path / "bad.onnx", [np.zeros((1, 8, 8, 3), np.float32)])
    assert not (tmp_path / "bad.onnx").exists()


def test_without_the_zoo_extra_own_models_are_measured_and_a_zoo_model_is_one_line(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without the [zoo] extra (``pip install pytest-edgeperf onnxruntime ai-edge-litert``: no onnx;
    flatbuffers comes with both runtimes): pytest --help, --fixtures and ``edgeperf --version`` work, a user's own
    .onnx and .tflite files are measured, and a ``zoo:`` model fails with one line naming the extra."""
    from tinymodel import MODEL_BUILDER

    from pytest_edgeperf.models.tflite_export import tflite_available, to_tflite

    namespace: dict[str, object] = {}
    exec(MODEL_BUILDER, namespace)  # the user's own files, written while onnx is still importable
    namespace["build"](str(pytester.path / "tiny.onnx"))  # type: ignore[operator]
    own_tflite = tflite_available()
    if own_tflite:
        to_tflite(tiny_cnn(depth=2), pytester.path / "tiny.tflite")
    blocked = pytester.path / "blocked" / "onnx"  # on PYTHONPATH for pytest, the CLI and the workers: no onnx
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("onnx is not installed (blocked for this test)")\n')
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(blocked.parent),
                                                                      os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_own=f"""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks=["onnxruntime"])
        def test_own_onnx(edgeperf):
            assert edgeperf.measure().valid_count >= 10

        @pytest.mark.skipif({not own_tflite}, reason="no ai-edge-litert")
        @pytest.mark.edgeperf(model="tiny.tflite", frameworks=["litert"])
        def test_own_tflite(edgeperf):
            assert edgeperf.measure().valid_count >= 10

        @pytest.mark.edgeperf(model="zoo:tiny_cnn", frameworks=["onnxruntime"])
        def test_zoo(edgeperf):
            edgeperf.measure()
    """)
    for args, listed in ((["--help"], "*--edgeperf-quick*"), (["--fixtures"], "model_cache*")):
        shown = pytester.runpytest_subprocess(*args)
        assert shown.ret == 0 and "Traceback (most recent" not in shown.stdout.str() + shown.stderr.str(), args
        shown.stdout.fnmatch_lines([listed])
    version = pytester.run(sys.executable, "-m", "pytest_edgeperf.cli", "--version")
    assert version.ret == 0 and "pytest-edgeperf" in version.stdout.str()
    cache = pytester.path / "cache"  # empty: the zoo model must be built, not found
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", "--edgeperf-quick",
                                           f"--edgeperf-cache-dir={cache}")
    result.assert_outcomes(passed=1 + own_tflite, failed=1, skipped=int(not own_tflite))
    result.stdout.fnmatch_lines(["*zoo:tiny_cnn: building zoo models needs onnx: "
                                 "pip install 'pytest-edgeperf[[]zoo[]]'*"])
    assert "Traceback (most recent" not in result.stdout.str() + result.stderr.str()
    cli = pytester.run(sys.executable, "-m", "pytest_edgeperf.cli", "models", "build", "tiny_cnn",
                       "--out", str(pytester.path / "out"))
    assert cli.ret == 2 and cli.stderr.lines == [
        "edgeperf models: building zoo models needs onnx: pip install 'pytest-edgeperf[zoo]'"]
