"""ncnn adapter: ``.ncnn.param``/``.ncnn.bin`` models, converted from ONNX by pnnx into the cache before any timing.

ncnn has no batch axis and no API for input shapes, so the conversion writes a sidecar ``<stem>.ncnn.json`` with the
source model's signature (its input names, dynamic dims as declared) and ncnn's blob name for each tensor (pnnx names
inputs ``in0, in1, ...`` and outputs ``out0, ...``). pnnx converts at one concrete shape: a model with dynamic
dimensions is converted at the shape ``input_shapes`` resolves (the same resolution the worker makes), and that shape
is part of the cached conversion's key, so each measured shape has its own ncnn model.
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

from .base import ConverterMissing, DeclaredSignatureAdapter, Feed, ModelLoadError
from .signature import SignatureError, TensorSpec, resolve_inputs

#: ``input_shapes`` as the marker and measure() give it (normalised): one shape, or ``{input name: shape}``
InputShapes = list[int] | Mapping[str, list[int]]

#: seconds a pnnx conversion may take (a ResNet-50 takes a few seconds)
CONVERT_TIMEOUT_S = 300.0
#: bump when the conversion changes what it writes: cached conversions with another version are redone
CONVERTER_VERSION = 2


class NcnnAdapter(DeclaredSignatureAdapter):
    name = "ncnn"
    extensions = (".ncnn.param",)
    modules = ("ncnn",)
    extra = "ncnn"

    def __init__(self) -> None:
        super().__init__()
        self._net: Any = None
        self._blobs: dict[str, str] = {}  # source tensor name -> ncnn blob name
        self._converted_at: dict[str, tuple[int, ...]] = {}  # input name -> the shape pnnx converted it at

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
    def convert(cls, model: Path, cache_dir: Path, input_shapes: InputShapes | None = None) -> Path | None:
        """``model``'s ONNX file converted by pnnx into ``cache_dir/ncnn/<name>-<sha>/`` (once per content and
        input shape); ``input_shapes`` resolves its dynamic dimensions."""
        source = model if model.suffix == ".onnx" else model.with_name(model.name + ".onnx")
        if not source.is_file():
            return None
        return convert_onnx(source, cache_dir / "ncnn", input_shapes)

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
        self._inputs, self._outputs, self._blobs, self._converted_at = _sidecar(path)

    def version(self) -> str:
        import ncnn

        return str(ncnn.__version__)

    def provider(self) -> str:
        return "vulkan" if self._net.opt.use_vulkan_compute else "cpu"

    def threads_in_use(self) -> int | None:
        return int(self._net.opt.num_threads)

    def set_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """Only the shape pnnx converted the model at (ncnn's graph is fixed at it)."""
        for name, shape in shapes.items():
            if len(shape) == 4 and shape[0] != 1:
                raise SignatureError(f"input {name!r}: ncnn runs one sample at a time; batch {shape[0]} cannot "
                                     f"be measured (give input_shapes with a batch of 1)")
            converted = self._converted_at.get(name)
            if converted is not None and tuple(shape) != converted:
                raise SignatureError(f"input {name!r}: the ncnn model was converted at {list(converted)}, not "
                                     f"{list(shape)} (give the .onnx and input_shapes; the plugin converts it)")
        super().set_input_shapes(shapes)

    def make_runner(self, feed: Feed) -> Callable[[], Any]:
        import ncnn

        net = self._net
        # the arrays without their batch axis, as ncnn.Mat (made once, outside the timing loop)
        mats = [(self._blobs.get(name, name), ncnn.Mat(_unbatched(x))) for name, x in self.as_feed(feed).items()]
        out_name = self._blobs.get(self._outputs[0].name, self._outputs[0].name)
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


def _sidecar(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, str], dict[str, tuple[int, ...]]]:
    """The sidecar written by ``convert_onnx``: the inputs and outputs as the source model declares them, the ncnn
    blob of each tensor name, and the shape each input was converted at."""
    sidecar = path.with_name(path.name.removesuffix(".ncnn.param").removesuffix(".param") + ".ncnn.json")
    try:
        meta = json.loads(sidecar.read_text())
        tensors = meta["inputs"] + meta["outputs"]
        blobs = {str(t["name"]): str(t.get("blob") or t["name"]) for t in tensors}
        converted = {str(t["name"]): tuple(int(d) for d in t.get("converted_shape") or t["shape"])
                     for t in meta["inputs"]}
        return [_from_json(t) for t in meta["inputs"]], [_from_json(t) for t in meta["outputs"]], blobs, converted
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


def convert_onnx(source: Path, out_root: Path, input_shapes: InputShapes | None = None) -> Path:
    """Convert ``source`` (.onnx) with pnnx (fp32 weights) at the input shapes ``input_shapes`` resolves (a
    dynamic batch is 1, as in the worker); returns the cached ``.ncnn.param``.

    Written under a temporary name and renamed into place with the sidecar last, so a reader never sees half a
    conversion; the directory name carries the digest of the source and of the shapes converted at, so a changed
    model or another input shape is converted again. A dynamic dimension nothing resolves is a ModelLoadError that
    names the input and the dimension.
    """
    inputs, outputs = _onnx_signature(source)
    try:
        shapes = [spec.concrete_shape() for spec in resolve_inputs(inputs, "", shapes=input_shapes).specs]
    except SignatureError as exc:
        raise ModelLoadError(str(exc)) from None
    scalar = next((spec.name for spec, shape in zip(inputs, shapes, strict=True) if not shape), None)
    if scalar is not None:  # pnnx's inputshape= has no syntax for rank 0, and an ncnn blob has at least one axis
        raise ModelLoadError(f"pnnx could not convert {source.name} to ncnn: input {scalar!r} is a scalar (ncnn "
                             f"blobs have at least one axis)")
    shape_arg = ",".join("[" + ",".join(str(d) for d in shape) + "]" + _pnnx_type(spec.dtype)
                         for spec, shape in zip(inputs, shapes, strict=True))
    data = source.read_bytes()
    digest = hashlib.sha256(data + f"v{CONVERTER_VERSION} {shape_arg}".encode()).hexdigest()[:12]
    stem = source.stem
    out_dir = out_root / f"{stem}-{digest}"
    param, weights, sidecar = (out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin",
                               out_dir / f"{stem}.ncnn.json")
    if sidecar.exists() and param.exists() and weights.exists():
        return param
    binary = pnnx_binary()
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_root, prefix=".convert-") as tmp:
        work = Path(tmp)
        shutil.copyfile(source, work / "model.onnx")
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
                "inputs": _tensors(inputs, names[0], "in", shapes), "outputs": _tensors(outputs, names[1], "out")}
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


def _tensors(specs: list[TensorSpec], names: list[str], prefix: str,
             converted: list[tuple[int, ...]] | None = None) -> list[dict[str, Any]]:
    """The source model's tensors (name, declared shape, dtype) with ncnn's blob name for each (pnnx keeps their
    order: in0, in1, ...) and, for inputs, the shape converted at."""
    out = []
    for i, spec in enumerate(specs):
        blob = f"{prefix}{i}" if f"{prefix}{i}" in names or not names else (names[i] if i < len(names) else spec.name)
        entry: dict[str, Any] = {"name": spec.name, "blob": blob, "shape": spec.to_json()["shape"],
                                 "dtype": spec.dtype}
        if converted is not None:
            entry["converted_shape"] = list(converted[i])
        out.append(entry)
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
