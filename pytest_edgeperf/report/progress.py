"""Live progress on one rewritten terminal line (which test, which phase); silent when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


class Progress:
    """Callable progress line: ``progress("waiting for CPU >= 1.10 GHz ...")``; CI logs get nothing."""

    def __init__(self, config: pytest.Config, enabled: bool = True) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
        writer = getattr(reporter, "_tw", None)
        stream = getattr(writer, "_file", None) or sys.stdout
        isatty = getattr(stream, "isatty", lambda: False)
        self._stream = stream
        self._config = config
        self._enabled = bool(enabled and isatty() and config.getoption("capture", "fd") != "tee-sys")
        self._last = 0.0
        self._shown = False

    def __call__(self, message: str) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and self._shown:
            return  # at most 5 updates a second
        self._last = now
        self._stream.write("\r\x1b[K[edgeperf] " + message[:150])
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    def announce(self, message: str) -> None:
        """A line that stays, on a terminal or in a CI log, even with --edgeperf-no-progress and under capture:
        for a wait the user must know about (the device lock is busy and who holds it)."""
        reporter = self._config.pluginmanager.get_plugin("terminalreporter") if self._config is not None else None
        if reporter is None:
            return
        capman = self._config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            self.clear()
            reporter.ensure_newline()
            reporter.write_line("[edgeperf] " + message)
