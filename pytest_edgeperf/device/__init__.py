"""Owns device truth: board profiles and detection, sensor readers and the command runner they use, and on them the
thermal guard (``guard``), the sensor timeline while timing (``timeline``), the device lock (``lock``), the kernel's
memory figures (``memory``) and the host environment (``environment``)."""

from pytest_edgeperf.device.profiles import (
    PROFILES,
    DeviceMismatchError,
    DeviceProfile,
    InvalidProfileError,
    UnknownDeviceError,
    detect_profile,
    get_profile,
    read_model_string,
    resolve_device,
    with_added_profiles,
)
from pytest_edgeperf.device.readers import (
    UNDER_VOLTAGE_MESSAGE,
    UNDER_VOLTAGE_SINCE_BOOT_MESSAGE,
    DeviceReaders,
    ThrottleState,
)
from pytest_edgeperf.device.runner import CommandOutcome, CommandRunner

__all__ = [
    "PROFILES",
    "UNDER_VOLTAGE_MESSAGE",
    "UNDER_VOLTAGE_SINCE_BOOT_MESSAGE",
    "CommandOutcome",
    "CommandRunner",
    "DeviceMismatchError",
    "DeviceProfile",
    "DeviceReaders",
    "InvalidProfileError",
    "ThrottleState",
    "UnknownDeviceError",
    "detect_profile",
    "get_profile",
    "read_model_string",
    "resolve_device",
    "with_added_profiles",
]
