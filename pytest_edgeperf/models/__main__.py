"""The models CLI: ``python -m pytest_edgeperf.models build NAME [...] --out DIR`` and ``... list``.

Why a CLI: a user on a Pi can pre-build the zoo into the cache (or a folder) before a timed session, and see
what each model costs in parameters and bytes without running pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from pytest_edgeperf.models.build import _cache_stem, build_model, default_cache_dir, ensure_zoo_model
from pytest_edgeperf.models.zoo import TABLE1_PARAMS, ZOO, build_zoo_graph


def _kwargs(args: argparse.Namespace) -> dict:
    kw: dict = {}
    if args.seed is not None:
        kw["seed"] = args.seed
    if args.input_size is not None:
        kw["input_size"] = args.input_size
    if args.num_classes is not None:
        kw["num_classes"] = args.num_classes
    return kw


def _sizes(files: dict) -> list[int | str]:
    """Bytes of the ONNX and TFLite files; "-" for a format not built (TFLite needs the litert extra)."""
    return [files[kind]["size_bytes"] if kind in files else "-" for kind in ("onnx", "tflite")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_edgeperf.models",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build zoo models to ONNX (+ TFLite with the litert extra) + JSON meta")
    b.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(ZOO)} (or 'all')")
    b.add_argument("--out", type=Path, default=None, help="output folder (default: the model cache, reused)")
    b.add_argument("--seed", type=int, default=None)
    b.add_argument("--input-size", type=int, default=None)
    b.add_argument("--num-classes", type=int, default=None)
    lst = sub.add_parser("list", help="list zoo models with parameter counts and sizes")
    lst.add_argument("--cache", type=Path, default=None, help="cache folder to read built sizes from")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        names = list(ZOO) if args.names == ["all"] else args.names
        rows = []
        for name in names:
            try:
                kw = _kwargs(args)
                if args.out is None:
                    files = ensure_zoo_model(name, None, **kw)
                else:
                    files = build_model(build_zoo_graph(name, **kw), args.out, stem=_cache_stem(name, kw))
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            meta = files.read_meta()
            rows.append([name, meta["param_count"], *_sizes(meta["files"]), str(files.stem)])
        print(tabulate(rows, headers=["model", "params", "onnx_bytes", "tflite_bytes", "stem"]))
        return 0

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
