"""Shared test setup.

pytester's in-process runs restore ``sys.modules`` afterwards, so a native extension first imported inside one
inner run would be imported a second time by the next one, which protobuf-based modules (onnx) answer with an
abort, and OpenCV with a half-initialised ``cv2.dnn`` (no ``readNet``). Importing them here, once, keeps them in
the outer snapshot.
"""

import contextlib
from collections.abc import Iterator

import numpy  # noqa: F401
import onnx
import onnx.helper
import onnx.numpy_helper  # noqa: F401
import pytest

with contextlib.suppress(ImportError):  # OpenCV is an optional runtime; its tests skip without it
    import cv2
    import cv2.dnn  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture
def tiny_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project whose conftest builds ``tiny.onnx`` (one 3x3 convolution, onnx.helper) at collection."""
    from tinymodel import MODEL_BUILDER

    pytester.makepyfile(modelbuilder=MODEL_BUILDER)
    pytester.makeconftest("""
        import modelbuilder
        modelbuilder.build("tiny.onnx")
    """)
    return pytester


@pytest.fixture
def quiet_device() -> Iterator[None]:
    """Hold the host's device lock while a CPU-heavy test that measures nothing runs (a wheel build, four database
    writers, every runtime's inference loop), so no measurement of the other xdist worker is timed beside it.

    Measurements take this lock themselves; a test that measures through pytester must not use this fixture (the
    inner run would wait for the lock its own process holds).
    """
    from pytest_edgeperf.device.lock import device_lock, device_lock_path

    with device_lock(device_lock_path("host"), None, timeout_s=900):
        yield
