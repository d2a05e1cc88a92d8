"""Command-line options, ini values and marker arguments -> one validated settings object. All defaults live here.

One concern per module, importing one way (the ``config-layers`` contract in pyproject.toml):
``settings`` (``Settings``, ``Budget`` and the defaults) <- ``ranges`` (what each numeric option accepts) <-
``options`` (the ``--edgeperf-*`` options and ini keys read into ``Settings``) and ``marker`` (the ``edgeperf``
marker's arguments) <- ``precedence`` (``measure()`` keyword > marker > command line > ini file > default, for one
measurement). Anything a user can get wrong is checked in those modules and reported as one line naming the
option, ini key or test and argument (``pytest.UsageError``), before any measurement starts.

The names below are re-exported so ``from pytest_edgeperf.config import X`` keeps working for tests, benchmarks,
suites and users; modules inside the package import from the module that defines the name.
"""

from .marker import INPUT_ARGUMENTS, MARKER_HELP, MARKER_RANGES, BadArgument, MarkerSpec, input_argument, parse_marker
from .options import (
    OPTIONS,
    REPORT_OPTIONS,
    check_python,
    check_report_paths,
    option_help,
    parse_tolerance_option,
    settings_from_config,
)
from .precedence import (
    MeasureArgumentError,
    MeasureArguments,
    MeasureSettings,
    budget_with,
    clock_floor_ghz,
    cpu_count,
    marker_budget,
    measure_settings,
)
from .ranges import DAY_S, RANGES, Range
from .settings import (
    BUSY_CPU_WAIT_PCT,
    DEFAULT_BUDGET,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_PROCESSES,
    DEFAULT_UPDATE_PASSES,
    QUICK_BUDGET,
    Budget,
    Settings,
)

__all__ = [
    "BUSY_CPU_WAIT_PCT",
    "DAY_S",
    "DEFAULT_BUDGET",
    "DEFAULT_LOCK_TIMEOUT_S",
    "DEFAULT_PROCESSES",
    "DEFAULT_UPDATE_PASSES",
    "INPUT_ARGUMENTS",
    "MARKER_HELP",
    "MARKER_RANGES",
    "OPTIONS",
    "QUICK_BUDGET",
    "RANGES",
    "REPORT_OPTIONS",
    "BadArgument",
    "Budget",
    "MarkerSpec",
    "MeasureArgumentError",
    "MeasureArguments",
    "MeasureSettings",
    "Range",
    "Settings",
    "budget_with",
    "check_python",
    "check_report_paths",
    "clock_floor_ghz",
    "cpu_count",
    "input_argument",
    "marker_budget",
    "measure_settings",
    "option_help",
    "parse_marker",
    "parse_tolerance_option",
    "settings_from_config",
]
