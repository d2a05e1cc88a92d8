"""The plugin's own hooks (issue 16): a runtime, a device profile, a power meter and machine info added from outside.

A conftest.py (and, in one test, an "installed" package found through a ``pytest11`` entry point) defines a fake
runtime: the model is one weight matrix in a ``.npy`` file and an inference is ``x @ W`` in numpy. It must be
measured like a built-in runtime: its own test id, a result with its runtime and version, a baseline recorded and
then judged. A device profile and a power meter kind added the same way are used on a fake device tree.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakedevice import FakeDevice

from pytest_edgeperf.frameworks import FRAMEWORKS

pytest_plugins = ["pytester"]

COMMON = ["-p", "no:cacheprovider", "--edgeperf-no-progress", "--edgeperf-idle-time=0", "--edgeperf-threads=1",
          "--edgeperf-max-cpu-wait=100", "--edgeperf-min-time=0.3", "--edgeperf-min-samples=20",
          "--edgeperf-max-time=10", "--edgeperf-processes=2"]
UPDATE_ONCE = ("--edgeperf-update-baselines", "--edgeperf-update-passes=1")

#: the fake runtime: a complete adapter in pure numpy (what a third-party package would ship)
ADAPTER = '''
import os

import numpy as np

from pytest_edgeperf.frameworks.base import FrameworkAdapter, ModelLoadError
from pytest_edgeperf.frameworks.signature import TensorSpec


class MatmulAdapter(FrameworkAdapter):
    """A pure-numpy runtime: the model is a 2-D weight matrix in a .npy file; one inference is x @ W."""

    name = "fakert"
    extensions = (".npy",)
    modules = ("numpy",)

    def load(self, path, threads):
        try:
            self._w = np.load(path)
        except ValueError as exc:
            raise ModelLoadError(f"not a .npy array: {exc}") from None
        if self._w.ndim != 2:
            raise ModelLoadError(f"expected a 2-D weight matrix, got shape {self._w.shape}")

    def version(self):
        return os.environ.get("FAKERT_VERSION", "1.0")

    @property
    def inputs(self):
        return [TensorSpec("x", (1, self._w.shape[0]), "float32")]

    @property
    def outputs(self):
        return [TensorSpec("y", (1, self._w.shape[1]), "float32")]

    def make_runner(self, feed):
        x, w = self.as_feed(feed)["x"], self._w

        def run_once():
            return x @ w

        return run_once
'''

HOOK = '''

def pytest_edgeperf_add_runtimes():
    return [MatmulAdapter]
'''

TEST_MATMUL = '''
import pytest

@pytest.mark.edgeperf(model="matmul.npy")
def test_matmul(edgeperf):
    edgeperf.measure()
'''


def write_model(path: Path, n: int = 64) -> None:
    np.save(path, np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))


def results_of(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["results"]


# ---- 1. a runtime from a conftest.py: parametrized, measured, recorded, judged --------------------------------------


def test_runtime_from_a_conftest_is_measured_recorded_and_judged(pytester: pytest.Pytester,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeconftest(ADAPTER + HOOK)
    pytester.makepyfile(test_matmul=TEST_MATMUL)
    write_model(pytester.path / "matmul.npy")
    out = pytester.path / "results.json"

    rec = pytester.runpytest(*COMMON, *UPDATE_ONCE, f"--edgeperf-json={out}", "-v", "-rs")
    # every runtime gets its test id; the built-in ones do not load .npy files and say so
    rec.stdout.fnmatch_lines(["*test_matmul[[]fakert[]] PASSED*"])
    rec.stdout.fnmatch_lines(["*onnxruntime does not load .npy files*"])
    assert rec.ret == 0
    (result,) = results_of(out)
    assert result["test_id"].endswith("test_matmul[fakert]")
    assert result["framework"] == "fakert"
    assert result["environment"]["runtime"] == "fakert" and result["environment"]["runtime_version"] == "1.0"
    assert result["environment"]["input_shape"] == [1, 64]
    assert len(result["samples"]["latency_s"]) >= 20 and result["summary"]["fps"] > 0

    (baseline_file,) = (pytester.path / "baselines").rglob("test_matmul.json")
    entry = json.loads(baseline_file.read_text())["entries"]["test_matmul[fakert]"]
    assert entry["environment"]["runtime"] == "fakert" and entry["environment"]["runtime_version"] == "1.0"

    # the next run is judged against that baseline, and a new runtime version is flagged like a built-in's (the
    # timing verdict itself is not asserted: a microsecond matmul on a shared machine may honestly regress)
    monkeypatch.setenv("FAKERT_VERSION", "2.0")
    cmp = pytester.runpytest(*COMMON, f"--edgeperf-json={out}", "-k", "fakert")
    outcomes = cmp.parseoutcomes()
    # one fakert test runs; every built-in runtime's is deselected
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1 and outcomes["deselected"] == len(FRAMEWORKS)
    (result,) = results_of(out)
    assert result["environment"]["runtime_version"] == "2.0"
    fps = next(v for v in result["verdicts"] if v["metric"] == "fps")
    assert fps["baseline"] == entry["metrics"]["fps"] and fps["verdict"]
    assert result["overall_verdict"] not in ("", "NEW", "NO_BASELINE")
    assert any(n.startswith("runtime version changed since baseline (1.0") for n in result["notes"]), result["notes"]


def test_marker_names_the_added_runtime_and_its_aliases_stay_unknown(pytester: pytest.Pytester) -> None:
    """``frameworks="fakert"`` selects it alone; a name nobody added is the usual one-line error listing it."""
    pytester.makeconftest(ADAPTER + HOOK)
    write_model(pytester.path / "matmul.npy")
    pytester.makepyfile(test_only='''
        import pytest

        @pytest.mark.edgeperf(model="matmul.npy", frameworks="fakert")
        def test_only(edgeperf):
            edgeperf.measure()
    ''')
    only = pytester.runpytest(*COMMON, "-v")
    only.assert_outcomes(passed=1)
    only.stdout.fnmatch_lines(["*test_only[[]fakert[]] PASSED*"])

    pytester.makepyfile(test_only='''
        import pytest

        @pytest.mark.edgeperf(model="matmul.npy", frameworks="fakerrt")
        def test_only(edgeperf):
            edgeperf.measure()
    ''')
    bad = pytester.runpytest(*COMMON)
    assert bad.ret != 0
    bad.stderr.fnmatch_lines(
        ["*unknown framework 'fakerrt' (known: onnxruntime, litert, opencv, openvino, ncnn, fakert;*"])


def test_runtime_from_a_conftest_found_during_collection(pytester: pytest.Pytester) -> None:
    """A sub-folder's conftest.py is loaded while collecting, after the session started: its runtime still counts."""
    sub = pytester.mkdir("models_team")
    (sub / "conftest.py").write_text(ADAPTER + HOOK)
    (sub / "test_matmul.py").write_text(TEST_MATMUL.replace('model="matmul.npy"', 'model="models_team/matmul.npy", '
                                                                                   'frameworks="fakert"'))
    write_model(sub / "matmul.npy")
    run = pytester.runpytest(*COMMON, "-v")
    run.stdout.fnmatch_lines(["*test_matmul[[]fakert[]] PASSED*"])
    run.assert_outcomes(passed=1)


# ---- 2. a separate installed package with a pytest11 entry point --------------------------------------------------


def test_runtime_from_an_installed_package_through_its_entry_point(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """What ``pip install fakert-edgeperf`` gives: a module on sys.path and a dist-info naming it under pytest11.

    The worker process imports the adapter by its module name (``fakert_edgeperf:MatmulAdapter``), as it would
    from site-packages.
    """
    site = tmp_path / "site"
    site.mkdir()
    (site / "fakert_edgeperf.py").write_text(ADAPTER + HOOK)
    dist = site / "fakert_edgeperf-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakert-edgeperf\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nfakert = fakert_edgeperf\n")
    monkeypatch.syspath_prepend(str(site))  # this process: pytest finds the entry point
    monkeypatch.setenv("PYTHONPATH", f"{site}")  # the worker processes: as if installed
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_matmul=TEST_MATMUL)
    write_model(pytester.path / "matmul.npy")
    out = pytester.path / "results.json"

    run = pytester.runpytest(*COMMON, f"--edgeperf-json={out}", "-v")
    run.stdout.fnmatch_lines(["*test_matmul[[]fakert[]] PASSED*"])
    assert run.ret == 0
    (result,) = results_of(out)
    assert result["environment"]["runtime"] == "fakert" and result["environment"]["runtime_version"] == "1.0"


# ---- 3. a device profile, a power meter kind and machine info from a conftest -------------------------------------

BOARD = '''

from pytest_edgeperf.device.profiles import DeviceProfile
from pytest_edgeperf.power.base import MeterError, PowerMeter, check_power_w, read_number, spec_error


class FileWattMeter(PowerMeter):
    """Watts read from a text file (a fake sensor the test writes)."""

    name = "filewatt"

    def __init__(self, path):
        self.path = path

    def describe(self):
        return f"filewatt {self.path.name}"

    def read_power_w(self):
        return check_power_w(read_number(self.path, "filewatt"), "filewatt")


def filewatt(spec):
    if spec.arg:
        raise spec_error(spec.spec, "filewatt takes no argument")
    return FileWattMeter(spec.root / "sys/fake/watts")


def pytest_edgeperf_add_power_meters():
    return {"filewatt": filewatt}


def pytest_edgeperf_add_device_profiles():
    return [DeviceProfile(name="fakeboard", description="a board only this conftest knows",
                          model_prefixes=("Fake Board 9",), max_freq_ghz=None, min_freq_ghz=None,
                          floor_freq_ghz=None, throttle_temp_c=None, ram_mb=512, default_power_meter="filewatt")]


def pytest_edgeperf_update_machine_info(config, machine_info):
    machine_info["rack"] = "B3"
    machine_info["fans"] = [1, 2]
'''

FAKEBOARD_W = 3.25


def test_profile_meter_and_machine_info_from_a_conftest(pytester: pytest.Pytester, tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path / "dev", model="Fake Board 9 Rev 1.0")
    dev.write("sys/fake/watts", f"{FAKEBOARD_W}\n")
    pytester.makeconftest(ADAPTER + HOOK + BOARD)
    pytester.makepyfile(test_matmul=TEST_MATMUL)
    write_model(pytester.path / "matmul.npy")
    out = pytester.path / "results.json"

    # --edgeperf-device=auto: the added profile is detected from the model string, and its default meter is used
    run = pytester.runpytest(*COMMON, *dev.plugin_args(), f"--edgeperf-json={out}", "-k", "fakert")
    run.assert_outcomes(passed=1, deselected=len(FRAMEWORKS))
    doc = json.loads(out.read_text())
    (result,) = doc["results"]
    assert result["device"] == "fakeboard" and result["environment"]["device"] == "fakeboard"
    assert result["power"]["meter"] == "filewatt watts"
    assert result["power"]["power_mean_w"] == pytest.approx(FAKEBOARD_W)
    assert result["power"]["power_min_w"] == result["power"]["power_max_w"] == pytest.approx(FAKEBOARD_W)
    assert doc["environment"]["rack"] == "B3" and doc["environment"]["fans"] == [1, 2]
    assert result["environment"]["rack"] == "B3"

    # the added kind is also a --edgeperf-power-meter spec; its own spec errors are one line naming the option
    bad = pytester.runpytest(*COMMON, *dev.plugin_args(), "--edgeperf-power-meter=filewatt:x")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --edgeperf-power-meter: power meter spec 'filewatt:x': filewatt takes no "
                              "argument*"])
    # and --edgeperf-device names the added profile too
    named = pytester.runpytest(*COMMON, *dev.plugin_args(), "--edgeperf-device=fakeboard", "--collect-only", "-q")
    assert named.ret == 0


# ---- 4. what a plugin gets wrong is one line naming the hook --------------------------------------------------------


@pytest.mark.parametrize(("conftest", "message"), [
    (ADAPTER + "\ndef pytest_edgeperf_add_runtimes():\n    return MatmulAdapter\n",
     "*pytest_edgeperf_add_runtimes must return a list of adapter classes*"),
    (ADAPTER + "\nclass Onnx(MatmulAdapter):\n    name = 'onnxruntime'\n\n"
               "def pytest_edgeperf_add_runtimes():\n    return [Onnx]\n",
     "*pytest_edgeperf_add_runtimes: conftest.Onnx is called 'onnxruntime', a built-in runtime's name*"),
    ("from pytest_edgeperf.frameworks.base import FrameworkAdapter\n\nclass Half(FrameworkAdapter):\n"
     "    name = 'half'\n\ndef pytest_edgeperf_add_runtimes():\n    return [Half]\n",
     "*pytest_edgeperf_add_runtimes: conftest.Half does not implement inputs, load, make_runner, outputs, version*"),
    ("def pytest_edgeperf_add_power_meters():\n    return {'hwmon': print}\n",
     "*pytest_edgeperf_add_power_meters: 'hwmon' is a built-in meter kind*"),
    ("def pytest_edgeperf_add_device_profiles():\n    return ['pi9']\n",
     "*pytest_edgeperf_add_device_profiles: 'pi9' is not a pytest_edgeperf.device.DeviceProfile*"),
    ("def pytest_edgeperf_update_machine_info(machine_info):\n    machine_info['when'] = object()\n",
     "*pytest_edgeperf_update_machine_info: machine_info*'when'*is not JSON*"),
], ids=["not-a-list", "built-in-name", "abstract", "built-in-meter-kind", "not-a-profile", "not-json"])
def test_a_bad_extension_is_a_one_line_usage_error(pytester: pytest.Pytester, conftest: str, message: str) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest(*COMMON)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message.lstrip('*')}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_profile_defaulting_to_an_unknown_meter_kind_names_the_profile(pytester: pytest.Pytester,
                                                                        tmp_path: Path) -> None:
    dev = FakeDevice.host_without_sensors(tmp_path / "dev", model="Fake Board 9 Rev 1.0")
    pytester.makeconftest(textwrap.dedent('''
        from pytest_edgeperf.device.profiles import DeviceProfile

        def pytest_edgeperf_add_device_profiles():
            return [DeviceProfile(name="fakeboard", description="", model_prefixes=("Fake Board 9",),
                                  max_freq_ghz=None, min_freq_ghz=None, floor_freq_ghz=None, throttle_temp_c=None,
                                  ram_mb=None, default_power_meter="shunt:ch1")]
    '''))
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest(*COMMON, *dev.plugin_args())
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: device profile fakeboard: default power meter 'shunt:ch1' is of no known "
                                 "kind*"])
