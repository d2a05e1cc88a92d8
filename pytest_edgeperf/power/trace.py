"""The PowerTrace: raw power samples of one run on two clocks (perf_counter and unix), plus why it stopped.

Samples are kept raw so a summary can always be recomputed; ``t_s`` is ``time.perf_counter()``
(CLOCK_MONOTONIC, shared by every process on Linux, so it lines up with the worker's timed window) and
``t_unix`` is wall-clock time (lines up with external loggers and ``Result.window_start_unix_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PowerTrace:
    """Power samples ``(t_s, t_unix, power_w)`` in time order; ``error``: the meter failed mid-run."""

    meter: str
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    error: str | None = None
    rate_hz: float | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def times_s(self, clock: str = "perf") -> np.ndarray:
        """Sample times on the ``perf`` (perf_counter) or ``unix`` clock."""
        if clock not in ("perf", "unix"):
            raise ValueError(f"clock must be 'perf' or 'unix', not {clock!r}")
        col = 0 if clock == "perf" else 1
        return np.asarray([s[col] for s in self.samples], dtype=float)

    def power_w(self) -> np.ndarray:
        return np.asarray([s[2] for s in self.samples], dtype=float)

    def to_json(self) -> dict[str, Any]:
        return {"meter": self.meter, "samples": [list(s) for s in self.samples], "error": self.error,
                "rate_hz": self.rate_hz}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PowerTrace:
        return cls(meter=data.get("meter", ""), samples=[tuple(s) for s in data.get("samples", [])],
                   error=data.get("error"), rate_hz=data.get("rate_hz"))
