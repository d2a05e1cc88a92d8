"""pytest-edgeperf: performance tests of ML models on edge devices, gated against baselines kept in the repo."""

__version__ = "0.1.0"
