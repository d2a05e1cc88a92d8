"""The plugin's own hooks: what another package or a ``conftest.py`` can add to pytest-edgeperf.

Implement them like any pytest hook: a function of that name in a ``conftest.py``, or in a module that a
package registers as a pytest plugin (a ``pytest11`` entry point). They are declared in ``pytest_addhooks``
(``plugin.py``), as pytest-benchmark declares its own (plain functions: pytest takes every ``pytest_``
function of the module as a spec; none is ``firstresult``), and called through pytest's plugin manager, so every
implementation is asked and the answers are merged with the built-in ones. Built-in names cannot be replaced:
a clash is a one-line usage error naming the hook. The reference page is ``docs/reference/hooks.md``.

When they are asked: the device profiles, power meters and machine info once, when the session starts (from
plugins and the conftest files pytest loads at start-up: the rootdir's and those of the directories given on
the command line); the runtimes whenever the plugin looks a runtime up, so a ``conftest.py`` found during
collection adds its runtime to the tests beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from pytest_edgeperf.device.profiles import DeviceProfile
    from pytest_edgeperf.frameworks.base import FrameworkAdapter
    from pytest_edgeperf.power.base import PowerMeter
    from pytest_edgeperf.power.factory import MeterSpec


def pytest_edgeperf_add_runtimes(config: pytest.Config) -> list[type[FrameworkAdapter]]:
    """Return runtime adapter classes to measure besides the built-in onnxruntime, litert and opencv.

    Each class subclasses :class:`pytest_edgeperf.frameworks.base.FrameworkAdapter`, sets a lowercase ``name``
    (the test id: ``test_x[NAME]``), the model file ``extensions`` it loads and the ``modules`` whose presence
    means it is installed, and is defined at the top level of its module: the worker process that runs the
    model imports it again by ``module:QualName`` (a class in a ``conftest.py`` by that file's path).
    """


def pytest_edgeperf_add_device_profiles(config: pytest.Config) -> list[DeviceProfile]:
    """Return :class:`pytest_edgeperf.device.profiles.DeviceProfile` objects for boards the plugin does not know.

    A profile whose ``model_prefixes`` match ``/proc/device-tree/model`` is detected like a built-in one;
    ``--edgeperf-device=NAME`` selects it by name. Its ``default_power_meter`` may name a meter kind added
    through :func:`pytest_edgeperf_add_power_meters`.
    """


def pytest_edgeperf_add_power_meters(
    config: pytest.Config,
) -> dict[str, Callable[[MeterSpec], PowerMeter | None]]:
    """Return ``{kind: factory}``: ``--edgeperf-power-meter=KIND[:ARG]`` calls ``factory(spec)``.

    ``spec`` is a :class:`pytest_edgeperf.power.factory.MeterSpec` (the spec as written, the text after
    ``KIND:``, the device root and the command runner). The factory returns a
    :class:`pytest_edgeperf.power.base.PowerMeter` (or None for "no meter") and raises ``PowerSpecError``
    (``pytest_edgeperf.power.base.spec_error`` / ``missing_error``) for a spec it cannot serve. The plugin
    then reads the meter once, so a device that does not answer is a usage error before anything is timed.
    """


def pytest_edgeperf_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Add keys to ``machine_info`` (change it in place), like pytest-benchmark's hook of the same purpose.

    ``machine_info`` is the host environment recorded once per session: the JSON file's ``environment`` and
    every result's (and so every baseline's) ``environment`` carry it. Values must be JSON (str, number, bool,
    None, lists and objects of them). The verdict never compares keys it does not know; changing one it
    knows (``hostname``, ``cpu``) changes which host's baselines a ``host`` run is compared with.
    """
