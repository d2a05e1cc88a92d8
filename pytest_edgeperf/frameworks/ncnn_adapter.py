"""ncnn adapter: ``.ncnn.param``/``.ncnn.bin`` models, converted from ONNX by pnnx into the cache before any timing.

ncnn has no batch axis and no API for input shapes, so the conversion writes a sidecar ``<stem>.ncnn.json`` with the
source model's signature under ncnn's blob names (pnnx names inputs ``in0, in1, ...`` and outputs ``out0, ...``).
pnnx's converter is a standalone binary inside the ``pnnx`` wheel: it converts ONNX without torch, so
``pip install --no-deps pnnx`` is enough (the wheel's declared torch dependency is for TorchScript input only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .base import ConverterMissing, Feed, FrameworkAdapter, ModelLoadError
from .signature import SignatureError, TensorSpec

#: seconds a pnnx conversion may take (a ResNet-50 takes a few seconds)
CONVERT_TIMEOUT_S = 300.0
#: bump when the conversion changes what it writes: cached conversions with another version are redone
CONVERTER_VERSION = 1


class NcnnAdapter(FrameworkAdapter):
    name = "ncnn"
    extensions = (".ncnn.param",)
    modules = ("ncnn",)
    extra = "ncnn"

    def __init__(self) -> None:
        self._net: Any = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []

    @classmethod
    def model_file(cls, model: Path) -> Path | None:
        """``x.ncnn.param`` given directly, or next to a stem ``x``."""
        if model.name.endswith(".param"):
            return model if model.exists() else None
        if model.suffix and model.exists():
            return None  # an explicit file of another format (an .onnx is converted, see ``convert``)
        candidate = model.with_name(model.name + ".ncnn.param")
        return candidate if candidate.exists() else None

    @classmethod
    def convert(cls, model: Path, cache_dir: Path) -> Path | None:
        """``model``'s ONNX file converted by pnnx into ``cache_dir/ncnn/<name>-<sha>/`` (once per content)."""
        source = model if model.suffix == ".onnx" else model.with_name(model.name + ".onnx")
        if not source.is_file():
            return None
        return convert_onnx(source, cache_dir / "ncnn")

    def load(self, path: Path, threads: int) -> None:
        import ncnn

        self._threads = threads
        net = ncnn.Net()
        net.opt.num_threads = threads
        net.opt.use_vulkan_compute = False
        weights = path.with_name(path.name.removesuffix(".param") + ".bin")
        if net.load_param(str(path)) != 0:
            raise ModelLoadError(f"ncnn could not read {path.name} (not an ncnn param file, or an unknown layer)")
        if net.load_model(str(weights)) != 0:
            raise ModelLoadError(f"ncnn could not read the weights {weights.name}")
        self._net = net
        self._inputs, self._outputs = _signature(path, list(net.input_names()), list(net.output_names()))

    def version(self) -> str:
        import ncnn

        return str(ncnn.__version__)

    def provider(self) -> str:
        return "vulkan" if self._net.opt.use_vulkan_compute else "cpu"

    def threads_in_use(self) -> int | None:
        return int(self._net.opt.num_threads)

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._outputs

    def set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        for name, shape in shapes.items():
            if len(shape) == 4 and shape[0] != 1:
                raise SignatureError(f"input {name!r}: ncnn runs one sample at a time; batch {shape[0]} cannot "
                                     f"be measured (give input_shapes with a batch of 1)")
        super().set_input_shapes(shapes)

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        import ncnn

        net = self._net
        # the arrays without their batch axis, as ncnn.Mat (made once, outside the timing loop)
        mats = [(name, ncnn.Mat(_unbatched(x))) for name, x in self.as_feed(feed).items()]
        out_name = self._outputs[0].name
        create = net.create_extractor
        if len(mats) == 1:
            (in_name, mat), = mats

            def run_once() -> Any:
                ex = create()
                ex.input(in_name, mat)
                return ex.extract(out_name)[1]

            return run_once

        def run_many() -> Any:
            ex = create()
            for name, mat in mats:
                ex.input(name, mat)
            return ex.extract(out_name)[1]

        return run_many

    def run(self, feed: Feed) -> np.ndarray:
        """The first output with the batch axis ncnn dropped put back (the source model's rank)."""
        y = np.array(self.make_runner(feed)())
        rank = len(self._outputs[0].shape)
        while rank and y.ndim < rank:
            y = y[None]
        return y


def _unbatched(x: np.ndarray) -> np.ndarray:
    """The array without its leading batch axis of 1 (ncnn blobs are CHW / HW / W), float32 and contiguous."""
    return np.ascontiguousarray(x[0] if x.ndim >= 2 and x.shape[0] == 1 else x, dtype=np.float32)


def _signature(path: Path, in_names: list[str], out_names: list[str]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The sidecar written by ``convert_onnx``; without one, names only (shapes must come from ``input_shapes``)."""
    sidecar = path.with_name(path.name.removesuffix(".ncnn.param").removesuffix(".param") + ".ncnn.json")
    try:
        meta = json.loads(sidecar.read_text())
        return ([_from_json(t) for t in meta["inputs"]], [_from_json(t) for t in meta["outputs"]])
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelLoadError(f"{path.name}: no signature sidecar {sidecar.name} (ncnn files cannot say their input "
                             f"shapes; give the .onnx and the plugin converts it with pnnx)") from None


def _from_json(t: Mapping[str, Any]) -> TensorSpec:
    return TensorSpec(name=str(t["name"]), shape=tuple(t["shape"]), dtype=t.get("dtype") or "float32")


def pnnx_binary() -> str:
    """The pnnx converter: the binary inside the ``pnnx`` wheel, else ``pnnx`` on PATH; ConverterMissing if neither."""
    import importlib.util

    spec = importlib.util.find_spec("pnnx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "pnnx"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("pnnx")
    if found:
        return found
    raise ConverterMissing("converting ONNX to ncnn needs pnnx (pip install --no-deps pnnx: its converter binary "
                           "needs no torch)")


def convert_onnx(source: Path, out_root: Path) -> Path:
    """Convert ``source`` (.onnx) with pnnx (fp32 weights); returns the cached ``.ncnn.param``.

    Written under a temporary name and renamed into place with the sidecar last, so a reader never sees half a
    conversion; the directory name carries the source's digest, so a changed model is converted again.
    """
    data = source.read_bytes()
    digest = hashlib.sha256(data + f"v{CONVERTER_VERSION}".encode()).hexdigest()[:12]
    stem = source.stem
    out_dir = out_root / f"{stem}-{digest}"
    param, weights, sidecar = (out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin",
                               out_dir / f"{stem}.ncnn.json")
    if sidecar.exists() and param.exists() and weights.exists():
        return param
    binary = pnnx_binary()
    inputs, outputs = _onnx_signature(source)
    if any(not spec.is_static for spec in inputs):
        dynamic = next(spec for spec in inputs if not spec.is_static)
        raise ModelLoadError(f"{source.name}: input {dynamic.name!r} has dynamic dimensions; pnnx converts static "
                             f"shapes only (export the ONNX model with a fixed input shape for ncnn)")
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_root, prefix=".convert-") as tmp:
        work = Path(tmp)
        shutil.copyfile(source, work / "model.onnx")
        shape_arg = ",".join("[" + ",".join(str(d) for d in spec.shape) + "]" + _pnnx_type(spec.dtype)
                             for spec in inputs)
        cmd = [binary, "model.onnx", f"inputshape={shape_arg}", "fp16=0", "ncnnparam=model.ncnn.param",
               "ncnnbin=model.ncnn.bin", "ncnnpy=model_ncnn.py", "pnnxparam=model.pnnx.param",
               "pnnxbin=model.pnnx.bin", "pnnxpy=model_pnnx.py", "pnnxonnx=model.pnnx.onnx"]
        try:
            done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ModelLoadError(f"pnnx did not convert {source.name} within {CONVERT_TIMEOUT_S:g} s") from None
        made = work / "model.ncnn.param"
        if done.returncode != 0 or not made.exists():
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            raise ModelLoadError(f"pnnx could not convert {source.name} to ncnn (exit {done.returncode}): "
                                 f"{lines[-1] if lines else 'no output'}")
        names = _param_io(made.read_text())
        meta = {"source": source.name, "converter": f"pnnx {_pnnx_version()}", "converter_version": CONVERTER_VERSION,
                "inputs": _renamed(inputs, names[0], "in"), "outputs": _renamed(outputs, names[1], "out")}
        out_dir.mkdir(parents=True, exist_ok=True)
        os.replace(work / "model.ncnn.bin", weights)
        os.replace(made, param)
        (work / "sidecar.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(work / "sidecar.json", sidecar)
    return param


def _pnnx_type(dtype: str | None) -> str:
    return {"float32": "f32", "float16": "f16", "int64": "i64", "int32": "i32", "uint8": "u8",
            "int8": "i8"}.get(dtype or "float32", "f32")


def _param_io(text: str) -> tuple[list[str], list[str]]:
    """Input blob names (``Input`` layers) and output blobs (produced and never consumed) of an ncnn param file."""
    produced: list[str] = []
    consumed: set[str] = set()
    inputs: list[str] = []
    for line in text.splitlines()[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        bottoms, tops = parts[4:4 + n_in], parts[4 + n_in:4 + n_in + n_out]
        consumed.update(bottoms)
        produced.extend(tops)
        if parts[0] == "Input":
            inputs.extend(tops)
    return inputs, [b for b in produced if b not in consumed]


def _renamed(specs: list[TensorSpec], names: list[str], prefix: str) -> list[dict[str, Any]]:
    """The source model's tensors under ncnn's names (pnnx keeps their order: in0, in1, ...)."""
    out = []
    for i, spec in enumerate(specs):
        name = f"{prefix}{i}" if f"{prefix}{i}" in names or not names else (names[i] if i < len(names) else spec.name)
        out.append({"name": name, "shape": list(spec.concrete_shape()) if spec.is_static else list(spec.shape),
                    "dtype": spec.dtype, "source_name": spec.name})
    return out


def _onnx_signature(source: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    try:
        from .opencv_adapter import _onnx_signature as read
    except ImportError as exc:  # pragma: no cover - opencv_adapter imports nothing optional at module level
        raise ModelLoadError(str(exc)) from None
    try:
        return read(source)
    except ImportError:
        raise ConverterMissing("reading the ONNX signature for ncnn needs onnx (pip install onnx)") from None
    except Exception as exc:  # a corrupt ONNX file
        raise ModelLoadError(f"{source.name}: cannot read the ONNX model ({exc})") from None


def _pnnx_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pnnx")
    except PackageNotFoundError:
        return "unknown"
