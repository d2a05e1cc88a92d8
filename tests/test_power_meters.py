"""Power meter backends and the meter spec grammar, against fake sysfs trees, fake commands and pyvisa-sim."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_edgeperf.device.runner import CommandRunner
from pytest_edgeperf.power import MeterError, PowerSpecError, parse_meter_spec
from pytest_edgeperf.power.csvlog import CsvLogMeter
from pytest_edgeperf.power.hwmon import HwmonMeter
from pytest_edgeperf.power.pmic import PmicMeter, parse_pmic_adc
from pytest_edgeperf.power.rapl import RaplMeter
from pytest_edgeperf.power.scpi import parse_scpi_power

DATA = Path(__file__).parent / "data" / "power"
SIM_YAML = DATA / "analyzer.yaml"
SIM_RESOURCE = "USB0::0x2A8D::0x0F02::MY00000001::INSTR"
REPO = Path(__file__).resolve().parents[1]

# Real Raspberry Pi 5 `vcgencmd pmic_read_adc` output format (values from a Pi 5 running a CPU load).
PMIC_OUTPUT = """\
     3V7_WL_SW_A current(0)=0.00000000A
     3V3_SYS_A current(1)=0.05466000A
     1V8_SYS_A current(2)=0.17567000A
     DDR_VDD2_A current(3)=0.02342000A
     DDR_VDDQ_A current(4)=0.00000000A
     1V1_SYS_A current(5)=0.18836000A
     0V8_SW_A current(6)=0.32012000A
     VDD_CORE_A current(7)=2.04120000A
     3V3_DAC_A current(17)=0.00000000A
     3V3_ADC_A current(18)=0.00000000A
     0V8_AON_A current(16)=0.00000000A
     HDMI_A current(22)=0.00000000A
     3V7_WL_SW_V volt(8)=3.71825600V
     3V3_SYS_V volt(9)=3.31096000V
     1V8_SYS_V volt(10)=1.79988000V
     DDR_VDD2_V volt(11)=1.11181800V
     DDR_VDDQ_V volt(12)=0.60732400V
     1V1_SYS_V volt(13)=1.10569200V
     0V8_SW_V volt(14)=0.80231400V
     VDD_CORE_V volt(15)=0.88036170V
     3V3_DAC_V volt(20)=3.30402000V
     3V3_ADC_V volt(21)=3.30891000V
     0V8_AON_V volt(19)=0.79950000V
     HDMI_V volt(23)=5.14680000V
     EXT5V_V volt(24)=5.14192000V
     BATT_V volt(25)=0.00000000V
"""
# Sum of V x I over the rails that have both, by hand (zero-current rails left out).
PMIC_TOTAL_W = (3.31096 * 0.05466 + 1.79988 * 0.17567 + 1.111818 * 0.02342 + 1.105692 * 0.18836
                + 0.802314 * 0.32012 + 0.8803617 * 2.0412)


# --- fake device helpers ------------------------------------------------------------------------------
def make_hwmon(root: Path, index: int, name: str, **files: str) -> Path:
    """A fake ``<root>/sys/class/hwmon/hwmonN`` with a ``name`` and the given attribute files."""
    hwmon = root / "sys" / "class" / "hwmon" / f"hwmon{index}"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text(name + "\n")
    for attr, value in files.items():
        (hwmon / attr).write_text(value + "\n")
    return hwmon


def make_script(path: Path, body: str) -> Path:
    """An executable Python script standing in for a device command."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def make_rapl_zone(root: Path, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    zone = root / "sys" / "class" / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


class ScriptedClock:
    """A clock returning the given instants in turn, so RAPL's energy/time arithmetic is checked exactly."""

    def __init__(self, *instants_s: float) -> None:
        self.instants_s = list(instants_s)

    def __call__(self) -> float:
        return self.instants_s.pop(0)


# --- hwmon ---------------------------------------------------------------------------------------------
def test_hwmon_ina219_power1_input_is_microwatts(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, "ina219", power1_input="2500000", in1_input="5000", curr1_input="500")
    meter = parse_meter_spec("hwmon", root=tmp_path, runner=CommandRunner())
    assert isinstance(meter, HwmonMeter)
    assert meter.read_power_w() == pytest.approx(2.5)
    assert "ina219" in meter.describe() and "power1_input" in meter.describe()


def test_hwmon_falls_back_to_bus_voltage_times_current(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, "ina226", in1_input="5120", curr1_input="625")
    meter = parse_meter_spec("hwmon:ina226", root=tmp_path)
    assert meter is not None
    assert meter.read_power_w() == pytest.approx(5.12 * 0.625)
    assert "in1_input x curr1_input" in meter.describe()


def test_hwmon_old_layout_with_attributes_under_device(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, "ina260")
    (hwmon / "device").mkdir()
    (hwmon / "device" / "power1_input").write_text("1750000\n")
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None and meter.read_power_w() == pytest.approx(1.75)


def test_hwmon_discovery_skips_other_chips_and_uses_natural_order(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, "cpu_thermal", temp1_input="45000")
    make_hwmon(tmp_path, 10, "ina226", power1_input="9000000")
    make_hwmon(tmp_path, 2, "ina219", power1_input="2000000")
    first = parse_meter_spec("hwmon", root=tmp_path)
    assert isinstance(first, HwmonMeter) and first.hwmon_dir.name == "hwmon2"
    by_name = parse_meter_spec("hwmon:ina226", root=tmp_path)
    assert by_name is not None and by_name.read_power_w() == pytest.approx(9.0)
    by_dir = parse_meter_spec("hwmon:hwmon10", root=tmp_path)
    assert by_dir is not None and by_dir.read_power_w() == pytest.approx(9.0)
    by_path = parse_meter_spec(f"hwmon:{tmp_path}/sys/class/hwmon/hwmon2", root=Path("/nonexistent"))
    assert by_path is not None and by_path.read_power_w() == pytest.approx(2.0)


def test_hwmon_missing_device_is_a_one_line_spec_error(tmp_path: Path) -> None:
    make_hwmon(tmp_path, 0, "cpu_thermal", temp1_input="45000")
    with pytest.raises(PowerSpecError) as info:
        parse_meter_spec("hwmon", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "'hwmon'" in message and "ina2xx" in message and str(tmp_path / "sys/class/hwmon") in message
    with pytest.raises(PowerSpecError, match="ina226"):
        parse_meter_spec("hwmon:ina226", root=tmp_path)


def test_hwmon_read_fails_cleanly_when_files_vanish(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, "ina219", power1_input="2500000")
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    shutil.rmtree(hwmon)
    with pytest.raises(MeterError, match="missing"):
        meter.read_power_w()


def test_hwmon_garbage_value_is_a_meter_error(tmp_path: Path) -> None:
    hwmon = make_hwmon(tmp_path, 0, "ina219", power1_input="2500000")
    meter = parse_meter_spec("hwmon", root=tmp_path)
    assert meter is not None
    (hwmon / "power1_input").write_text("garbage\n")
    with pytest.raises(MeterError, match="not a number"):
        meter.read_power_w()


# --- Pi 5 PMIC -----------------------------------------------------------------------------------------
def test_parse_pmic_pairs_voltage_and_current_by_rail() -> None:
    rails = parse_pmic_adc(PMIC_OUTPUT)
    assert rails["VDD_CORE"] == (pytest.approx(0.8803617), pytest.approx(2.0412))
    assert "EXT5V" not in rails and "BATT" not in rails  # voltage only: no power
    assert len(rails) == 12


def test_pmic_meter_with_fake_vcgencmd_sums_rails_and_calibrates(tmp_path: Path) -> None:
    vcgencmd = make_script(tmp_path / "vcgencmd", f"""
        import sys
        if sys.argv[1:] != ["pmic_read_adc"]:
            sys.exit(2)
        sys.stdout.write({PMIC_OUTPUT!r})
    """)
    raw = parse_meter_spec("pmic", root=tmp_path, runner=CommandRunner(), vcgencmd=str(vcgencmd))
    assert isinstance(raw, PmicMeter)
    assert raw.read_power_w() == pytest.approx(PMIC_TOTAL_W, rel=1e-9)
    calibrated = parse_meter_spec("pmic:a=1.145,b=0.59", root=tmp_path, runner=CommandRunner(),
                                  vcgencmd=str(vcgencmd))
    assert calibrated is not None
    assert calibrated.read_power_w() == pytest.approx(1.145 * PMIC_TOTAL_W + 0.59, rel=1e-9)
    assert "1.145" in calibrated.describe()


def test_pmic_without_vcgencmd_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(PowerSpecError, match="pmic_read_adc") as info:
        parse_meter_spec("pmic", root=tmp_path, runner=CommandRunner(),
                         vcgencmd=str(tmp_path / "no-such-vcgencmd"))
    assert "\n" not in str(info.value)


def test_pmic_on_a_pi4_firmware_without_the_command_is_a_spec_error(tmp_path: Path) -> None:
    vcgencmd = make_script(tmp_path / "vcgencmd", """
        import sys
        print("error=1 error_msg=\\"Command not registered\\"")
    """)
    with pytest.raises(PowerSpecError, match="no rail"):
        parse_meter_spec("pmic", root=tmp_path, runner=CommandRunner(), vcgencmd=str(vcgencmd))


# --- RAPL ----------------------------------------------------------------------------------------------
def test_rapl_power_from_energy_deltas_including_a_wrap(tmp_path: Path) -> None:
    zone = make_rapl_zone(tmp_path, energy_uj=5_000_000, max_uj=10_000_000)
    meter = RaplMeter(zone, prime_s=0.0, clock=ScriptedClock(0.0, 0.5, 1.5, 3.5))
    assert meter.read_power_w() == 0.0  # priming: two reads (t=0, t=0.5) of an unchanged counter
    (zone / "energy_uj").write_text("8000000\n")
    assert meter.read_power_w() == pytest.approx(3.0)  # 3 J over 1 s
    (zone / "energy_uj").write_text("1000000\n")  # wrapped: 2 J to the top, then 1 J
    assert meter.read_power_w() == pytest.approx(1.5)  # 3 J over 2 s
    assert "package-0" in meter.describe()


def test_rapl_counter_going_backwards_without_a_range_is_a_meter_error(tmp_path: Path) -> None:
    zone = make_rapl_zone(tmp_path, energy_uj=5_000_000)
    (zone / "max_energy_range_uj").unlink()
    meter = RaplMeter(zone, prime_s=0.0, clock=ScriptedClock(0.0, 0.5, 1.5))
    meter.read_power_w()
    (zone / "energy_uj").write_text("1000\n")
    with pytest.raises(MeterError, match="max_energy_range_uj"):
        meter.read_power_w()


def test_rapl_spec_finds_the_package_zone_and_rejects_a_missing_one(tmp_path: Path) -> None:
    make_rapl_zone(tmp_path, energy_uj=1_000)
    meter = parse_meter_spec("rapl", root=tmp_path)
    assert isinstance(meter, RaplMeter)
    with pytest.raises(PowerSpecError, match="energy_uj") as info:
        parse_meter_spec("rapl", root=tmp_path / "elsewhere")
    assert "\n" not in str(info.value)


RAPL_CHILD = """
import sys
from pathlib import Path
from pytest_edgeperf.power import MeterError, PowerSpecError, parse_meter_spec
from pytest_edgeperf.power.rapl import RaplMeter
root = Path(sys.argv[1])
try:
    RaplMeter(root / "sys/class/powercap/intel-rapl:0").read_power_w()
except MeterError as exc:
    print("METER:", exc)
try:
    parse_meter_spec("rapl", root=root)
except PowerSpecError as exc:
    print("SPEC:", exc)
"""


def test_rapl_permission_denied_says_it_needs_root(tmp_path: Path) -> None:
    zone = make_rapl_zone(tmp_path, energy_uj=1_000)
    (zone / "energy_uj").chmod(0o000)
    argv = [sys.executable, "-c", RAPL_CHILD, str(tmp_path)]
    if os.geteuid() == 0:  # root reads mode-000 files: drop the DAC override capabilities for the child
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make energy_uj unreadable")
        caps = "-dac_override,-dac_read_search"
        argv = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *argv]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith("METER:") and "needs root since kernel 5.10" in lines[0]
    assert lines[1].startswith("SPEC:") and "'rapl'" in lines[1]
    assert "needs root since kernel 5.10" in lines[1]


# --- SCPI over pyvisa-sim ------------------------------------------------------------------------------
def test_scpi_meter_reads_the_simulated_analyzer() -> None:
    meter = parse_meter_spec(f"scpi:{SIM_RESOURCE};file={SIM_YAML}", root=Path("/"))
    assert meter is not None
    try:
        assert meter.read_power_w() == pytest.approx(2.5)
        assert "MEAS:POW? (@1)" in meter.describe()
    finally:
        meter.close()
    meter.close()  # closing twice is harmless
    with pytest.raises(MeterError, match="closed"):
        meter.read_power_w()


def test_scpi_query_the_instrument_rejects_is_a_spec_error() -> None:
    with pytest.raises(PowerSpecError, match="not a power reading") as info:
        parse_meter_spec(f"scpi:{SIM_RESOURCE};file={SIM_YAML};query=MEAS:POW? (@2)", root=Path("/"))
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore:read string doesn't end with termination characters")
def test_scpi_unknown_resource_is_a_spec_error() -> None:
    with pytest.raises(PowerSpecError, match="NOPE") as info:
        parse_meter_spec(f"scpi:USB0::0x1::0x2::NOPE::INSTR;backend=@sim;file={SIM_YAML}", root=Path("/"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("reply", "power_w"), [("+2.500000E+00\n", 2.5), ("1.25,0.75", 2.0)])
def test_parse_scpi_power_sums_channels(reply: str, power_w: float) -> None:
    assert parse_scpi_power(reply) == pytest.approx(power_w)


@pytest.mark.parametrize("reply", ['-113,"Undefined header"', "9.91E+37", ""])
def test_parse_scpi_power_rejects_errors_and_scpi_nan(reply: str) -> None:
    with pytest.raises(MeterError):
        parse_scpi_power(reply)


# --- CSV logs ------------------------------------------------------------------------------------------
def test_csv_spec_with_named_columns_and_volts_amps(tmp_path: Path) -> None:
    log = tmp_path / "usb_meter.csv"
    log.write_text("# UM34C export\nepoch_ms;V;A\n1700000000000;5.0;0.5\n1700000001000;5.0;0.6\n")
    meter = parse_meter_spec(f"csv:{log};time=epoch_ms;volts=V;amps=A", root=tmp_path)
    assert isinstance(meter, CsvLogMeter)
    assert meter.read_rows() == [(1_700_000_000.0, pytest.approx(2.5)), (1_700_000_001.0, pytest.approx(3.0))]


def test_csv_headerless_log_is_time_then_power(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("1700000000.5,2.0\n1700000001.5,4.0\n1700000002.5,3.")  # half-written last row
    meter = parse_meter_spec(f"csv:{log}", root=tmp_path)
    assert isinstance(meter, CsvLogMeter)
    assert meter.read_rows() == [(1_700_000_000.5, 2.0), (1_700_000_001.5, 4.0), (1_700_000_002.5, 3.0)]
    assert meter.read_power_w() == 3.0


def test_csv_unknown_column_is_a_spec_error(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("timestamp,power_w\n1700000000,2.0\n")
    with pytest.raises(PowerSpecError, match="watts_x") as info:
        parse_meter_spec(f"csv:{log};power=watts_x", root=tmp_path)
    assert "\n" not in str(info.value)


# --- spec grammar --------------------------------------------------------------------------------------
def test_none_means_no_meter(tmp_path: Path) -> None:
    assert parse_meter_spec("none", root=tmp_path) is None
    assert parse_meter_spec("  NONE ", root=tmp_path) is None


@pytest.mark.parametrize("spec", [
    "", "bogus", "none:x", "hwmon:relative/path", "pmic:a=x", "pmic:c=1", "pmic:a=0", "pmic:a=1,a=2",
    "rapl:relative/zone", "scpi:", "scpi:USB0::1::INSTR;colour=red", "scpi:USB0::1::INSTR;timeout_ms=-5",
    "csv:", "csv:x.csv;volts=V", "csv:x.csv;power=P;volts=V;amps=A", "csv:x.csv;power",
])
def test_bad_specs_are_one_line_errors_listing_the_valid_forms(spec: str, tmp_path: Path) -> None:
    with pytest.raises(PowerSpecError) as info:
        parse_meter_spec(spec, root=tmp_path, runner=CommandRunner())
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert repr(spec) in message
    assert "valid forms:" in message and "hwmon:NAME" in message and "scpi:RESOURCE" in message


def test_missing_csv_file_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(PowerSpecError, match="does not exist") as info:
        parse_meter_spec(f"csv:{tmp_path}/nope.csv", root=tmp_path)
    assert "nope.csv" in str(info.value) and "\n" not in str(info.value)
