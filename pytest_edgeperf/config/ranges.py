"""The values each numeric option accepts (``RANGES``) and the ``Range`` that checks them and says why a value is
out of range. Separate from the option table because the marker's arguments that are the same quantity as an option
(``threads``, ``min_time_s``, ...) take the same range: the options and the marker both read it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from .settings import DEFAULT_BUDGET


@dataclass(frozen=True)
class Range:
    """The values a numeric option accepts: ``low`` to ``high`` (``low`` itself excluded when ``low_open``).

    ``zero_off``: 0 is accepted too, as the option's "off" value (``--edgeperf-sample-hz=0``), below a ``low``
    that keeps the rest away from absurdly small values (a rate of 1e-300 Hz overflows the sampler's period).
    """

    low: float
    high: float
    low_open: bool = False
    zero_off: bool = False

    def describe(self) -> str:
        text = f"{_num(self.low)} {'<' if self.low_open else '<='} x <= {_num(self.high)}"
        return f"x = 0 (off) or {text}" if self.zero_off else text

    def violation(self, value: float) -> str | None:
        """Why ``value`` is out of range ("must be <= 64 (range 0 < x <= 64), got 100"), or None if it is not."""
        if self.zero_off and value == 0:
            return None
        if value < self.low or (self.low_open and value == self.low):
            op = ">" if self.low_open else ">="
            return f"must be {op} {_num(self.low)} (range {self.describe()}), got {_num(value)}"
        if value > self.high:
            return f"must be <= {_num(self.high)} (range {self.describe()}), got {_num(value)}"
        return None

    def check(self, value: float, where: str) -> None:
        """Raise a one-line ``pytest.UsageError`` naming ``where`` (the flag or the ini key) when out of range."""
        why = self.violation(value)
        if why is not None:
            raise pytest.UsageError(f"{where} {why}")


DAY_S = 86_400.0
#: every int/float option's accepted range; checked where the value is read (flag or ini key) and shown in the
#: help. A numeric option without an entry here fails tests/test_options.py.
RANGES: dict[str, Range] = {
    "min-freq": Range(0, 10, low_open=True),  # GHz
    "max-temp": Range(0, 150, low_open=True),  # Celsius
    "guard-timeout": Range(0, DAY_S, low_open=True),
    "guard-hold": Range(0, 3600),
    "sample-hz": Range(0.01, 1000, zero_off=True),
    "sensor-budget": Range(0, 1, low_open=True),  # a fraction of the time
    "max-attempts": Range(0, 100, low_open=True),
    "min-samples": Range(0, DEFAULT_BUDGET.max_samples, low_open=True),
    "min-time": Range(0, DAY_S),
    "max-time": Range(0, DAY_S, low_open=True),
    "threads": Range(0, 1024, low_open=True),
    "processes": Range(0, 64, low_open=True),
    "max-cpu-wait": Range(0, 100),  # percent
    "worker-timeout": Range(0, DAY_S, low_open=True),
    "lock-timeout": Range(0, DAY_S),
    "update-passes": Range(0, 20, low_open=True),
    "power-hz": Range(0.01, 1000),
    "idle-time": Range(0, 3600),
    "sustained": Range(0, DAY_S, low_open=True),
}


def _num(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:g}"
