"""Dataset loaders: folders, CSVs and box annotations, and the one-line errors a user's bad files produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs OpenCV (pip install -e '.[dev]')")

import cv2

from pytest_edgeperf.accuracy.datasets import ClassificationDataset, DatasetError, DetectionDataset, load_image


def _png(path: Path, h: int = 8, w: int = 8, value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def _one_line_error(info: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_folder_classes_are_sorted_folder_names(tmp_path):
    for cls, n in (("dog", 2), ("cat", 1), ("emu", 3)):
        for i in range(n):
            _png(tmp_path / cls / f"{i}.png")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = ClassificationDataset.from_folder(tmp_path)
    assert ds.classes == ["cat", "dog", "emu"]
    assert len(ds) == 6
    assert [lab for _, lab in ds] == [0, 1, 1, 2, 2, 2]


def test_labels_file_fixes_the_class_order(tmp_path):
    _png(tmp_path / "b" / "x.png")
    _png(tmp_path / "a" / "y.png")
    (tmp_path / "labels.txt").write_text("b\na\nc\n")
    ds = ClassificationDataset.from_folder(tmp_path)
    assert ds.classes == ["b", "a", "c"]
    assert {p.parent.name: lab for p, lab in ds} == {"a": 1, "b": 0}


def test_folder_not_in_labels_file_is_an_unknown_class(tmp_path):
    _png(tmp_path / "a" / "y.png")
    _png(tmp_path / "zebra" / "y.png")
    (tmp_path / "labels.txt").write_text("a\n")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_folder(tmp_path)
    _one_line_error(info, "zebra", "unknown class")


def test_empty_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_folder(tmp_path)
    _one_line_error(info, str(tmp_path), "no images")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_folder(tmp_path / "missing")
    _one_line_error(info, "missing", "not found")


def test_load_image_reads_bgr_and_names_corrupt_or_missing_files(tmp_path):
    good = _png(tmp_path / "ok.png", 5, 7, 42)
    img = load_image(good)
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8 and np.all(img == 42)
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[:20])  # a truncated PNG
    with pytest.raises(DatasetError) as info:
        load_image(bad)
    _one_line_error(info, "broken.png", "not a readable image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError) as info:
        load_image(empty)
    _one_line_error(info, "empty.png")
    with pytest.raises(DatasetError) as info:
        load_image(tmp_path / "nope.png")
    _one_line_error(info, "nope.png", "not found")


def test_csv_paths_are_relative_to_the_csv_and_header_is_optional(tmp_path):
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "img" / "b.png")
    csv_path = tmp_path / "set.csv"
    csv_path.write_text("path,label\nimg/a.png,3\n\nimg/b.png,0\n")
    ds = ClassificationDataset.from_csv(csv_path)
    assert [(p.name, lab) for p, lab in ds] == [("a.png", 3), ("b.png", 0)]
    assert ds.num_classes == 4
    csv_path.write_text("img/a.png,1\n")
    assert len(ClassificationDataset.from_csv(csv_path)) == 1


def test_csv_class_names_need_a_labels_file(tmp_path):
    _png(tmp_path / "a.png")
    csv_path = tmp_path / "set.csv"
    csv_path.write_text("a.png,cat\n")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_csv(csv_path)
    _one_line_error(info, "set.csv:1", "'cat'", "not an integer")
    (tmp_path / "labels.txt").write_text("dog\ncat\n")
    assert [lab for _, lab in ClassificationDataset.from_csv(csv_path)] == [1]


@pytest.mark.parametrize(("row", "needles"), [
    ("a.png,1.5", ("set.csv:2", "'1.5'")),
    ("a.png,owl", ("set.csv:2", "unknown class 'owl'")),
    ("a.png,7", ("set.csv:2", "out of range")),
    ("a.png,-1", ("set.csv:2", "out of range")),
    ("gone.png,0", ("gone.png", "not found", "set.csv:2")),
    ("a.png", ("set.csv:2", "expected 'path,label'")),
])
def test_csv_bad_rows_give_one_line_errors(tmp_path, row, needles):
    _png(tmp_path / "a.png")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    csv_path = tmp_path / "set.csv"
    csv_path.write_text(f"a.png,0\n{row}\n")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_csv(csv_path)
    _one_line_error(info, *needles)


def test_empty_or_missing_csv(tmp_path):
    csv_path = tmp_path / "set.csv"
    csv_path.write_text("path,label\n")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_csv(csv_path)
    _one_line_error(info, "set.csv", "no images")
    with pytest.raises(DatasetError) as info:
        ClassificationDataset.from_csv(tmp_path / "other.csv")
    _one_line_error(info, "other.csv", "not found")


def test_detection_csv_groups_boxes_by_image(tmp_path):
    _png(tmp_path / "a.png", 64, 64)
    _png(tmp_path / "b.png", 64, 64)
    _png(tmp_path / "c.png", 64, 64)
    (tmp_path / "labels.txt").write_text("square\ncircle\n")
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text("image,x1,y1,x2,y2,label\n"
                        "a.png,1,2,11,12,circle\n"
                        "b.png,,,,,\n"
                        "a.png,20,20,40,30,0\n"
                        "c.png,0,0,64,64,square\n")
    ds = DetectionDataset.from_csv(csv_path)
    assert [p.name for p, _ in ds] == ["a.png", "b.png", "c.png"]
    _, ann = ds.items[0]
    np.testing.assert_array_equal(ann.boxes, [[1, 2, 11, 12], [20, 20, 40, 30]])
    np.testing.assert_array_equal(ann.labels, [1, 0])
    assert len(ds.items[1][1].boxes) == 0
    img, ann_c = ds.load(2)
    assert img.shape == (64, 64, 3) and ann_c.labels.tolist() == [0]


@pytest.mark.parametrize(("row", "needles"), [
    ("a.png,10,10,5,20,0", ("ann.csv:2", "x1 < x2")),
    ("a.png,-3,0,5,5,0", ("ann.csv:2", "0 <= x1")),
    ("a.png,a,0,5,5,0", ("ann.csv:2", "numbers")),
    ("a.png,0,0,5,5,9", ("ann.csv:2", "out of range")),
    ("a.png,0,0,5,5", ("ann.csv:2", "expected 'image,x1,y1,x2,y2,label'")),
    ("x.png,0,0,5,5,0", ("x.png", "not found")),
])
def test_detection_csv_bad_rows(tmp_path, row, needles):
    _png(tmp_path / "a.png", 16, 16)
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text(f"image,x1,y1,x2,y2,label\n{row}\n")
    with pytest.raises(DatasetError) as info:
        DetectionDataset.from_csv(csv_path, num_classes=2)
    _one_line_error(info, *needles)


def test_box_outside_the_image_is_reported_when_loaded(tmp_path):
    _png(tmp_path / "a.png", 16, 20)  # h=16, w=20
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text("a.png,0,0,21,16,0\na.png,2,2,30,10,0\n")
    ds = DetectionDataset.from_csv(csv_path)
    with pytest.raises(DatasetError) as info:
        ds.load(0)
    _one_line_error(info, "ann.csv", "a.png", "(2,2,30,10)", "outside", "20x16")
