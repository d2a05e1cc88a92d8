"""Owns the device profiles (clocks, timing floor, throttle temperature, RAM, power meter) and detection.

A baseline is only meaningful on the device it was measured on, so the profile name is part of every result
and a requested profile that does not match the board is a usage error (``resolve_device``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_edgeperf.errors import EdgeperfError

#: the meter kinds the built-in profiles use; a profile added through the hook may name any kind the session knows
POWER_METERS = ("none", "hwmon", "pmic", "rapl")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


class UnknownDeviceError(EdgeperfError, ValueError):
    """A device name that no profile has (from ``--edgeperf-device``, a marker or the ini)."""


class DeviceMismatchError(EdgeperfError, ValueError):
    """The requested profile is not the board we run on: comparing its baselines here would be meaningless."""


class InvalidProfileError(EdgeperfError, ValueError):
    """A profile added through ``pytest_edgeperf_add_device_profiles`` is unusable; the message names the hook."""


@dataclass(frozen=True)
class DeviceProfile:
    """What we know about one board model; ``floor_freq_ghz`` is the clock below which samples are invalid."""

    name: str
    description: str
    model_prefixes: tuple[str, ...]  # /proc/device-tree/model starts with one of these
    max_freq_ghz: float | None
    min_freq_ghz: float | None
    floor_freq_ghz: float | None  # None: no clock gate (host)
    throttle_temp_c: float | None  # where the firmware starts lowering the clock
    ram_mb: int | None  # nominal (the common variant); the real figure comes from /proc/meminfo
    default_power_meter: str  # a --edgeperf-power-meter spec: POWER_METERS here, or a kind added through the hook

    def __post_init__(self) -> None:
        if not isinstance(self.default_power_meter, str) or not self.default_power_meter.partition(":")[0].strip():
            raise ValueError(f"profile {self.name}: default power meter {self.default_power_meter!r} is not a spec")

    @property
    def default_meter_kind(self) -> str:
        """The kind part of ``default_power_meter`` (``pmic`` of ``pmic:a=1.1``), lowercase."""
        return self.default_power_meter.partition(":")[0].strip().lower()


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(
            name="pi3",
            description="Raspberry Pi 3 Model B (BCM2837, 4x Cortex-A53)",
            model_prefixes=("Raspberry Pi 3 Model B",),  # "... Plus" is longer and wins for the 3B+
            max_freq_ghz=1.2,
            min_freq_ghz=0.6,
            floor_freq_ghz=1.1,  # seed 001: "higher than 1100 MHz"
            throttle_temp_c=80.0,
            ram_mb=1024,
            default_power_meter="none",
        ),
        DeviceProfile(
            name="pi3b+",
            description="Raspberry Pi 3 Model B+ (BCM2837B0, 4x Cortex-A53; 1.2 GHz above the 60 C "
            "soft limit)",
            model_prefixes=("Raspberry Pi 3 Model B Plus",),
            max_freq_ghz=1.4,
            min_freq_ghz=0.6,
            # Floor 1.3 GHz, between the two clock regimes (1.4 GHz below the 60 C soft limit, 1.2 GHz above):
            # a floor of 1.1 would silently mix samples taken at 1.4 and 1.2 GHz (~15 % apart) whenever the
            # soft-limit bit cannot be read (no vcgencmd), so baselines would drift with room temperature.
            # Passively cooled boards that never stay under 60 C can opt into 1.1 with --edgeperf-min-freq.
            floor_freq_ghz=1.3,
            throttle_temp_c=60.0,
            ram_mb=1024,
            default_power_meter="none",
        ),
        DeviceProfile(
            name="pi4",
            description="Raspberry Pi 4 / 400 / CM4 (BCM2711, 4x A72; 1.5 GHz, 1.8 on R1.4+ with boost)",
            model_prefixes=("Raspberry Pi 4 Model B", "Raspberry Pi 400", "Raspberry Pi Compute Module 4"),
            max_freq_ghz=1.8,  # 1.5 GHz on boards before R1.4 / without arm_boost
            min_freq_ghz=0.6,
            floor_freq_ghz=1.4,  # below the lowest full clock (1.5) so both variants pass at full speed
            throttle_temp_c=80.0,
            ram_mb=4096,
            default_power_meter="none",
        ),
        DeviceProfile(
            name="pi5",
            description="Raspberry Pi 5 / 500 / CM5 (BCM2712, 4x Cortex-A76)",
            model_prefixes=("Raspberry Pi 5", "Raspberry Pi 500", "Raspberry Pi Compute Module 5"),
            max_freq_ghz=2.4,
            min_freq_ghz=1.5,
            floor_freq_ghz=2.3,
            throttle_temp_c=80.0,
            ram_mb=8192,
            default_power_meter="pmic",  # vcgencmd pmic_read_adc (misses 5 V loads; see REFERENCE.md)
        ),
        DeviceProfile(
            name="pi-zero-2w",
            description="Raspberry Pi Zero 2 W (RP3A0, 4x Cortex-A53)",
            model_prefixes=("Raspberry Pi Zero 2 W",),
            max_freq_ghz=1.0,
            min_freq_ghz=0.6,
            floor_freq_ghz=0.9,
            throttle_temp_c=80.0,
            ram_mb=512,
            default_power_meter="none",
        ),
        DeviceProfile(
            name="jetson-nano",
            description="NVIDIA Jetson Nano (Tegra X1, 4x Cortex-A57); on-board INA3221 rail monitor",
            model_prefixes=("NVIDIA Jetson Nano",),
            max_freq_ghz=1.479,
            min_freq_ghz=0.102,
            floor_freq_ghz=1.4,
            throttle_temp_c=97.0,  # CPU software-throttle trip point of L4T 32.x (unverified on hardware)
            ram_mb=4096,
            default_power_meter="hwmon",
        ),
        DeviceProfile(
            name="host",
            description="any other Linux machine: no clock gate, readings where the kernel offers them",
            model_prefixes=(),
            max_freq_ghz=None,
            min_freq_ghz=None,
            floor_freq_ghz=None,
            throttle_temp_c=None,
            ram_mb=None,
            default_power_meter="none",  # RAPL is root-only and package-only: opt in with the power option
        ),
    )
}

HOST = PROFILES["host"]


def read_model_string(root: Path | str = Path("/")) -> str | None:
    """The board's model string from ``<root>/proc/device-tree/model`` (NUL stripped), or None."""
    root = Path(root)
    for rel in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        try:
            raw = (root / rel).read_bytes()
        except OSError:
            continue
        text = raw.split(b"\0", 1)[0].decode(errors="replace").strip()
        if text:
            return text
    return None


HOOK = "pytest_edgeperf_add_device_profiles"


def with_added_profiles(answers: Iterable[Iterable[DeviceProfile] | None]) -> dict[str, DeviceProfile]:
    """The built-in profiles plus those the hook's implementations returned; a clash or a non-profile is an error."""
    out = dict(PROFILES)
    for answer in answers:
        if answer is None:
            continue
        if isinstance(answer, DeviceProfile) or not isinstance(answer, Iterable):
            raise InvalidProfileError(f"{HOOK} must return a list of DeviceProfile, not {answer!r}")
        for profile in answer:
            if not isinstance(profile, DeviceProfile):
                raise InvalidProfileError(f"{HOOK}: {profile!r} is not a pytest_edgeperf.device.DeviceProfile")
            if not _NAME.match(profile.name) or profile.name == "auto":
                raise InvalidProfileError(f"{HOOK}: profile name {profile.name!r} is not a lowercase device name "
                                          "(letters, digits, '_', '.', '+', '-'; not 'auto')")
            if profile.name in PROFILES:
                raise InvalidProfileError(f"{HOOK}: {profile.name!r} is a built-in profile's name")
            if profile.name in out and out[profile.name] != profile:
                raise InvalidProfileError(f"{HOOK}: two different profiles are called {profile.name!r}")
            out[profile.name] = profile
    return out


def detect_profile(model_string: str | None, profiles: Mapping[str, DeviceProfile] | None = None) -> DeviceProfile:
    """The profile whose longest model prefix matches (so "Pi 3 Model B Plus" is pi3b+), else ``host``."""
    if not model_string:
        return HOST
    model = model_string.split("\0", 1)[0].strip()
    best: DeviceProfile = HOST
    best_len = 0
    for profile in (profiles or PROFILES).values():
        for prefix in profile.model_prefixes:
            if model.startswith(prefix) and len(prefix) > best_len:
                best, best_len = profile, len(prefix)
    return best


def known_device_names(profiles: Mapping[str, DeviceProfile] | None = None) -> list[str]:
    return sorted(profiles or PROFILES)


def get_profile(name: str, profiles: Mapping[str, DeviceProfile] | None = None) -> DeviceProfile:
    """The profile called ``name`` (case-insensitive); an unknown name is a one-line usage error."""
    key = name.strip().lower()
    profiles = profiles or PROFILES
    if key in profiles:
        return profiles[key]
    raise UnknownDeviceError(
        f"--edgeperf-device: unknown device {name!r}; known devices: auto, {', '.join(known_device_names(profiles))}"
    )


def resolve_device(
    requested: str,
    model_string: str | None,
    *,
    allow_mismatch: bool = False,
    override_option: str = "--edgeperf-allow-device-mismatch",
    profiles: Mapping[str, DeviceProfile] | None = None,
) -> DeviceProfile:
    """The profile to use for ``--edgeperf-device=requested`` on the board described by ``model_string``.

    ``auto`` detects the board. Naming a profile other than the detected one is a usage error (its baselines
    would be compared with another device's) unless ``allow_mismatch`` is set by the user. ``profiles``: the
    built-in ones plus those added through the hook (``with_added_profiles``); default the built-in ones.
    """
    detected = detect_profile(model_string, profiles)
    if requested.strip().lower() in ("", "auto"):
        return detected
    profile = get_profile(requested, profiles)
    if profile.name != detected.name and not allow_mismatch:
        seen = repr(model_string) if model_string else "no /proc/device-tree/model"
        raise DeviceMismatchError(
            f"--edgeperf-device={profile.name} but this machine is '{detected.name}' ({seen}); baselines "
            f"of one device must not be compared with another's: use --edgeperf-device=auto, or "
            f"{override_option}"
        )
    return profile
