"""MkDocs hook: writes the reference tables that must never go stale from the plugin's own definitions.

``<!-- edgeperf:options -->`` becomes the table of every ``--edgeperf-`` option (``config.OPTIONS``, the table
``plugin.py`` registers, with defaults read from ``config.Settings``); ``<!-- edgeperf:cli -->`` becomes the
``--help`` of every ``edgeperf`` subcommand (``cli.build_parser``). The checkout being built is put first on the
import path, so the site always describes the code next to it. ``tests/test_docs.py`` imports this file too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OPTIONS_MARK = "<!-- edgeperf:options -->"
CLI_MARK = "<!-- edgeperf:cli -->"

#: option -> the Settings attribute (dotted) holding its default
_DEFAULT_FROM_SETTINGS = {
    "device": "device", "root": "root", "vcgencmd": "vcgencmd", "guard-timeout": "guard_timeout_s",
    "guard-hold": "guard_hold_s", "sample-hz": "sample_hz", "sensor-budget": "sensor_budget",
    "max-attempts": "max_attempts", "min-samples": "budget.min_samples", "min-time": "budget.min_time_s",
    "max-time": "budget.max_time_s", "max-cpu-wait": "max_cpu_wait_pct", "worker-timeout": "worker_timeout_s",
    "update-passes": "update_passes", "power-hz": "power_hz", "idle-time": "idle_s",
}
#: defaults that depend on the device, the rootdir or the environment, said in words
_DEFAULT_TEXT = {
    "min-freq": "the profile's floor (Pi 3: 1.1 GHz)",
    "max-temp": "the profile's throttle temperature - 5 C",
    "threads": "the number of cores",
    "baselines": "`<rootdir>/baselines`",
    "power-meter": "`auto`: the device's default (`pmic` on a Pi 5, `none` elsewhere)",
    "cache-dir": "`$EDGEPERF_CACHE`, else `~/.cache/pytest-edgeperf`",
}
_UNITS = {"_s": " s", "_hz": " Hz", "_pct": " %"}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (no raw HTML, no column breaks)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def option_rows() -> list[dict[str, str]]:
    """One row per registered option: flag, ini key, value kind, default, help."""
    from pytest_edgeperf import config

    defaults = config.Settings(rootdir=Path("."))
    rows = []
    for entry in config.OPTIONS:
        name, ini, kind, help_text = entry[:4]
        if name in _DEFAULT_TEXT:
            default = _DEFAULT_TEXT[name]
        elif name in _DEFAULT_FROM_SETTINGS:
            attr = _DEFAULT_FROM_SETTINGS[name]
            value: Any = defaults
            for part in attr.split("."):
                value = getattr(value, part)
            unit = next((u for suffix, u in _UNITS.items() if attr.endswith(suffix)), "")
            default = f"`{value:g}{unit}`" if isinstance(value, float) else f"`{value}{unit}`"
        elif kind == "bool":
            default = "off"
        elif name == "processes":
            default = f"`{config.DEFAULT_PROCESSES}` (1 with `--edgeperf-quick`)"
        else:
            default = ""
        rows.append({"option": f"--edgeperf-{name}", "ini": ini or "", "kind": kind, "default": default,
                     "help": help_text})
    return rows


def options_markdown() -> str:
    """The options table as markdown."""
    lines = ["| option (ini key) | value | default | what it does |", "|---|---|---|---|"]
    for row in option_rows():
        value = "flag" if row["kind"] == "bool" else row["kind"].upper()
        ini = f"<br>ini `{row['ini']}`" if row["ini"] else ""
        lines.append(f"| `{row['option']}`{ini} | {value} | {row['default']} | {_cell(row['help'])} |")
    return "\n".join(lines)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(full command, parser) for the parser and every nested subcommand, depth first."""
    out = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out.extend(_subcommands(sub))
    return out


def cli_markdown() -> str:
    """The ``--help`` of ``edgeperf`` and of each subcommand, as markdown sections."""
    from pytest_edgeperf import cli

    parts = []
    for prog, parser in _subcommands(cli.build_parser()):
        parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        level = "##" if prog == "edgeperf" else "###"
        parts.append(f"{level} `{prog}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the generated tables into the pages that ask for them."""
    if OPTIONS_MARK in markdown:
        markdown = markdown.replace(OPTIONS_MARK, options_markdown())
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_markdown())
    return markdown
