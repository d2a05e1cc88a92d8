"""A stand-in ``perf`` (stat / record / report) for the counter tests, on machines where perf cannot count.

Tests copy it into tmp_path behind a ``#!<python>`` line. ``FAKE_PERF_MODE`` picks the behaviour:
``count`` (default) counts fixed numbers; ``exit_now`` fails at once like perf without permission; ``hang``
ignores SIGINT; ``die_midway`` loses its target after 0.2 s; ``probe_fail`` rejects the probe's events;
``record_empty`` records nothing. ``FAKE_PERF_REPORT`` names the file ``perf report`` prints.
Like the real perf it opens a perf_event file descriptor once attached (when the kernel allows it), and it
refuses a PID that does not exist.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import signal
import sys
import time

MODE = os.environ.get("FAKE_PERF_MODE", "count")

# plain-mode totals: (value, unit, running_pct); None value = not supported, "nc" = not counted
TOTALS = {
    "instructions": ("12000000", "", "100.00"),
    "cycles": ("8000000", "", "100.00"),
    "L1-dcache-loads": ("3000000", "", "50.00"),
    "cache-misses": ("<not counted>", "", "0.00"),
    "task-clock": ("150.50", "msec", "100.00"),
}
# interval-mode counts per interval; instructions grow by 1e6 each interval (k * 1e6 in interval k)
PER_INTERVAL = {
    "instructions": ("1000000", ""),
    "cycles": ("500000", ""),
    "L1-dcache-loads": ("200000", ""),
    "task-clock": ("50.00", "msec"),
}
_SYSCALL_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "armv6l": 364}
_fds: list[int] = []
_stop = False


def _open_perf_fd() -> None:
    """Hold a software perf_event fd (task clock of this process), as the real perf does once attached."""
    nr = _SYSCALL_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        return
    attr = (ctypes.c_uint8 * 128)()  # type=PERF_TYPE_SOFTWARE, size=128, config=PERF_COUNT_SW_TASK_CLOCK
    head = (1).to_bytes(4, "little") + (128).to_bytes(4, "little") + (1).to_bytes(8, "little")
    ctypes.memmove(attr, head, len(head))
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, ctypes.byref(attr), 0, -1, -1, 0)
    if fd >= 0:
        _fds.append(fd)


def _on_int(signum: int, frame: object) -> None:
    global _stop
    _stop = True


def _opt(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _check_pid(pid: str | None) -> None:
    if pid is None:
        return
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        print(f"Error: The sys_perf_event_open syscall returned with 3 (No such process) for pid {pid}",
              file=sys.stderr)
        sys.exit(255)


def _plain_lines(events: list[str]) -> list[str]:
    lines = []
    for event in events:
        value, unit, pct = TOTALS.get(event, ("<not supported>", "", "100.00"))
        lines.append(f"{value},{unit},{event},0,{pct},,")
    return lines


def stat(argv: list[str]) -> int:
    events = (_opt(argv, "-e") or "").split(",")
    if "--log-fd" in argv:  # the availability probe: perf stat ... true
        if MODE == "probe_fail":
            print("event syntax error: 'bogus'", file=sys.stderr)
            return 129
        print("\n".join(_plain_lines(events)))
        return 0
    _check_pid(_opt(argv, "-p"))
    out_path = _opt(argv, "-o")
    interval = _opt(argv, "-I")
    with open(out_path or os.devnull, "w") as out:
        out.write(f"# started on {time.ctime()}\n\n")
        out.flush()
        _open_perf_fd()
        started = time.monotonic()
        if interval is None:
            while not _stop:
                time.sleep(0.01)
                if MODE == "die_midway" and time.monotonic() - started > 0.2:
                    print("fake perf: lost the target", file=sys.stderr)
                    return 1
            out.write("\n".join(_plain_lines(events)) + "\n")
            return 0
        step_s = int(interval) / 1000
        next_t = step_s
        k = 1
        while not _stop:
            time.sleep(0.005)
            now = time.monotonic() - started
            if MODE == "die_midway" and now > 0.2:
                print("fake perf: lost the target", file=sys.stderr)
                return 1
            if now >= next_t:
                for event in events:
                    value, unit = PER_INTERVAL.get(event, ("<not supported>", ""))
                    if event == "instructions":
                        value = str(int(value) * k)
                    out.write(f"{next_t:15.9f},{value},{unit},{event},0,100.00,,\n")
                out.flush()
                next_t += step_s
                k += 1
    return 0


def record(argv: list[str]) -> int:
    _check_pid(_opt(argv, "-p"))
    _open_perf_fd()
    while not _stop:
        time.sleep(0.01)
    out_path = _opt(argv, "-o") or "perf.data"
    if MODE != "record_empty":
        with open(out_path, "wb") as out:
            out.write(b"PERFILE2 fake data\n")
    return 0


def report(argv: list[str]) -> int:
    path = os.environ.get("FAKE_PERF_REPORT")
    if not path:
        print("fake perf: no FAKE_PERF_REPORT", file=sys.stderr)
        return 1
    with open(path) as fh:
        sys.stdout.write(fh.read())
    return 0


def main(argv: list[str]) -> int:
    if MODE == "exit_now":
        print("Error: Access to performance monitoring and observability operations is limited.",
              file=sys.stderr)
        return 255
    signal.signal(signal.SIGINT, signal.SIG_IGN if MODE == "hang" else _on_int)
    command = argv[0] if argv else ""
    with contextlib.suppress(BrokenPipeError):
        if command == "stat":
            return stat(argv[1:])
        if command == "record":
            return record(argv[1:])
        if command == "report":
            return report(argv[1:])
    print(f"fake perf: unknown command {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
