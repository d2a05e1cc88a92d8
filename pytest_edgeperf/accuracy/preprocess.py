"""Image preprocessing declared in a marker: resize, centre crop, mean/scale, channel order, layout.

Seed 001 measured throughput *including* preprocessing ("resize 256, centre crop, mean subtraction"), so
``preprocess_image`` runs inside the timed loop: every constant is turned into a numpy array once, when the
spec is built, and the per-image work is a handful of OpenCV / numpy calls.

Order of operations (fixed, documented so a user can reproduce it)::

    BGR uint8 (as cv2 loads it) -> resize -> centre crop -> channel order -> float32
    -> (x - mean) * scale -> layout -> batch of 1

``mean`` is in pixel units (0-255) and given in the *output* channel order; ``scale`` multiplies after the
subtraction (use ``std`` instead to divide). ``size`` is either an int (resize so the shorter side has that
length, keeping the aspect ratio, as ImageNet evaluations do) or ``(h, w)`` (resize to exactly that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_edgeperf.errors import EdgeperfError

try:
    import cv2
except ImportError:  # the opencv extra is not installed: images cannot be converted or resized
    cv2 = None

#: the one-line reason when an image must be read or prepared without OpenCV
NO_OPENCV = "reading and preparing images needs OpenCV: pip install 'pytest-edgeperf[opencv]'"

CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NHWC", "NCHW")
DTYPES = ("float32", "uint8")
_KEYS = ("size", "crop", "mean", "scale", "std", "channel_order", "layout", "dtype")


class PreprocessError(EdgeperfError, ValueError):
    """A preprocessing declaration a user wrote is wrong; the message is one line naming the key."""


@dataclass(frozen=True)
class PreprocessSpec:
    """What to do to one BGR uint8 image before it reaches the model; validated when built."""

    size: int | tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    scale: float | tuple[float, ...] = 1.0
    channel_order: str = "RGB"
    layout: str = "NHWC"
    dtype: str = "float32"
    _mean_arr: np.ndarray = field(init=False, repr=False, compare=False)
    _scale_arr: np.ndarray = field(init=False, repr=False, compare=False)
    _identity_norm: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_size(self.size)
        if self.crop is not None and not _is_hw(self.crop):
            raise PreprocessError(f"preprocess: 'crop' must be [h, w] of positive ints, got {self.crop!r}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise PreprocessError(f"preprocess: 'channel_order' must be one of {CHANNEL_ORDERS}, "
                                  f"got {self.channel_order!r}")
        if self.layout not in LAYOUTS:
            raise PreprocessError(f"preprocess: 'layout' must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in DTYPES:
            raise PreprocessError(f"preprocess: 'dtype' must be one of {DTYPES}, got {self.dtype!r}")
        mean = _per_channel("mean", self.mean)
        scale = _per_channel("scale", self.scale)
        if np.any(scale == 0):
            raise PreprocessError("preprocess: 'scale' must not be 0")
        identity = bool(np.all(mean == 0) and np.all(scale == 1))
        if self.dtype == "uint8" and not identity:
            raise PreprocessError("preprocess: dtype 'uint8' feeds raw pixels; drop 'mean'/'scale'")
        object.__setattr__(self, "_mean_arr", mean)
        object.__setattr__(self, "_scale_arr", scale)
        object.__setattr__(self, "_identity_norm", identity)

    def output_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The (h, w) of the model input this spec makes from an image of ``image_hw``."""
        if self.crop is not None:
            return (int(self.crop[0]), int(self.crop[1]))
        return resized_hw(image_hw, self.size)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, accepted back by ``parse_preprocess``."""
        return {
            "size": list(self.size) if isinstance(self.size, tuple) else self.size,
            "crop": None if self.crop is None else list(self.crop),
            "mean": [float(m) for m in self.mean],
            "scale": list(self.scale) if isinstance(self.scale, tuple) else float(self.scale),
            "channel_order": self.channel_order,
            "layout": self.layout,
            "dtype": self.dtype,
        }


def parse_preprocess(d: Mapping[str, Any] | None) -> PreprocessSpec:
    """Build a spec from a marker/JSON dict; unknown keys and bad values give a one-line PreprocessError."""
    if d is None:
        return PreprocessSpec()
    if not isinstance(d, Mapping):
        raise PreprocessError(f"preprocess: expected a dict, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_KEYS))
    if unknown:
        raise PreprocessError(f"preprocess: unknown key {unknown[0]!r} (allowed: {', '.join(_KEYS)})")
    if "scale" in d and "std" in d:
        raise PreprocessError("preprocess: give either 'scale' or 'std', not both")
    kwargs: dict[str, Any] = {}
    if d.get("size") is not None:
        kwargs["size"] = _tuple_or_int("size", d["size"])
    if d.get("crop") is not None:
        kwargs["crop"] = _tuple_or_int("crop", d["crop"], square_int=True)
    if "mean" in d:
        kwargs["mean"] = _float_tuple("mean", d["mean"])
    if "scale" in d:
        s = d["scale"]
        kwargs["scale"] = _float_tuple("scale", s) if isinstance(s, list | tuple) else _float("scale", s)
    if "std" in d:
        std = np.asarray(_float_tuple("std", d["std"]) if isinstance(d["std"], list | tuple)
                         else (_float("std", d["std"]),))
        if np.any(std == 0):
            raise PreprocessError("preprocess: 'std' must not be 0")
        inv = tuple(float(v) for v in 1.0 / std)
        kwargs["scale"] = inv if len(inv) > 1 else inv[0]
    for key in ("channel_order", "layout", "dtype"):
        if key in d:
            if not isinstance(d[key], str):
                raise PreprocessError(f"preprocess: {key!r} must be a string, got {d[key]!r}")
            kwargs[key] = d[key].upper() if key != "dtype" else d[key].lower()
    return PreprocessSpec(**kwargs)


def resized_hw(image_hw: tuple[int, int], size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(h, w) after the resize step: shorter side to ``size`` (int), exact ``(h, w)``, or unchanged."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if size is None:
        return (h, w)
    if isinstance(size, tuple):
        return (int(size[0]), int(size[1]))
    if h <= w:
        return (size, max(1, round(w * size / h)))
    return (max(1, round(h * size / w)), size)


def geometry(image_hw: tuple[int, int], spec: PreprocessSpec) -> tuple[float, float, float, float]:
    """``(scale_y, scale_x, offset_y, offset_x)`` mapping model-input pixels back to the original image.

    ``orig = (model_coord + offset) / scale``; detection boxes are mapped back with it so that mAP is computed
    against the annotations in the image's own coordinates.
    """
    rh, rw = resized_hw(image_hw, spec.size)
    sy, sx = rh / image_hw[0], rw / image_hw[1]
    oy = ox = 0.0
    if spec.crop is not None:
        oy, ox = float((rh - spec.crop[0]) // 2), float((rw - spec.crop[1]) // 2)
    return (sy, sx, oy, ox)


def preprocess_image(img_bgr_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One BGR uint8 image (HxWx3 or HxW) -> a batch-1 model input (float32, or uint8 if the spec says so)."""
    if cv2 is None:
        raise PreprocessError(f"preprocess: {NO_OPENCV}")
    img = img_bgr_uint8
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    if spec.size is not None:
        rh, rw = resized_hw((h, w), spec.size)
        if (rh, rw) != (h, w):
            img = cv2.resize(img, (rw, rh), interpolation=cv2.INTER_LINEAR)
            h, w = rh, rw
    if spec.crop is not None:
        ch, cw = spec.crop
        if ch > h or cw > w:
            raise PreprocessError(f"preprocess: crop {ch}x{cw} is larger than the resized image {h}x{w}")
        top, left = (h - ch) // 2, (w - cw) // 2
        img = img[top:top + ch, left:left + cw]
    if spec.channel_order == "RGB":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    nchw = spec.layout == "NCHW"
    if nchw:
        img = img.transpose(2, 0, 1)  # move bytes, not floats; constants are (3, 1, 1) then
    if spec.dtype == "uint8":
        return np.ascontiguousarray(img)[np.newaxis]
    out = np.empty((1, *img.shape), np.float32)  # C-contiguous, what every runtime wants
    if spec._identity_norm:
        out[0] = img
    else:
        mean = spec._mean_arr[:, None, None] if nchw else spec._mean_arr
        np.subtract(img, mean, out=out[0], dtype=np.float32)  # one pass: uint8 -> float32 minus mean
        out *= spec._scale_arr[:, None, None] if nchw else spec._scale_arr
    return out


# --- validation helpers ---------------------------------------------------------------------------------
def _is_hw(v: Any) -> bool:
    return (isinstance(v, tuple) and len(v) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v))


def _check_size(size: Any) -> None:
    if size is None or _is_hw(size):
        return
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return
    raise PreprocessError(f"preprocess: 'size' must be a positive int or [h, w], got {size!r}")


def _tuple_or_int(key: str, v: Any, square_int: bool = False) -> int | tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        if v <= 0:
            raise PreprocessError(f"preprocess: {key!r} must be positive, got {v!r}")
        return (v, v) if square_int else v
    if isinstance(v, list | tuple) and len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        return (int(v[0]), int(v[1]))
    raise PreprocessError(f"preprocess: {key!r} must be a positive int or [h, w], got {v!r}")


def _float(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PreprocessError(f"preprocess: {key!r} must be a number, got {v!r}")
    return float(v)


def _float_tuple(key: str, v: Any) -> tuple[float, ...]:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (float(v),)
    if not isinstance(v, list | tuple) or len(v) not in (1, 3):
        raise PreprocessError(f"preprocess: {key!r} must be a number or a list of 1 or 3 numbers, got {v!r}")
    return tuple(_float(key, x) for x in v)


def _per_channel(key: str, v: float | tuple[float, ...]) -> np.ndarray:
    arr = np.asarray(v if isinstance(v, tuple) else (v,), dtype=np.float32)
    if arr.ndim != 1 or arr.size not in (1, 3) or not np.all(np.isfinite(arr)):
        raise PreprocessError(f"preprocess: {key!r} must be 1 or 3 finite numbers, got {v!r}")
    return np.broadcast_to(arr, (3,)).copy()
