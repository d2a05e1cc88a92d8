"""Raspberry Pi 5 PMIC power: ``vcgencmd pmic_read_adc``, sum of V x I paired by rail name, calibrated.

Output lines look like ``VDD_CORE_A current(7)=2.04120000A`` and ``VDD_CORE_V volt(15)=0.88036170V``
(indented); a rail's power is its ``_V`` voltage times its ``_A`` current. Rails with only one of the
two (``EXT5V_V``, ``BATT_V``) are skipped. The PMIC does not see the 5 V loads (USB, fan),
hence the optional calibration ``a*P + b``.
"""

from __future__ import annotations

import re

from pytest_edgeperf.power.base import MeterError, PowerMeter, Runner, check_power_w

_LINE_RE = re.compile(
    r"^\s*(?P<rail>\S+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-+0-9.eE]+)\s*[AV]?\s*$"
)


def parse_pmic_adc(text: str) -> dict[str, tuple[float, float]]:
    """Rail -> (volts, amps) for every rail that has both readings."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE_RE.match(line)
        if not match:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        (amps if match["kind"] == "A" else volts)[match["rail"]] = value
    return {rail: (volts[rail], amps[rail]) for rail in sorted(volts.keys() & amps.keys())}


class PmicMeter(PowerMeter):
    """Pi 5 board power from the PMIC ADCs, one ``vcgencmd`` call per reading (~10 ms of CPU on a Pi 5)."""

    name = "pmic"

    def __init__(self, runner: Runner, *, vcgencmd: str = "vcgencmd", a_gain: float = 1.0,
                 b_offset_w: float = 0.0) -> None:
        self.runner = runner
        self.vcgencmd = vcgencmd
        self.a_gain = a_gain
        self.b_offset_w = b_offset_w

    def describe(self) -> str:
        cal = "" if (self.a_gain, self.b_offset_w) == (1.0, 0.0) else (
            f", calibrated {self.a_gain:g} x P + {self.b_offset_w:g} W")
        return f"Raspberry Pi 5 PMIC ({self.vcgencmd} pmic_read_adc, sum of rail V x I{cal})"

    def read_rails_w(self) -> dict[str, float]:
        """Per-rail watts (uncalibrated), for reports that want the breakdown."""
        out = self.runner.run([self.vcgencmd, "pmic_read_adc"])
        if out is None:
            raise MeterError(
                f"pmic: '{self.vcgencmd} pmic_read_adc' failed or is missing (Raspberry Pi 5 only)"
            )
        rails = parse_pmic_adc(out)
        if not rails:
            raise MeterError(f"pmic: no rail voltage/current pairs in '{self.vcgencmd} pmic_read_adc' output")
        return {rail: v * a for rail, (v, a) in rails.items()}

    def read_power_w(self) -> float:
        total_w = sum(self.read_rails_w().values())
        return check_power_w(self.a_gain * total_w + self.b_offset_w, self.name)
