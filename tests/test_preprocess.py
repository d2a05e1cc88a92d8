"""Preprocessing: shapes, values and the one-line errors of the Pi 3 framework comparison's path (resize, crop,
mean, scale)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2", reason="needs OpenCV (pip install -e '.[dev]')")

from pytest_edgeperf.accuracy.preprocess import (
    PreprocessError,
    PreprocessSpec,
    geometry,
    parse_preprocess,
    preprocess_image,
    resized_hw,
)


def _solid(h: int, w: int, bgr: tuple[int, int, int]) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgr
    return img


def test_resize_shorter_side_then_centre_crop_gives_the_crop_shape():
    spec = parse_preprocess({"size": 32, "crop": [24, 28]})
    out = preprocess_image(_solid(40, 60, (1, 2, 3)), spec)
    assert resized_hw((40, 60), 32) == (32, 48)
    assert out.shape == (1, 24, 28, 3)
    assert out.dtype == np.float32


def test_mean_scale_and_channel_order_on_a_solid_image():
    spec = parse_preprocess({"size": [8, 8], "mean": [10, 20, 30], "scale": 0.5, "channel_order": "RGB"})
    out = preprocess_image(_solid(5, 7, (100, 150, 200)), spec)  # B=100, G=150, R=200
    np.testing.assert_allclose(out[0, 0, 0], [(200 - 10) * 0.5, (150 - 20) * 0.5, (100 - 30) * 0.5])
    bgr = preprocess_image(_solid(5, 7, (100, 150, 200)),
                           parse_preprocess({"size": [8, 8], "mean": [10, 20, 30], "channel_order": "bgr"}))
    np.testing.assert_allclose(bgr[0, 0, 0], [90, 130, 170])


def test_std_is_the_inverse_of_scale():
    a = preprocess_image(_solid(4, 4, (50, 60, 70)), parse_preprocess({"mean": 5, "std": [2, 4, 5]}))
    b = preprocess_image(_solid(4, 4, (50, 60, 70)), parse_preprocess({"mean": 5, "scale": [0.5, 0.25, 0.2]}))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_centre_crop_takes_the_middle_without_resize():
    img = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    out = preprocess_image(img, parse_preprocess({"crop": 4, "channel_order": "BGR"}))
    np.testing.assert_array_equal(out[0], img[3:7, 3:7].astype(np.float32))


def test_nchw_is_the_transpose_of_nhwc():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    nhwc = preprocess_image(img, parse_preprocess({"size": 16, "crop": 16, "mean": [1, 2, 3], "scale": 0.1}))
    nchw = preprocess_image(img, parse_preprocess({"size": 16, "crop": 16, "mean": [1, 2, 3], "scale": 0.1,
                                                   "layout": "NCHW"}))
    assert nchw.shape == (1, 3, 16, 16)
    assert nchw.flags["C_CONTIGUOUS"] and nhwc.flags["C_CONTIGUOUS"]  # runtimes copy otherwise
    np.testing.assert_allclose(nchw, nhwc.transpose(0, 3, 1, 2))


def test_grey_input_and_uint8_output():
    grey = np.full((6, 6), 77, np.uint8)
    out = preprocess_image(grey, parse_preprocess({"dtype": "uint8"}))
    assert out.dtype == np.uint8 and out.shape == (1, 6, 6, 3)
    assert np.all(out == 77)


def test_geometry_maps_model_pixels_back_to_the_image():
    spec = parse_preprocess({"size": 50, "crop": [40, 40]})
    sy, sx, oy, ox = geometry((100, 200), spec)  # resized to 50x100, crop offset (5, 30)
    assert (sy, sx, oy, ox) == (0.5, 0.5, 5.0, 30.0)
    assert spec.output_hw((100, 200)) == (40, 40)


def test_to_dict_round_trips():
    spec = parse_preprocess({"size": 36, "crop": [32, 32], "mean": [1, 2, 3], "scale": 0.25,
                             "channel_order": "RGB", "layout": "NCHW"})
    assert parse_preprocess(spec.to_dict()) == spec


@pytest.mark.parametrize(("decl", "needle"), [
    ({"sise": 3}, "'sise'"),
    ({"size": -1}, "'size'"),
    ({"size": [1, 2, 3]}, "'size'"),
    ({"crop": "big"}, "'crop'"),
    ({"mean": [1, 2]}, "'mean'"),
    ({"scale": 0}, "'scale'"),
    ({"std": 0}, "'std'"),
    ({"scale": 1, "std": 2}, "'std'"),
    ({"channel_order": "RBG"}, "'channel_order'"),
    ({"layout": "HWC"}, "'layout'"),
    ({"dtype": "float16"}, "'dtype'"),
    ({"dtype": "uint8", "mean": 3}, "uint8"),
])
def test_bad_declarations_give_one_line_errors_naming_the_key(decl, needle):
    with pytest.raises(PreprocessError) as info:
        parse_preprocess(decl)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg
    assert isinstance(info.value, ValueError)


def test_crop_larger_than_the_image_is_an_error():
    with pytest.raises(PreprocessError, match="crop 10x10"):
        preprocess_image(_solid(8, 8, (0, 0, 0)), PreprocessSpec(crop=(10, 10)))
