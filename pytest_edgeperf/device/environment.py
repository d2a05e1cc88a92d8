"""Owns the host identity recorded with every result: which machine (CPU model, architecture, cores, hostname) ran it.

Why it matters: the ``host`` profile is any Linux machine, so its baselines hold one machine's timing, and the
verdict compares timing only when the identity below matches the recording machine's. So it must tell machines
apart: on x86 the CPU is the ``model name`` line of ``/proc/cpuinfo`` (the first line starting with ``model`` is
``model : 2``, a number, which once made every VM of a kind look alike); on Arm many kernels print no model
name, so the core comes from ``CPU implementer``/``CPU part`` and the board from the device-tree model (or the
``Model``/``Hardware`` lines). ``cpu_id`` adds the exact CPU revision (x86 family/model/stepping, Arm
implementer/part/variant/revision): VMs often show a generic model name ("AMD EPYC") for different generations.

Files are read below a configurable root (``--edgeperf-root``), like the sensor readers, so tests give it a fake
``/proc`` tree. py-cpuinfo was not used: it reads the real ``/proc/cpuinfo`` only (no root to point at a fake
tree), runs a subprocess, and its module name ``cpuinfo`` is also installed by ``py-cpuinfo2`` (what
pytest-benchmark 5 depends on), so listing both would make two distributions overwrite one module.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from pytest_edgeperf.device.profiles import read_model_string

# Arm core names by (implementer, part), as the kernel's and lscpu's tables give them; unknown parts are shown by
# number ("Arm part 0xd99"), which still tells machines apart.
_ARM_IMPLEMENTERS = {0x41: "Arm", 0x42: "Broadcom", 0x43: "Cavium", 0x48: "HiSilicon", 0x4E: "NVIDIA",
                     0x51: "Qualcomm", 0x53: "Samsung", 0x61: "Apple", 0xC0: "Ampere"}
_ARM_PARTS = {
    0xB76: "ARM1176", 0xC07: "Cortex-A7", 0xC08: "Cortex-A8", 0xC09: "Cortex-A9", 0xC0F: "Cortex-A15",
    0xD01: "Cortex-A32", 0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57",
    0xD08: "Cortex-A72", 0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1",
    0xD0D: "Cortex-A77", 0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510",
    0xD47: "Cortex-A710", 0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4B: "Cortex-A78C", 0xD4F: "Neoverse-V2",
    0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4",
}
_BARE_NUMBER = re.compile(r"[\s\d.]*")


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_bytes().decode(errors="replace")
    except OSError:
        return None


def _blocks(cpuinfo: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per blank-line-separated block (a processor, or the trailing board lines)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if current:
                blocks.append(current)
                current = {}
            continue
        current.setdefault(key.strip().lower(), " ".join(value.split()))
    if current:
        blocks.append(current)
    return blocks


def _int(text: str | None) -> int | None:
    try:
        return int(text, 0) if text else None
    except ValueError:
        return None


def cpu_identity(root: Path | str = Path("/")) -> tuple[str, str, int | None]:
    """(CPU model name, exact CPU revision or "", number of processors) from ``<root>/proc/cpuinfo``.

    The name is never a bare number: when nothing better is found it is the architecture ("x86_64 CPU").
    """
    root = Path(root)
    blocks = _blocks(_read(root, "proc/cpuinfo") or "")
    processors = [b for b in blocks if "processor" in b]
    merged: dict[str, str] = {}
    for block in blocks:
        for key, value in block.items():
            merged.setdefault(key, value)
    board = read_model_string(root) or merged.get("model", "") or merged.get("hardware", "")
    if _BARE_NUMBER.fullmatch(board):
        board = ""  # x86's "model : 2" is a CPU model number, not a board
    name, ident = "", ""
    if "vendor_id" in merged or "cpu family" in merged:  # x86
        name = merged.get("model name", "")
        ident = " ".join([merged.get("vendor_id", "")] + [f"{k.replace('cpu ', '')} {merged[k]}" for k in (
            "cpu family", "model", "stepping") if k in merged]).strip()
    elif "cpu part" in merged:  # Arm: one name per kind of core (big.LITTLE boards have two)
        cores: list[str] = []
        ids: list[str] = []
        for block in processors or [merged]:
            impl, part = _int(block.get("cpu implementer")), _int(block.get("cpu part"))
            if part is None:
                continue
            core = _ARM_PARTS.get(part, "") if impl == 0x41 else ""
            if not core:
                core = f"{_ARM_IMPLEMENTERS.get(impl or -1, 'Arm')} part {part:#x}"
            rev = f"{impl or 0:#x}:{part:#x} r{_int(block.get('cpu variant')) or 0}p{block.get('cpu revision', '0')}"
            if core not in cores:
                cores.append(core)
            if rev not in ids:
                ids.append(rev)
        name = " + ".join(cores)
        ident = ", ".join(ids)
    if not name:
        for key in ("model name", "cpu model", "cpu", "hardware"):  # other Linux ports (MIPS, POWER, old Arm)
            value = merged.get(key, "")
            if value and not _BARE_NUMBER.fullmatch(value):
                name = value
                break
    if board and board not in name and "vendor_id" not in merged:
        name = f"{name} ({board})" if name else board
    if not name or _BARE_NUMBER.fullmatch(name):
        name = f"{platform.machine() or 'unknown'} CPU"
    return name, ident, len(processors) or None


def hostname(root: Path | str = Path("/")) -> str:
    """The host name (``<root>/proc/sys/kernel/hostname``, else the socket's)."""
    text = _read(Path(root), "proc/sys/kernel/hostname")
    return text.strip() if text and text.strip() else socket.gethostname()


def git_commit(rootdir: Path) -> str | None:
    """HEAD of the repository the tests run in, or None (no git, not a repository)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=rootdir, capture_output=True, text=True,
                             timeout=5, check=False)
        if out.returncode == 0:
            return out.stdout.strip() or None
    return None


def host_environment(rootdir: Path, root: Path | str = Path("/")) -> dict[str, Any]:
    """Machine facts recorded with every result (pytest-benchmark's machine_info plus what matters on a Pi)."""
    cpu, cpu_id, processors = cpu_identity(root)
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": processors or os.cpu_count(),
        "hostname": hostname(root),
        "git_commit": git_commit(rootdir),
    }
    if cpu_id:
        env["cpu_id"] = cpu_id
    return env
