"""Power measurement: meters (hwmon INA2xx, Pi 5 PMIC, RAPL, SCPI, CSV logs), window sampling, energy and FoM.

Typical use (the plugin does this around each timed window)::

    meter = parse_meter_spec("hwmon", root=Path("/"), runner=CommandRunner(timeout_s=2.0))
    idle_w = measure_idle_w(meter, duration_s=2.0, rate_hz=10.0)
    sampler = PowerSampler(meter, rate_hz=10.0); sampler.start()
    ...  # timed inferences: result.window_start_s / window_end_s on perf_counter
    power = summarize_power(sampler.stop(), result.window_start_s, result.window_end_s, n, idle_w, acc)
"""

from pytest_edgeperf.power.base import VALID_FORMS, MeterError, PowerMeter, PowerSpecError
from pytest_edgeperf.power.factory import MeterSpec, parse_meter_spec
from pytest_edgeperf.power.sampler import PowerSampler, measure_idle_w
from pytest_edgeperf.power.summary import FOM_KEYS, combine_power, summarize_power, time_weighted_mean_w
from pytest_edgeperf.power.trace import PowerTrace

__all__ = [
    "FOM_KEYS",
    "VALID_FORMS",
    "MeterError",
    "MeterSpec",
    "PowerMeter",
    "PowerSampler",
    "PowerSpecError",
    "PowerTrace",
    "combine_power",
    "measure_idle_w",
    "parse_meter_spec",
    "summarize_power",
    "time_weighted_mean_w",
]
