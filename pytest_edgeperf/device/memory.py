"""Owns what the kernel says about memory: a process's Vm* figures, its cgroup's limit, the OOM killer's count.

The worker client reads these to tell "out of memory" from "hung" or "crashed" (worker/client.py). Every path is
under ``root`` (``/`` on a real device; a fake tree in tests), as the sensor readers are (device/readers.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

#: the file system the kernel's files are read under
ROOT = Path("/")


def oom_kill_count(root: Path = ROOT) -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (``/proc/vmstat``), or None."""
    with contextlib.suppress(OSError, ValueError):
        for line in (root / "proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    return None


def status_kb(pid: int, root: Path = ROOT) -> dict[str, int]:
    """The ``Vm*`` lines of ``/proc/PID/status`` in kB (VmRSS, VmHWM, VmSize, VmSwap); empty when it is gone."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in (root / f"proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if key.startswith("Vm") and len(parts) == 2 and parts[0].isdigit():
                out[key] = int(parts[0])
    return out


def cgroup_memory_mb(pid: int, root: Path = ROOT) -> tuple[float, float] | None:
    """(used, limit) of the process's memory cgroup in MB (v2 memory.current/max, v1 usage/limit), or None."""
    try:
        lines = (root / f"proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # cgroup v2
            base, names = root / "sys/fs/cgroup" / rel.lstrip("/"), ("memory.current", "memory.max")
        elif "memory" in controllers.split(","):
            base, names = (root / "sys/fs/cgroup/memory" / rel.lstrip("/"),
                           ("memory.usage_in_bytes", "memory.limit_in_bytes"))
        else:
            continue
        try:
            used, limit = (int((base / n).read_text().strip()) for n in names)
        except (OSError, ValueError):  # "max": no limit
            continue
        if limit < 1 << 60:
            return used / 2**20, limit / 2**20
    return None


def memory_pressure(pid: int, root: Path = ROOT) -> str | None:
    """Why a live worker may be stuck on memory rather than hung, as a phrase for the message, or None.

    Read before the worker is killed: it is near its address-space limit (RLIMIT_AS), its cgroup's limit, the
    machine has almost no memory left, or part of it was swapped out (a worker that just started does not
    swap unless memory is short). Linux only (``/proc``); elsewhere a stuck worker is reported as hung.
    """
    vm = status_kb(pid, root)
    if not vm:
        return None
    rss_mb, size_mb, swap_mb = vm.get("VmRSS", 0) / 1024, vm.get("VmSize", 0) / 1024, vm.get("VmSwap", 0) / 1024
    with contextlib.suppress(OSError, ValueError):
        for line in (root / f"proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max address space"):
                soft = line.split()[3]
                if soft.isdigit():
                    limit_mb = int(soft) / 2**20
                    if limit_mb - size_mb < max(64.0, 0.1 * limit_mb):
                        return (f"{max(limit_mb - size_mb, 0):.0f} MB left under its address-space limit of "
                                f"{limit_mb:.0f} MB")
    cgroup = cgroup_memory_mb(pid, root)
    if cgroup is not None and cgroup[0] >= 0.9 * cgroup[1]:
        return f"its memory cgroup at {cgroup[0]:.0f} of {cgroup[1]:.0f} MB"
    meminfo: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in (root / "proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0])
    total, available = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    if total and available is not None and available < 0.05 * total:
        return f"the machine at {available / 1024:.0f} MB available of {total / 1024:.0f} MB"
    if swap_mb >= max(16.0, 0.1 * rss_mb):
        return f"{swap_mb:.0f} MB of its {rss_mb + swap_mb:.0f} MB swapped out"
    return None
