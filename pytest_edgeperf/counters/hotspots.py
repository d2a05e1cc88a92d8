"""Owns CPU hot spots: ``perf record`` of the timed window and the top symbols of ``perf report`` (seed 000).

Seed 000 found 87% of YOLO's CPU time in ``gemm_nn`` with perf and optimised that one function; a regression
report that names the hot function points at the cause. Recording is optional and never breaks a measurement:
where perf is missing or cannot record, the result says so in its notes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pytest_edgeperf.counters.parse import parse_perf_report
from pytest_edgeperf.counters.process import PerfProcess, _make_runner
from pytest_edgeperf.fileio import atomic_path, atomic_write_text


class HotspotRecorder(PerfProcess):
    """``perf record`` of the timed window; :meth:`stop` saves ``perf.data`` and ``hotspots.txt``."""

    def __init__(self, perf: str = "perf", attach_timeout_s: float = 2.0, stop_timeout_s: float = 10.0,
                 report_timeout_s: float = 60.0, *, pid: int | None = None, out_dir: Path | None = None) -> None:
        """``pid``, ``out_dir``: what ``start()`` and ``stop()`` use when not given it (the instrument protocol)."""
        super().__init__(perf, attach_timeout_s)
        self.attach_pid = pid
        self.out_dir = out_dir
        self.stop_timeout_s = stop_timeout_s
        self.report_timeout_s = report_timeout_s
        self._data_path: Path | None = None
        self._started = False

    def start(self, pid: int | None = None) -> None:
        """Attach ``perf record -p PID`` (no shell); returns once it samples (bounded wait); raises only if no pid."""
        pid = self._begin(pid, "hot spot recorder")
        self._started = True
        path = self._perf_and_tmpdir("no hot spots", "edgeperf-hotspots-")
        if path is None:
            return
        self._data_path = self._tmpdir / "perf.data"
        self._launch([path, "record", "-q", "-o", str(self._data_path), "-p", str(pid)], None)

    def stop(self, out_dir: Path | None = None, top: int = 15) -> dict[str, Any]:
        """Stop recording, report the top symbols and save ``perf.data`` + ``hotspots.txt`` in ``out_dir``."""
        out_dir = self.out_dir if out_dir is None else out_dir
        if out_dir is None:
            raise ValueError("the hot spot recorder has no directory to save perf.data in")
        result: dict[str, Any] = {"tool": "perf record", "top": [], "perf_data": None, "hotspots_txt": None,
                                  "notes": []}
        try:
            self._stop_into(Path(out_dir), top, result)
        except Exception as exc:  # never let profiling break the measurement
            self.notes.append(f"hot spot report failed: {type(exc).__name__}: {exc}")
        finally:
            self._cleanup()
            self._data_path = None
        result["notes"] = list(self.notes)
        return result

    def _stop_into(self, out_dir: Path, top: int, result: dict[str, Any]) -> None:
        if not self._started:
            self.notes.append("hot spot recorder was never started")
            return
        self._finish(self.stop_timeout_s)
        data = self._data_path
        if data is None or not data.exists() or data.stat().st_size == 0:
            if data is not None:
                self.notes.append("perf record wrote no data")
            return
        path = self._resolve()
        text = _make_runner(self.report_timeout_s).run(
            [path or self.perf, "report", "-i", str(data), "--stdio", "--sort", "symbol"])
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = out_dir / "perf.data"
        with atomic_path(kept) as tmp:
            shutil.move(str(data), tmp)
        result["perf_data"] = str(kept)
        if text is None:
            self.notes.append("perf report failed; perf.data kept for `perf report -i`")
            return
        result["top"] = parse_perf_report(text, top)
        if not result["top"]:
            self.notes.append("perf report listed no symbols (too few samples?)")
        txt = out_dir / "hotspots.txt"
        atomic_write_text(txt, text)
        result["hotspots_txt"] = str(txt)
