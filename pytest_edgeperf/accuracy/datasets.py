"""Evaluation datasets a user points the plugin at: image folders, path/label CSVs, box annotation CSVs.

Formats (documented here because users write them by hand):

* **Classification folder**: ``<root>/<class name>/<image>``; the class index is the position of the folder
  name in sorted order, or in ``<root>/labels.txt`` (one class name per line) when that file exists.
* **Classification CSV**: rows ``path,label`` (an optional ``path,label`` header); paths are relative to
  the CSV's folder; ``label`` is an integer class index, or a class name listed in a ``labels.txt`` beside
  the CSV.
* **Detection CSV**: rows ``image,x1,y1,x2,y2,label`` (an optional header with those names); pixel
  coordinates in the image as stored, ``x2``/``y2`` exclusive edges; several rows per image for several
  objects; a row with the box fields empty lists an image with no objects. ``label`` as for classification.

Every error a user can cause (missing or corrupt image, bad label, empty dataset, box outside the image) is a
``DatasetError`` whose one-line message names the file (and line).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from pytest_edgeperf.errors import EdgeperfError

try:
    import cv2
except ImportError:  # the opencv extra is not installed: listing a dataset works, reading an image does not
    cv2 = None

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
LABELS_FILE = "labels.txt"
_BOX_TOLERANCE_PX = 1.0  # annotation tools round edges; a box may poke one pixel out

ItemT = TypeVar("ItemT")


class DatasetError(EdgeperfError, ValueError):
    """A dataset file a user supplied is missing, unreadable or inconsistent (one-line message)."""


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as BGR uint8 HxWx3 (what cv2 and the seed-001 pipeline expect)."""
    p = Path(path)
    if cv2 is None:
        from .preprocess import NO_OPENCV

        raise DatasetError(f"{p}: {NO_OPENCV}")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"{p}: image file not found") from None
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read image ({exc.strerror or exc})") from None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DatasetError(f"{p}: not a readable image (corrupt or unsupported format)")
    return img


def read_labels_file(path: Path) -> list[str]:
    """Class names, one per line, blank lines ignored; duplicates are an error."""
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read labels file ({exc.strerror or exc})") from None
    if not names:
        raise DatasetError(f"{path}: labels file lists no classes")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DatasetError(f"{path}: class {sorted(dup)[0]!r} listed twice")
    return names


@dataclass
class LabelledDataset(Generic[ItemT]):
    """What every dataset holds: (image path, ground truth) items, the class names and the file they came from.

    The subclasses differ only in the ground truth and in how they read it; an empty dataset is an error for all.
    """

    items: list[ItemT]
    classes: list[str]
    source: Path

    def __post_init__(self) -> None:
        if not self.items:
            raise DatasetError(f"{self.source}: dataset has no images")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ItemT]:
        return iter(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class ClassificationDataset(LabelledDataset[tuple[Path, int]]):
    """(image path, class index) pairs plus the class names; iterating yields the pairs."""

    @classmethod
    def from_folder(cls, path: str | Path) -> ClassificationDataset:
        """Class sub-folders under ``path``; ``labels.txt`` (if present) fixes the class order."""
        root = Path(path)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found")
        folders = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        labels_path = root / LABELS_FILE
        if labels_path.is_file():
            classes = read_labels_file(labels_path)
            unknown = [f for f in folders if f not in classes]
            if unknown:
                raise DatasetError(f"{root / unknown[0]}: unknown class {unknown[0]!r} "
                                   f"(not in {labels_path})")
        else:
            classes = folders
        if not folders:
            raise DatasetError(f"{root}: no class sub-folders")
        index = {name: i for i, name in enumerate(classes)}
        items: list[tuple[Path, int]] = []
        for name in folders:
            files = sorted(f for f in (root / name).iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            items.extend((f, index[name]) for f in files)
        return cls(items, classes, root)

    @classmethod
    def from_csv(cls, path: str | Path, classes: list[str] | None = None,
                 num_classes: int | None = None) -> ClassificationDataset:
        """``path,label`` rows relative to the CSV; ``classes``/``labels.txt`` allow names, bound indices."""
        csv_path = Path(path)
        rows = _read_csv(csv_path, ("path", "label"))
        classes = _resolve_classes(csv_path, classes, num_classes)
        items = []
        for line_no, row in rows:
            if len(row) != 2:
                raise DatasetError(f"{csv_path}:{line_no}: expected 'path,label', got {len(row)} fields")
            img = _image_path(csv_path, line_no, row[0])
            items.append((img, _parse_label(csv_path, line_no, row[1], classes)))
        return cls(items, _index_names(classes, (lab for _, lab in items)), csv_path)


@dataclass
class Annotation:
    """Ground-truth objects of one image: ``boxes`` (K, 4) as x1, y1, x2, y2 pixels, ``labels`` (K,)."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))


class DetectionDataset(LabelledDataset[tuple[Path, Annotation]]):
    """(image path, Annotation) pairs in CSV order; ``load(i)`` also checks boxes against the image size."""

    def load(self, i: int) -> tuple[np.ndarray, Annotation]:
        """Image ``i`` (BGR uint8) and its annotation; a box outside the image is a DatasetError."""
        path, ann = self.items[i]
        img = load_image(path)
        h, w = img.shape[:2]
        if len(ann.boxes):
            b = ann.boxes
            bad = ((b[:, 2] > w + _BOX_TOLERANCE_PX) | (b[:, 3] > h + _BOX_TOLERANCE_PX)).nonzero()[0]
            if bad.size:
                x1, y1, x2, y2 = (float(v) for v in b[bad[0]])
                raise DatasetError(f"{self.source}: box ({x1:g},{y1:g},{x2:g},{y2:g}) lies outside "
                                   f"{path.name} ({w}x{h})")
        return img, ann

    @classmethod
    def from_csv(cls, path: str | Path, classes: list[str] | None = None,
                 num_classes: int | None = None) -> DetectionDataset:
        """``image,x1,y1,x2,y2,label`` rows relative to the CSV (see the module docstring)."""
        csv_path = Path(path)
        rows = _read_csv(csv_path, ("image", "x1", "y1", "x2", "y2", "label"))
        classes = _resolve_classes(csv_path, classes, num_classes)
        boxes: dict[Path, list[list[float]]] = {}
        labels: dict[Path, list[int]] = {}
        for line_no, row in rows:
            if len(row) != 6:
                raise DatasetError(f"{csv_path}:{line_no}: expected 'image,x1,y1,x2,y2,label', "
                                   f"got {len(row)} fields")
            img = _image_path(csv_path, line_no, row[0])
            boxes.setdefault(img, [])
            labels.setdefault(img, [])
            if all(not v.strip() for v in row[1:]):
                continue  # an image without objects
            try:
                x1, y1, x2, y2 = (float(v) for v in row[1:5])
            except ValueError:
                raise DatasetError(f"{csv_path}:{line_no}: box coordinates must be numbers, "
                                   f"got {','.join(row[1:5])!r}") from None
            if not (0 <= x1 < x2 and 0 <= y1 < y2) or not np.all(np.isfinite([x1, y1, x2, y2])):
                raise DatasetError(f"{csv_path}:{line_no}: box ({x1:g},{y1:g},{x2:g},{y2:g}) must have "
                                   "0 <= x1 < x2 and 0 <= y1 < y2")
            boxes[img].append([x1, y1, x2, y2])
            labels[img].append(_parse_label(csv_path, line_no, row[5], classes))
        items = [(img, Annotation(np.asarray(boxes[img], dtype=np.float32).reshape(-1, 4),
                                  np.asarray(labels[img], dtype=np.int64)))
                 for img in boxes]
        return cls(items, _index_names(classes, (lab for v in labels.values() for lab in v)), csv_path)


# --- helpers --------------------------------------------------------------------------------------------
def _read_csv(path: Path, header: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers, the optional header dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: CSV file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read CSV ({exc})") from None
    rows = [(i + 1, [c.strip() for c in row]) for i, row in enumerate(csv.reader(text.splitlines()))
            if row and any(c.strip() for c in row)]
    if rows and [c.lower() for c in rows[0][1]] == list(header):
        rows = rows[1:]
    if not rows:
        raise DatasetError(f"{path}: dataset has no images")
    return rows


def _resolve_classes(csv_path: Path, classes: list[str] | None, num_classes: int | None) -> list[str] | None:
    if classes is not None:
        return list(classes)
    labels_path = csv_path.parent / LABELS_FILE
    if labels_path.is_file():
        return read_labels_file(labels_path)
    if num_classes is not None:
        return [str(i) for i in range(num_classes)]
    return None


def _index_names(classes: list[str] | None, labels: Iterable[int]) -> list[str]:
    """``classes`` when known, else the indices ``0..max(labels)`` as names (a CSV without ``labels.txt``)."""
    if classes is not None:
        return classes
    return [str(i) for i in range(max(labels, default=-1) + 1)]


def _image_path(csv_path: Path, line_no: int, rel: str) -> Path:
    if not rel:
        raise DatasetError(f"{csv_path}:{line_no}: empty image path")
    img = (csv_path.parent / rel)
    if not img.is_file():
        raise DatasetError(f"{img}: image file not found (listed in {csv_path.name}:{line_no})")
    return img


def _parse_label(csv_path: Path, line_no: int, text: str, classes: list[str] | None) -> int:
    """An integer index (bounded by ``classes`` if known) or, with ``classes``, a class name."""
    try:
        label = int(text)
    except ValueError:
        if classes is not None and text in classes:
            return classes.index(text)
        if classes is None:
            raise DatasetError(f"{csv_path}:{line_no}: label {text!r} is not an integer "
                               f"(class names need a {LABELS_FILE} beside the CSV)") from None
        raise DatasetError(f"{csv_path}:{line_no}: unknown class {text!r}") from None
    if label < 0 or (classes is not None and label >= len(classes)):
        bound = f"0..{len(classes) - 1}" if classes is not None else ">= 0"
        raise DatasetError(f"{csv_path}:{line_no}: label {label} out of range ({bound})")
    return label
