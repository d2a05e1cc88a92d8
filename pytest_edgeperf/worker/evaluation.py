"""The accuracy pass, run inside the worker after timing: the whole evaluation set through the loaded runtime.

It connects a runtime adapter to the evaluators in ``accuracy.metrics`` (top-k, mAP@0.5) using the dataset and
preprocessing the marker declared, so accuracy comes from the same runtime, threads and model file as the timing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..frameworks.base import FrameworkAdapter


def _to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NCHW" and x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def evaluate_from_spec(spec: dict[str, Any], adapter: FrameworkAdapter, sys_path: list[str],
                       fixed: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """``spec``: task, dataset (folder of class sub-folders, or CSV), preprocess, decode ('module:function').

    The image goes to the model's first input, quantised with its scale and zero point when the input is
    uint8/int8 (TFLite); ``fixed`` feeds the other inputs. A quantised first output is dequantised.
    """
    from ..accuracy.datasets import ClassificationDataset, DetectionDataset
    from ..accuracy.metrics import evaluate_classifier, evaluate_detector
    from ..accuracy.preprocess import parse_preprocess
    from ..frameworks.signature import dequantize, to_input_dtype
    from .callables import load_callable

    pre = parse_preprocess(spec.get("preprocess") or {})
    layout = adapter.input_layout
    first, output = adapter.inputs[0], adapter.outputs[0]
    others = dict(fixed or {})

    def predict(x: np.ndarray) -> np.ndarray:
        feed = {**others, first.name: to_input_dtype(_to_layout(x, layout), first)}
        out = dequantize(np.asarray(adapter.run(feed)), output)
        if layout == "NCHW" and out.ndim == 4:  # feature maps back to NHWC, the evaluators' layout
            out = np.ascontiguousarray(out.transpose(0, 2, 3, 1))
        return out

    path = Path(spec["dataset"])
    if spec.get("task", "classification") == "classification":
        dataset = (ClassificationDataset.from_csv(path) if path.suffix == ".csv"
                   else ClassificationDataset.from_folder(path))
        return evaluate_classifier(predict, dataset, pre)
    dataset = DetectionDataset.from_csv(path)
    decode_ref = spec.get("decode")
    if not decode_ref:
        raise ValueError("a detection accuracy spec needs 'decode': 'module:function'")
    decode = load_callable(decode_ref, sys_path)
    return evaluate_detector(predict, dataset, pre, decode)
