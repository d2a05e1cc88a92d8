"""The Pi 3 framework comparison and the ChangSafe pruning study: real accuracy from models the project trains
itself, on every installed runtime.

The timed run prepares real images (resize, centre crop, mean subtraction with OpenCV) so throughput includes
preprocessing, as the Pi 3 framework comparison measured it; accuracy is a separate pass over the whole evaluation
set (as MLPerf
does). Both are recorded in the result and the baseline.
"""

import pytest


@pytest.mark.edgeperf(min_top1_pct=95.0, min_top5_pct=99.0)
def test_digits_classifier(edgeperf, framework, digits):
    result = edgeperf.measure(digits.stem, inputs=digits.eval_inputs, preprocess=digits.preprocess,
                              accuracy=digits.accuracy)
    assert result.accuracy["n"] == 360
    assert result.metric_values()["preprocess_p50_ms"] > 0


@pytest.mark.edgeperf(min_map50_pct=90.0)
def test_shapes_detector(edgeperf, framework, shapes):
    result = edgeperf.measure(shapes.stem, accuracy=shapes.accuracy)
    assert result.accuracy["n"] > 0
