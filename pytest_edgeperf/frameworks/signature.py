"""Model signatures: every input and output (name, shape with its dynamic dims, dtype, quantisation), and how a
test's ``input_shapes`` / ``input_dtypes`` / ``input_values`` turn the declared inputs into the ones measured.

A dynamic dimension is never set to 1 silently: it is resolved by ``input_shapes``, by another input's dimension
of the same symbolic name, by a value given in ``input_values``, by the arrays a dataset or an ``inputs=``
callable produces, or, for a leading batch dimension only, defaulted to 1 with a note. Anything else is a one-line
``SignatureError`` naming the input and the dimension. Pure numpy: no runtime is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_edgeperf.errors import EdgeperfError

#: a dimension as a runtime declares it: a size, a symbolic name ("N", "height"), or None (dynamic, unnamed)
Dim = int | str | None

#: names of a leading dimension that is a batch (compared lower-case); an unnamed leading dimension counts too
BATCH_NAMES = frozenset({"n", "b", "bs", "batch", "batch_size", "batchsize", "batch_dim", "num_batches", "none",
                         "?", "-1", "unk__0"})
#: dtypes whose random inputs cover the whole range (quantised image inputs take any byte)
_FULL_RANGE = ("uint8", "int8")


class SignatureError(EdgeperfError, ValueError):
    """The inputs cannot be made as asked (a dynamic dimension nobody resolved, a wrong name, shape or dtype)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model as its runtime declares it (or, once resolved, as it is measured)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str | None  # numpy dtype name ("float32", "int64", "uint8"); None when the runtime does not say
    scale: float | None = None  # quantisation: real = scale * (q - zero_point) (TFLite)
    zero_point: int | None = None
    index: int | None = None  # the runtime's own handle for the tensor (LiteRT tensor index)

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if not _is_fixed(d)]

    @property
    def is_static(self) -> bool:
        return not self.dynamic_axes

    @property
    def quantized(self) -> bool:
        return bool(self.scale) and self.dtype in ("uint8", "int8", "int16")

    def concrete_shape(self) -> tuple[int, ...]:
        """The shape as ints; a dynamic dimension here is an error naming it (callers resolve first)."""
        if self.dynamic_axes:
            axis = self.dynamic_axes[0]
            raise SignatureError(f"input {self.name!r} dimension {axis} ({dim_label(self.shape[axis])}) is dynamic")
        return tuple(int(d) for d in self.shape)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """``{"name", "shape", "dtype"}`` (+ ``scale``/``zero_point`` when quantised); dynamic dims as name or None."""
        shape = [int(d) if _is_fixed(d) else (d if isinstance(d, str) and d else None)  # type: ignore[arg-type]
                 for d in self.shape]
        out: dict[str, Any] = {"name": self.name, "shape": shape, "dtype": self.dtype}
        if self.quantized:
            out["scale"], out["zero_point"] = float(self.scale or 0.0), int(self.zero_point or 0)
        return out


def _is_fixed(d: Dim) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and int(d) > 0


def dim_label(d: Dim) -> str:
    return "unnamed" if d is None or (isinstance(d, int) and d <= 0) else repr(str(d))


def is_batch_dim(axis: int, d: Dim) -> bool:
    """A leading dimension that is unnamed or named like a batch (N, batch, batch_size ...)."""
    if axis != 0:
        return False
    if d is None or (isinstance(d, int) and d <= 0):
        return True
    return str(d).strip().lower() in BATCH_NAMES or str(d).strip().lower().startswith("batch")


def dtype_name(dtype: Any) -> str:
    return np.dtype(dtype).name


@dataclass
class InputPlan:
    """The inputs to measure: each spec's shape resolved (dims still open only where a feed will fill them)."""

    specs: list[TensorSpec]
    values: dict[str, Any] = field(default_factory=dict)  # input_values, by input name
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def spec(self, name: str) -> TensorSpec:
        return next(s for s in self.specs if s.name == name)


def resolve_inputs(declared: list[TensorSpec], model: str, *, shapes: list[int] | Mapping[str, Any] | None = None,
                   dtypes: Mapping[str, str] | None = None, values: Mapping[str, Any] | None = None,
                   open_ok: bool = False) -> InputPlan:
    """Resolve every declared input to the shape and dtype that will be measured.

    ``open_ok``: the inputs come from a dataset or a callable whose first arrays resolve what is left, so a dynamic
    dimension may stay open here (``check_feed`` closes it).
    """
    names = [s.name for s in declared]
    known = ", ".join(repr(n) for n in names) or "none"
    shapes_by_name: dict[str, list[int]] = {}
    if isinstance(shapes, Mapping):
        shapes_by_name = {str(k): list(v) for k, v in shapes.items()}
    elif shapes is not None:
        if len(declared) != 1:
            raise SignatureError(f"{_at(model)}input_shapes={list(shapes)} is one shape, but the model has "
                                 f"{len(declared)} inputs ({known}); give input_shapes={{name: shape}}")
        shapes_by_name = {names[0]: list(shapes)}
    for arg, given in (("input_shapes", shapes_by_name), ("input_dtypes", dtypes or {}),
                       ("input_values", values or {})):
        for key in given:
            if key not in names:
                raise SignatureError(f"{_at(model)}{arg} names input {key!r}, which the model does not have "
                                     f"(inputs: {known})")
    values = dict(values or {})
    for name, value in values.items():  # an array value fixes its input's shape
        arr = np.asarray(value)
        if arr.ndim and name not in shapes_by_name:
            shapes_by_name[name] = list(arr.shape)

    bindings: dict[str, int] = {}  # symbolic dim name -> size, from the shapes given
    specs: list[TensorSpec] = []
    for spec in declared:
        given = shapes_by_name.get(spec.name)
        if given is None:
            specs.append(spec)
            continue
        if len(given) != len(spec.shape):
            raise SignatureError(f"{_at(model)}input {spec.name!r} has {len(spec.shape)} dimensions "
                                 f"{_show(spec.shape)}; input_shapes gives {len(given)}: {given}")
        for axis, (d, g) in enumerate(zip(spec.shape, given, strict=True)):
            if _is_fixed(d) and int(d) != int(g):  # type: ignore[arg-type]
                raise SignatureError(f"{_at(model)}input {spec.name!r} dimension {axis} is fixed at {d} in the model; "
                                     f"input_shapes gives {g}")
            if isinstance(d, str) and d:
                bindings.setdefault(d, int(g))
        specs.append(replace(spec, shape=tuple(int(g) for g in given)))

    notes: list[str] = []
    resolved: list[TensorSpec] = []
    for spec in specs:
        dims: list[Dim] = []
        for axis, d in enumerate(spec.shape):
            if _is_fixed(d):
                dims.append(int(d))  # type: ignore[arg-type]
            elif isinstance(d, str) and d in bindings:
                dims.append(bindings[d])
            elif is_batch_dim(axis, d):
                dims.append(1)
                if isinstance(d, str) and d:
                    bindings.setdefault(d, 1)
                notes.append(f"input {spec.name!r}: dynamic batch dimension {dim_label(d)} measured at 1")
            elif open_ok:
                dims.append(d)
            else:
                raise SignatureError(
                    f"{_at(model)}input {spec.name!r} dimension {axis} ({dim_label(d)}) is dynamic; give "
                    f"input_shapes={{{spec.name!r}: {_show(tuple(dims) + spec.shape[axis:])}}}")
        dtype = _resolve_dtype(spec, (dtypes or {}).get(spec.name), model)
        resolved.append(replace(spec, shape=tuple(dims), dtype=dtype))
    return InputPlan(resolved, values, notes)


def _resolve_dtype(spec: TensorSpec, given: str | None, model: str) -> str:
    if given is None:
        if spec.dtype is None:
            return "float32"
        return spec.dtype
    try:
        name = dtype_name(given)
    except TypeError:
        raise SignatureError(f"{_at(model)}input_dtypes[{spec.name!r}]: not a dtype: {given!r}") from None
    if spec.dtype is not None and name != spec.dtype:
        raise SignatureError(f"{_at(model)}input {spec.name!r} is {spec.dtype} in the model; input_dtypes gives {name}")
    return name


def _show(shape: tuple[Dim, ...]) -> str:
    """A shape for a message: sizes as numbers, dynamic dims by their name (or ?)."""
    return "[" + ", ".join(str(int(d)) if _is_fixed(d) else (str(d) if d else "?") for d in shape) + "]"  # type: ignore[arg-type]


def generate_input(spec: TensorSpec, value: Any, seed: int) -> np.ndarray:
    """The array fed to ``spec`` (resolved): ``value`` if given (a scalar fills the shape), else by dtype.

    float: standard normal; uint8/int8: uniform over the whole range; other ints: 0 (a valid index for any
    embedding or gather); bool: True (an all-true mask). The worker notes which inputs got a default.
    """
    shape = spec.concrete_shape()
    dtype = _np_dtype(spec)
    if dtype is None:
        raise SignatureError(f"input {spec.name!r} is {spec.dtype}; the plugin generates numeric and bool inputs "
                             f"only: give inputs='module:function'")
    if value is not None:
        try:
            arr = np.asarray(value, dtype=dtype)
            return np.ascontiguousarray(np.broadcast_to(arr, shape))
        except (TypeError, ValueError) as exc:
            raise SignatureError(f"input_values[{spec.name!r}]: cannot make a {dtype.name} array of shape "
                                 f"{list(shape)} from {_short(value)} ({exc})") from None
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.name in _FULL_RANGE:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if dtype.kind in "iu":
        return np.zeros(shape, dtype)
    if dtype.kind == "b":
        return np.ones(shape, dtype)
    raise SignatureError(f"input {spec.name!r} is {dtype.name}; the plugin generates float, int and bool inputs "
                         f"only: give inputs='module:function'")


def _np_dtype(spec: TensorSpec) -> np.dtype | None:
    """The spec's numpy dtype (float32 when the runtime does not say); None for a type numpy has no name for."""
    try:
        return np.dtype(spec.dtype or "float32")
    except TypeError:
        return None


def default_note(spec: TensorSpec) -> str | None:
    """The note for an input filled with a default that is not random data (ints: 0, bool: True)."""
    kind = _np_dtype(spec)
    if kind is None:
        return None
    if kind.kind in "iu" and kind.name not in _FULL_RANGE:
        return (f"input {spec.name!r} ({kind.name}) fed zeros; give input_values={{{spec.name!r}: ...}} "
                f"for another value")
    if kind.kind == "b":
        return f"input {spec.name!r} (bool) fed True; give input_values={{{spec.name!r}: ...}} for another value"
    return None


def to_input_dtype(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """``x`` as ``spec``'s dtype; real values going into a quantised input are quantised with its scale/zero point.

    TFLite: a uint8/int8 input holds ``q = round(x / scale + zero_point)`` clipped to the dtype's range.
    """
    dtype = _np_dtype(spec)
    if dtype is None or x.dtype == dtype:
        return x
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        real = x.astype(np.float32, copy=False)
        if spec.quantized:
            real = real / np.float32(spec.scale) + np.float32(spec.zero_point or 0)
        return np.clip(np.rint(real), info.min, info.max).astype(dtype)
    return x.astype(dtype, copy=False)


def dequantize(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A quantised output back to real values (``scale * (q - zero_point)``); others unchanged."""
    if spec.quantized and y.dtype.kind in "iu":
        return (y.astype(np.float32) - np.float32(spec.zero_point or 0)) * np.float32(spec.scale)
    return y


def check_feed(feed: Mapping[str, Any], plan: InputPlan, model: str, where: str) -> dict[str, np.ndarray]:
    """The first feed a dataset or an ``inputs=`` callable made, checked against the plan; closes its open dims.

    Returns the feed's arrays by name; raises a one-line SignatureError naming the input that is wrong.
    The plan's specs take the feed's shapes (so the runtime is resized to what is fed and the result says so).
    """
    arrays: dict[str, np.ndarray] = {}
    known = ", ".join(repr(n) for n in plan.names)
    for name, value in feed.items():
        if name not in plan.names:
            raise SignatureError(f"{_at(model)}{where} gave input {name!r}, which the model does not have "
                                 f"(inputs: {known})")
        if not isinstance(value, np.ndarray):
            raise SignatureError(f"{_at(model)}{where} gave input {name!r} as {type(value).__name__}, "
                                 f"not a numpy array")
        spec = plan.spec(name)
        if value.ndim != len(spec.shape) or any(
                _is_fixed(d) and int(d) != n for d, n in zip(spec.shape, value.shape, strict=False)):  # type: ignore[arg-type]
            raise SignatureError(f"{_at(model)}{where} gave input {name!r} with shape {list(value.shape)}; the model "
                                 f"takes {_show(spec.shape)}")
        if spec.dtype is not None and value.dtype != _np_dtype(spec):
            raise SignatureError(f"{_at(model)}{where} gave input {name!r} as {value.dtype}; the model takes "
                                 f"{spec.dtype}")
        arrays[name] = value
    for i, spec in enumerate(plan.specs):
        if spec.name in arrays:
            plan.specs[i] = replace(spec, shape=tuple(int(n) for n in arrays[spec.name].shape))
        elif not spec.is_static:
            axis = spec.dynamic_axes[0]
            raise SignatureError(f"{_at(model)}input {spec.name!r} dimension {axis} ({dim_label(spec.shape[axis])}) "
                                 f"is dynamic and {where} did not give it; give input_shapes={{{spec.name!r}: "
                                 f"{_show(spec.shape)}}}")
    return arrays


def _at(model: str) -> str:
    """The message prefix naming the model (empty where the caller's own prefix names it)."""
    return f"{model}: " if model else ""


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- the arguments a test gives (marker and measure()), checked before any worker starts ----------------------

def normalize_input_shapes(value: Any) -> list[int] | dict[str, list[int]]:
    """A shape (for a single-input model) or ``{name: shape}``; every size a positive int. JSON-ready."""
    if isinstance(value, Mapping):
        if not value:
            raise SignatureError("expected a shape or {input name: shape}, got an empty dict")
        out: dict[str, list[int]] = {}
        for name, shape in value.items():
            if not isinstance(name, str):
                raise SignatureError(f"input names are strings, got {_short(name)}")
            out[name] = _shape(shape, f"input {name!r}")
        return out
    return _shape(value, "the shape")


def _shape(value: Any, what: str) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SignatureError(f"{what}: expected a list of sizes like [1, 3, 640, 640], got {_short(value)}")
    sizes = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or int(d) <= 0:
            raise SignatureError(f"{what}: every size must be a positive int, got {_short(list(value))}")
        sizes.append(int(d))
    return sizes


def normalize_input_dtypes(value: Any) -> dict[str, str]:
    """``{name: dtype}`` (a numpy dtype or its name) -> ``{name: dtype name}``; numeric and bool dtypes only."""
    if not isinstance(value, Mapping) or not value:
        raise SignatureError(f"expected {{input name: dtype}}, got {_short(value)}")
    out = {}
    for name, dtype in value.items():
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            raise SignatureError(f"input {name!r}: not a dtype: {_short(dtype)}") from None
        if np_dtype.kind not in "fiub":
            raise SignatureError(f"input {name!r}: {np_dtype.name} is not a numeric or bool dtype")
        out[str(name)] = np_dtype.name
    return out


def normalize_input_values(value: Any) -> dict[str, Any]:
    """``{name: value}``: a number or bool fills the input, an array (or nested list) is fed as it is. JSON-ready."""
    if not isinstance(value, Mapping) or not value:
        raise SignatureError(f"expected {{input name: value}}, got {_short(value)}")
    out: dict[str, Any] = {}
    for name, item in value.items():
        arr = np.asarray(item)
        if arr.dtype.kind not in "fiub" or arr.size == 0:
            raise SignatureError(f"input {name!r}: expected a number, a bool or an array of them, got {_short(item)}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise SignatureError(f"input {name!r}: the value must be finite, got {_short(item)}")
        out[str(name)] = arr.tolist()
    return out
