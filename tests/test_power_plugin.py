"""Power through the real plugin (issue 6 acceptance): fake meters, a pytester run, and the JSON a user gets.

Each test builds a fake device (an INA219 hwmon tree, a Pi 5 with a fake ``vcgencmd pmic_read_adc``, a
pyvisa-sim analyzer, a CSV log written while the test runs), runs a tiny ONNX model through the plugin and
checks the power figures against values computed by hand from the JSON's own window and sample count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fakedevice import FakeDevice

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data" / "power"
INA219_W = 2.5

# A tiny convolution for timing, and a tiny "colour classifier" (the channel means as logits) for accuracy.
MODEL_BUILDER = '''
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def build(path):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    _save(helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], [w]), path)


def build_classifier(path):
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    _save(helper.make_graph(nodes, "colours", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]), path)
'''

# Two worker processes: still several windows to add up, each 0.5 s long, so a 10 Hz meter behind a slow fake
# vcgencmd on a busy CI machine still lands samples inside every window.
FAST = ["-p", "no:cacheprovider", "--edgeperf-min-samples=20", "--edgeperf-min-time=1", "--edgeperf-max-time=10",
        "--edgeperf-no-progress", "--edgeperf-processes=2"]
NO_IDLE = "--edgeperf-idle-time=0"
IDLE = "--edgeperf-idle-time=0.3"

PLAIN_TEST = """
import pytest

@pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
def test_model(edgeperf):
    r = edgeperf.measure()
    assert r.valid_count >= 20
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(modelbuilder=MODEL_BUILDER)
    pytester.makeconftest("""
        import modelbuilder
        modelbuilder.build("tiny.onnx")
        modelbuilder.build_classifier("colours.onnx")
    """)
    return pytester


def ina219_host(base: Path, power_uw: int = round(INA219_W * 1e6)) -> FakeDevice:
    """This machine as the plugin sees it (no board, no sensors) plus one INA219 at ``power_uw``."""
    dev = FakeDevice.host_without_sensors(base)
    dev.write("sys/class/hwmon/hwmon0/name", "ina219\n")
    dev.write("sys/class/hwmon/hwmon0/power1_input", f"{power_uw}\n")
    return dev


def run_json(project: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[dict[str, Any]]]:
    out = project.path / "results.json"
    result = project.runpytest(*FAST, f"--edgeperf-json={out}", *args)
    assert out.exists(), result.stdout.str()
    return result, json.loads(out.read_text())["results"]


def window(r: dict[str, Any]) -> tuple[float, int]:
    """(timed seconds, timed inferences) straight from the result's raw fields: with several worker processes,
    the sum of their windows (the loading between them is not inference time)."""
    spans = r["windows"] or [[r["window_start_s"], r["window_end_s"]]]
    return sum(end - start for start, end in spans), len(r["samples"]["latency_s"])


def colour_dataset(root: Path) -> float:
    """Solid-colour PNGs in class folders, one of them mislabelled; returns the top-1 a perfect model gets."""
    import cv2
    import numpy as np

    bgr = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}
    images = {"red": ["red", "red", "green"], "green": ["green"], "blue": ["blue"]}  # a green image filed as red
    (root / "labels.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "labels.txt").write_text("red\ngreen\nblue\n")  # class index = output channel (RGB)
    for label, colours in images.items():
        (root / label).mkdir()
        for i, colour in enumerate(colours):
            cv2.imwrite(str(root / label / f"{i}.png"), np.full((12, 12, 3), bgr[colour], dtype=np.uint8))
    return 100.0 * 4 / 5


# ---- 1. a fake INA219 at a constant 2.500 W: energy per inference and FoM by hand --------------------------------


def test_constant_ina219_gives_hand_computed_energy_and_fom(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = ina219_host(tmp_path / "dev")
    expected_top1 = colour_dataset(project.path / "colours")
    project.makepyfile(test_energy="""
        import pytest

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_plain(edgeperf):
            edgeperf.measure()

        @pytest.mark.edgeperf(model="colours.onnx", frameworks="onnxruntime")
        def test_classifier(edgeperf):
            r = edgeperf.measure(accuracy={"dataset": "colours",
                                           "preprocess": {"size": [8, 8], "channel_order": "RGB", "layout": "NCHW"}})
            assert "fom_top1_per_j" in r.metric_values()
    """)
    result, results = run_json(project, *dev.plugin_args(), "--edgeperf-power-meter=hwmon", IDLE)
    result.assert_outcomes(passed=2)
    assert {r["device"] for r in results} == {"host"}
    for r in results:
        power = r["power"]
        assert "unavailable" not in power, power
        window_s, inferences = window(r)
        assert inferences >= 20 and window_s >= 1.0
        assert power["meter"].startswith("ina219 via hwmon")
        assert power["power_mean_w"] == pytest.approx(INA219_W, rel=0.01)
        assert power["power_min_w"] == power["power_max_w"] == pytest.approx(INA219_W, rel=1e-9)
        assert power["idle_w"] == pytest.approx(INA219_W, rel=0.01)
        assert power["inferences"] == inferences
        assert power["energy_j"] == pytest.approx(INA219_W * window_s, rel=0.01)
        assert power["energy_per_inference_j"] == pytest.approx(INA219_W * window_s / inferences, rel=0.01)
        assert power["samples"] >= 2
        assert r["summary"]["energy_per_inference_j"] == power["energy_per_inference_j"]
        assert r["summary"]["power_mean_w"] == power["power_mean_w"]
        # the power readings join the sensor timeline
        assert any(p["power_w"] == pytest.approx(INA219_W) for p in r["timeline"])

    plain = next(r for r in results if "test_plain[" in r["test_id"])
    assert not any(k.startswith("fom_") for k in plain["power"])  # no accuracy, no FoM
    classifier = next(r for r in results if "test_classifier[" in r["test_id"])
    top1 = classifier["accuracy"]["top1_pct"]
    assert top1 == pytest.approx(expected_top1)
    window_s, inferences = window(classifier)
    fom_by_hand = (top1 / 100.0) * inferences / (INA219_W * window_s)
    assert classifier["power"]["fom_top1_per_j"] == pytest.approx(fom_by_hand, rel=0.01)
    assert classifier["summary"]["fom_top1_per_j"] == classifier["power"]["fom_top1_per_j"]
    assert classifier["power"]["fom_top5_per_j"] == pytest.approx(inferences / (INA219_W * window_s), rel=0.01)
    # ... and the terminal table shows them
    result.stdout.fnmatch_lines(["*test_classifier*onnxruntime*energy_per_inference_j*",
                                 "*test_classifier*onnxruntime*fom_top1_per_j*"])
    row = next(ln for ln in result.stdout.lines if "test_classifier" in ln and "fom_top1_per_j" in ln)
    assert float(row.split()[-1]) == pytest.approx(classifier["power"]["fom_top1_per_j"], rel=1e-3)


# ---- 2. the meter vanishes half-way through the timed window ------------------------------------------------------


def test_meter_vanishing_midway_leaves_the_test_passing_without_power(project: pytest.Pytester,
                                                                     tmp_path: Path) -> None:
    dev = ina219_host(tmp_path / "dev")
    hwmon = dev.root / "sys/class/hwmon/hwmon0"
    unplugged = tmp_path / "unplugged_at"  # perf_counter when the sensor was removed
    # The test body waits for the power sampler's thread (the timed window is open), lets it take a few
    # readings, then removes the sensor as an unbound I2C device would.
    project.makepyfile(test_vanish=f"""
        import shutil
        import threading
        import time

        import pytest

        def unplug_when_sampling(stop):
            while not stop.is_set():
                if any(t.name == "edgeperf-power" for t in threading.enumerate()):
                    time.sleep(1.5)  # past the first worker's load and warm-up, well before the last window ends
                    shutil.rmtree({str(hwmon)!r})
                    with open({str(unplugged)!r}, "w") as fh:
                        fh.write(repr(time.perf_counter()))
                    return
                time.sleep(0.01)

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            stop = threading.Event()
            unplug = threading.Thread(target=unplug_when_sampling, args=(stop,), daemon=True)
            unplug.start()
            try:
                r = edgeperf.measure(min_time_s=4.0)
            finally:
                stop.set()
                unplug.join()
            assert r.valid_count >= 20
    """)
    result, results = run_json(project, *dev.plugin_args(), "--edgeperf-power-meter=hwmon", NO_IDLE)
    result.assert_outcomes(passed=1)
    assert not hwmon.exists()  # the unplug really happened
    (r,) = results
    assert r["status"] == "ok"
    reason = r["power"]["unavailable"]
    assert "power meter failed during the run" in reason and "power1_input" in reason and "missing" in reason
    assert not any(k in r["power"] for k in ("power_mean_w", "energy_j", "energy_per_inference_j"))
    assert not any(k in r["summary"] for k in ("power_mean_w", "energy_per_inference_j"))
    assert f"power unavailable: {reason}" in r["notes"]
    # it vanished inside the timed window; the readings taken before are kept on the timeline, none after
    unplug_s = float(unplugged.read_text())
    assert r["window_start_s"] < unplug_s < r["window_end_s"]
    powered = [p["t_s"] for p in r["timeline"] if p["power_w"] is not None]
    assert powered and min(powered) < unplug_s
    assert max(powered) < unplug_s + 0.5
    assert any(p["power_w"] is None and p["t_s"] > unplug_s + 0.5 for p in r["timeline"])
    # the rest of the result is intact
    window_s, inferences = window(r)
    assert inferences >= 20 and window_s >= 2.0
    assert r["summary"]["fps"] > 0 and r["summary"]["latency_p50_ms"] > 0
    result.stdout.fnmatch_lines(["*note (test_model*): power unavailable: power meter failed during the run:*"])
    assert "Traceback" not in result.stdout.str()


# ---- 3. a SCPI analyzer (pyvisa-sim) end to end ------------------------------------------------------------------


def test_scpi_analyzer_end_to_end(project: pytest.Pytester) -> None:
    project.makepyfile(test_scpi=PLAIN_TEST)
    resource = "USB0::0x2A8D::0x0F02::MY00000001::INSTR"
    spec = f"scpi:{resource};file={DATA / 'analyzer.yaml'}"
    result, (r,) = run_json(project, f"--edgeperf-power-meter={spec}", IDLE)
    result.assert_outcomes(passed=1)
    power = r["power"]
    assert resource in power["meter"] and "MEAS:POW? (@1)" in power["meter"]
    assert power["power_mean_w"] == pytest.approx(2.5, rel=1e-6)  # the simulated channel's 2.5 W
    assert power["idle_w"] == pytest.approx(2.5, rel=1e-6)
    window_s, inferences = window(r)
    assert power["energy_per_inference_j"] == pytest.approx(2.5 * window_s / inferences, rel=0.01)
    result.stdout.fnmatch_lines(["*test_model*onnxruntime*power_mean_w*2.5*"])


# ---- 4. misconfigured meters are one-line usage errors -------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ("bogus", "--edgeperf-power-meter: power meter spec 'bogus': unknown meter kind 'bogus'; valid forms: none,"),
    ("hwmon", "--edgeperf-power-meter: power meter spec 'hwmon': found no ina2xx/ina219/ina226/ina260 hwmon under"),
    ("scpi:USB0::1::2::INSTR;colour=blue", "power meter spec 'scpi:USB0::1::2::INSTR;colour=blue': unknown option"),
    ("csv:nothere.csv", "csv power log nothere.csv does not exist"),
])
def test_bad_power_meter_spec_is_a_one_line_usage_error(pytester: pytest.Pytester, tmp_path: Path, spec: str,
                                                        message: str) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path / "dev")  # no hwmon at all
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = pytester.runpytest(*dev.plugin_args(), f"--edgeperf-power-meter={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.stderr.lines if ln.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.lines
    assert message in errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# ---- 5. a fake Pi 5: the device default meter (PMIC) is used without any option -----------------------------------

PMIC_ADC = """\
     3V7_WL_SW_A current(0)=0.00390372A
     3V3_SYS_A current(1)=0.05660400A
     1V8_SYS_A current(2)=0.19519800A
     DDR_VDD2_A current(4)=0.02732400A
     VDD_CORE_A current(7)=2.04120000A
     3V7_WL_SW_V volt(8)=3.74414100V
     3V3_SYS_V volt(9)=3.31379100V
     1V8_SYS_V volt(10)=1.79890000V
     DDR_VDD2_V volt(12)=1.10500000V
     VDD_CORE_V volt(15)=0.88036170V
     EXT5V_V volt(24)=5.15096000V
     BATT_V volt(25)=0.00000000V
"""
PMIC_W = (0.00390372 * 3.74414100 + 0.05660400 * 3.31379100 + 0.19519800 * 1.79890000
          + 0.02732400 * 1.10500000 + 2.04120000 * 0.88036170)  # EXT5V and BATT have no current: not summed


def test_pi5_uses_its_default_pmic_meter(project: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice(tmp_path / "dev", model="Raspberry Pi 5 Model B Rev 1.0",
                     schedule=[{"freq_ghz": 2.4, "temp_c": 50.0, "throttled": 0}])
    dev.set_command_output("pmic_read_adc", PMIC_ADC)
    project.makepyfile(test_pi5=PLAIN_TEST)
    result, (r,) = run_json(project, *dev.plugin_args(), "--edgeperf-no-guard", IDLE)
    result.assert_outcomes(passed=1)
    assert r["device"] == "pi5"
    power = r["power"]
    assert "Raspberry Pi 5 PMIC" in power["meter"]
    assert power["power_mean_w"] == pytest.approx(PMIC_W, rel=1e-6)
    assert power["idle_w"] == pytest.approx(PMIC_W, rel=1e-6)
    window_s, inferences = window(r)
    assert power["energy_per_inference_j"] == pytest.approx(PMIC_W * window_s / inferences, rel=0.01)
    result.stdout.fnmatch_lines(["*edgeperf: pi5*"])


def test_pi5_without_pmic_output_reports_power_unavailable(project: pytest.Pytester, tmp_path: Path) -> None:
    """The default meter not answering is no error: the run goes on and says power was not measured."""
    dev = FakeDevice(tmp_path / "dev", model="Raspberry Pi 5 Model B Rev 1.0",
                     schedule=[{"freq_ghz": 2.4, "temp_c": 50.0, "throttled": 0}])
    project.makepyfile(test_pi5=PLAIN_TEST)
    result, (r,) = run_json(project, *dev.plugin_args(), "--edgeperf-no-guard", NO_IDLE, "-v")
    result.assert_outcomes(passed=1)
    assert r["power"] == {}
    assert any("the pi5 default meter 'pmic' was not found" in n for n in r["notes"])
    result.stdout.fnmatch_lines(["not measured on this device:",
                                 "  power: the pi5 default meter 'pmic' was not found*"])


# ---- 6. an external logger's CSV, aligned by wall-clock time -----------------------------------------------------


def test_csv_log_written_during_the_run_is_aligned_by_timestamps(project: pytest.Pytester, tmp_path: Path) -> None:
    log = tmp_path / "usbmeter.csv"
    log.write_text("timestamp,watts\n")  # the logger is running before pytest starts
    t0_unix = time.time()
    base_w, slope_w_per_s = 2.0, 0.25  # a ramp: a misaligned window would give a different mean
    project.makepyfile(test_csv=f"""
        import threading
        import time

        import pytest

        def logger(stop):
            with open({str(log)!r}, "a") as fh:
                while not stop.is_set():
                    t = time.time()
                    fh.write("%.6f,%.6f\\n" % (t, {base_w!r} + {slope_w_per_s!r} * (t - {t0_unix!r})))
                    fh.flush()
                    stop.wait(0.02)

        @pytest.mark.edgeperf(model="tiny.onnx", frameworks="onnxruntime")
        def test_model(edgeperf):
            stop = threading.Event()
            thread = threading.Thread(target=logger, args=(stop,), daemon=True)
            thread.start()
            try:
                edgeperf.measure()
            finally:
                stop.set()
                thread.join()
    """)
    result, (r,) = run_json(project, f"--edgeperf-power-meter=csv:{log}", NO_IDLE)
    result.assert_outcomes(passed=1)
    power = r["power"]
    assert "unavailable" not in power, power
    assert "usbmeter.csv" in power["meter"]
    window_s, inferences = window(r)
    # each worker's window maps to wall-clock time by the same offset; the mean of a ramp over a window is its
    # value mid-window, and over several windows their time-weighted mean
    to_unix = r["window_start_unix_s"] - r["window_start_s"]
    spans = r["windows"] or [[r["window_start_s"], r["window_end_s"]]]
    ramp = lambda t_perf: base_w + slope_w_per_s * (t_perf + to_unix - t0_unix)  # noqa: E731
    mean_by_hand = sum(ramp((a + b) / 2) * (b - a) for a, b in spans) / window_s
    assert power["power_mean_w"] == pytest.approx(mean_by_hand, rel=0.01)
    # min and max are the first and last logged rows inside the windows (a row every ~20 ms)
    assert power["power_min_w"] == pytest.approx(ramp(spans[0][0]), abs=0.05)
    assert power["power_max_w"] == pytest.approx(ramp(spans[-1][1]), abs=0.05)
    assert power["energy_per_inference_j"] == pytest.approx(mean_by_hand * window_s / inferences, rel=0.01)
    assert power["samples"] >= 10  # the log's own rows inside the >= 1 s window
