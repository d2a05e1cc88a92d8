"""Host identity (device/environment.py) from fake /proc trees: the CPU's model name, never a bare number (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_edgeperf.device.environment import cpu_identity, host_environment

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 2
model name\t: AMD EPYC 7B13
stepping\t: 1
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 2
model name\t: AMD EPYC 7B13
stepping\t: 1
"""

PI4_ARM64 = "".join(f"""processor\t: {i}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

""" for i in range(4)) + """Revision\t: c03114
Serial\t\t: 10000000abcdef01
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""

PI3_ARMV7 = "".join(f"""processor\t: {i}
model name\t: ARMv7 Processor rev 4 (v7l)
BogoMIPS\t: 38.40
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xd03
CPU revision\t: 4

""" for i in range(4)) + """Hardware\t: BCM2835
Revision\t: a02082
Model\t\t: Raspberry Pi 3 Model B Rev 1.2
"""

BIG_LITTLE = "".join(f"""processor\t: {i}
CPU implementer\t: 0x41
CPU variant\t: 0x{0 if i < 4 else 4:x}
CPU part\t: {"0xd05" if i < 4 else "0xd0b"}
CPU revision\t: 0

""" for i in range(8))


def fake_root(tmp_path: Path, cpuinfo: str | None, *, model: str | None = None, hostname: str | None = None) -> Path:
    root = tmp_path / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    if cpuinfo is not None:
        (root / "proc/cpuinfo").write_text(cpuinfo)
    if model is not None:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    if hostname is not None:
        (root / "proc/sys/kernel/hostname").write_text(hostname + "\n")
    return root


@pytest.mark.parametrize(("cpuinfo", "model", "cpu", "cpu_id", "count"), [
    # x86: "model : 2" comes first and is a number; the name is "model name"
    (X86, None, "AMD EPYC 7B13", "AuthenticAMD family 25 model 2 stepping 1", 2),
    # a Pi on Raspberry Pi OS arm64: no model name at all; the core from CPU part, the board from the device tree
    (PI4_ARM64, "Raspberry Pi 4 Model B Rev 1.4", "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", "0x41:0xd08 r0p3", 4),
    # ... or, without a device tree, from the kernel's "Model" line
    (PI4_ARM64, None, "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)", "0x41:0xd08 r0p3", 4),
    # 32-bit Raspberry Pi OS: "ARMv7 Processor" and "Hardware: BCM2835" say less than the CPU part
    (PI3_ARMV7, "Raspberry Pi 3 Model B Rev 1.2", "Cortex-A53 (Raspberry Pi 3 Model B Rev 1.2)", "0x41:0xd03 r0p4", 4),
    # big.LITTLE: both kinds of core
    (BIG_LITTLE, "Radxa ROCK 5B", "Cortex-A55 + Cortex-A76 (Radxa ROCK 5B)", "0x41:0xd05 r0p0, 0x41:0xd0b r4p0", 8),
])
def test_cpu_model_name_from_proc_cpuinfo(tmp_path: Path, cpuinfo: str, model: str | None, cpu: str, cpu_id: str,
                                          count: int) -> None:
    assert cpu_identity(fake_root(tmp_path, cpuinfo, model=model)) == (cpu, cpu_id, count)


@pytest.mark.parametrize("cpuinfo", [None, "", "model\t\t: 2\n", "processor\t: 0\nmodel\t\t: 17\n"])
def test_the_cpu_is_never_a_bare_number(tmp_path: Path, cpuinfo: str | None) -> None:
    cpu, _, _ = cpu_identity(fake_root(tmp_path, cpuinfo))
    assert cpu and not cpu.replace(".", "").strip().isdigit() and cpu.endswith("CPU")


def test_host_environment_names_the_machine(tmp_path: Path) -> None:
    env = host_environment(tmp_path, fake_root(tmp_path, X86, hostname="bench-7"))
    assert env["cpu"] == "AMD EPYC 7B13" and env["cpu_count"] == 2 and env["hostname"] == "bench-7"
    assert env["cpu_id"] == "AuthenticAMD family 25 model 2 stepping 1" and env["machine"]
    real = host_environment(tmp_path)  # this machine, whatever it is
    assert not str(real["cpu"]).strip().isdigit() and real["cpu_count"] >= 1 and real["hostname"]
