"""``edgeperf models build NAME [...] [--format F] [--out DIR]`` and ``edgeperf models list``: the model zoo.

Why a command: a user on a Pi can pre-build the zoo into the cache (or a folder) before a timed session, and see
what each model costs in parameters and bytes without running pytest. ``python -m pytest_edgeperf.models`` is the
same command under its old name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from pytest_edgeperf.models.build import FORMATS, _cache_stem, build_model, default_cache_dir, ensure_zoo_model
from pytest_edgeperf.models.zoo import TABLE1_PARAMS, ZOO, build_zoo_graph

EXIT_OK, EXIT_USAGE = 0, 2
DESCRIPTION = "build the model zoo into the cache (or a folder), list it with parameter counts and sizes"


def _kwargs(args: argparse.Namespace) -> dict[str, int]:
    kw: dict[str, int] = {}
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.input_size is not None:
        kw["input_size"] = args.input_size
    if args.num_classes is not None:
        kw["num_classes"] = args.num_classes
    return kw


def _sizes(files: dict[str, dict[str, int]]) -> list[int | str]:
    """Bytes of the ONNX and TFLite files; "-" for a format not built (TFLite needs the litert extra)."""
    return [files[kind]["size_bytes"] if kind in files else "-" for kind in ("onnx", "tflite")]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``models`` subcommand (called from ``pytest_edgeperf.cli.build_parser``)."""
    models = sub.add_parser("models", help=DESCRIPTION, description=DESCRIPTION)
    _add_commands(models)


def _add_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", required=True)
    b = sub.add_parser("build", help="build zoo models to ONNX and/or TFLite (the litert extra) + JSON meta")
    b.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(ZOO)} (or 'all')")
    b.add_argument("--format", dest="formats", action="append", choices=FORMATS, default=None,
                   help="a format to write, repeatable (default: every format this installation can export)")
    b.add_argument("--out", type=Path, default=None, help="output folder (default: the model cache, reused)")
    b.add_argument("--seed", type=int, default=None)
    b.add_argument("--input-size", type=int, default=None)
    b.add_argument("--num-classes", type=int, default=None)
    b.set_defaults(func=cmd_build)
    lst = sub.add_parser("list", help="list zoo models with parameter counts and sizes")
    lst.add_argument("--cache", type=Path, default=None, help="cache folder to read built sizes from")
    lst.set_defaults(func=cmd_list)


def cmd_build(args: argparse.Namespace) -> int:
    names = list(ZOO) if args.names == ["all"] else args.names
    rows = []
    for name in names:
        try:
            kw = _kwargs(args)
            if args.out is None:
                files = ensure_zoo_model(name, None, formats=args.formats, **kw)
            else:
                files = build_model(build_zoo_graph(name, **kw), args.out, stem=_cache_stem(name, kw),
                                    formats=args.formats)
        except ValueError as exc:
            print(f"edgeperf models: {exc}", file=sys.stderr)
            return EXIT_USAGE
        meta = files.read_meta()
        rows.append([name, meta["param_count"], *_sizes(meta["files"]), str(files.stem)])
    print(tabulate(rows, headers=["model", "params", "onnx_bytes", "tflite_bytes", "stem"]))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    cache = args.cache or default_cache_dir()
    rows = []
    for name in ZOO:
        params = build_zoo_graph(name).param_count()
        ref = TABLE1_PARAMS.get(name)
        built = cache / f"{name}.json"
        sizes = ["", ""]
        if built.exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                sizes = _sizes(json.loads(built.read_text())["files"])
        rows.append([name, params, f"{ref / 1e6:.2f}M" if ref else "", f"{params * 4 / 1e6:.1f}", *sizes])
    print(tabulate(rows, headers=["model", "params", "paper", "fp32_mb", "onnx_bytes", "tflite_bytes"]))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pytest_edgeperf.models ARGS``: the same as ``edgeperf models ARGS``."""
    parser = argparse.ArgumentParser(prog="python -m pytest_edgeperf.models", description=DESCRIPTION)
    _add_commands(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))
