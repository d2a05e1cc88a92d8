"""The Pi 3 framework comparison and the hardware-metrics correlation study: the framework x model matrix. Every
architecture of the source papers on every installed runtime.

Weights are synthetic (seeded), so these tests gate throughput, latency and memory against the device's
baselines, never accuracy (see test_accuracy.py for real accuracy).
"""

import pytest

ARCHITECTURES = ["squeezenet1_1", "mobilenet_v1", "googlenet", "resnet50", "nin", "yolov4_tiny"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.edgeperf(min_time_s=5)
def test_architecture(edgeperf, framework, arch):
    result = edgeperf.measure(f"zoo:{arch}")
    # the budget's sample count: 64 here (p90 needs them), 10 in a quick smoke run (--edgeperf-quick)
    valid, wanted = result.valid_count, edgeperf.budget.min_samples
    assert valid >= wanted or result.status != "ok"
    assert result.load_time_s > 0
