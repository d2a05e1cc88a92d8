"""A/B in one run: two models (or a model and REF's version of it) timed interleaved and judged from the pairs.

``comparison`` is what the fixture's ``compare()`` and ``--edgeperf-against`` call; ``estimate`` turns the pairs
into a speed-up with its interval and the gates' verdicts; ``against`` finds REF's version of a model (a file from
git, or a model rebuilt from REF's code) through ``gitref``. The turns themselves run in ``worker/paired.py``.
"""
