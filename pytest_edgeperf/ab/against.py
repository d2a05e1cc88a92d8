"""REF's version of a measured model for ``--edgeperf-against=REF``: a file at REF, or a model rebuilt from REF's code.

A model file in the repository is taken from REF with ``git`` (gitref.model_at_ref). A model built by code has no
file at REF, so it is rebuilt from REF's sources:

* ``zoo:NAME`` (and ``model_cache.zoo(NAME, **kwargs)``): the zoo is the plugin's code. When the plugin is not
  inside this repository, REF cannot have changed it: unchanged. When it is (the plugin's own repository) and
  ``git diff REF -- <plugin>/models`` is empty: unchanged. Otherwise REF's tree is extracted (``git archive``)
  and the model built there, in a subprocess with REF's tree first on ``sys.path``.
* ``model_cache.build(builder, name, **kwargs)`` with a builder FUNCTION (module-level, JSON arguments): the cache
  records it (``origin.json`` beside the model); REF's tree is extracted and REF's version of the function builds
  the model in a subprocess. Unchanged when no tracked file under the builder's import root differs from REF and
  no untracked file was added there, or when REF's build gives the same bytes.
* ``model_cache.build(graph)`` with a Graph object, or anything else built by code: not comparable (nothing says
  which code made the graph), in one line.

Rebuilt files go under ``<cache>/against/<commit>/``, REF's tree under ``<cache>/against/src-<commit>/``, each
written once per commit (a file renamed into place, a tree marked complete only once extracted). Every failure is
a GitRefError with one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from ..models.origin import ORIGIN_FILE
from .gitref import GitRefError, _err, _git, _out, check_ref, model_at_ref

ZOO_BUILDER = "pytest_edgeperf.models.zoo:build_zoo_graph"
#: the model formats a rebuild can produce, by the measured file's suffix
FORMAT_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}
REBUILD_TIMEOUT_S = 900

_REBUILD = r"""
import importlib, json, sys
spec = json.loads(sys.argv[1])
module, _, qualname = spec["builder"].partition(":")
target = importlib.import_module(module)
for part in qualname.split("."):
    target = getattr(target, part)
graph = target(*spec["args"], **spec["kwargs"])
from pytest_edgeperf.models.build import build_model
files = build_model(graph, spec["out_dir"], stem=spec["name"], formats=[spec["format"]])
print(json.dumps({"stem": str(files.stem)}))
"""


def ref_model(model: str, model_file: Path, ref: str, rootdir: Path, cache_dir: Path) -> Path | None:
    """REF's version of the model measured as ``model`` from ``model_file`` (the project at ``rootdir``): a file
    to time beside it, or None when the model is the same at REF. Raises GitRefError (one line) when REF's version
    cannot be had."""
    root = check_ref(ref, rootdir)
    model_file, cache_dir = model_file.resolve(), cache_dir.resolve()  # the rebuild runs elsewhere
    meta = _meta(model_file)
    if model.startswith("zoo:") or isinstance((meta.get("build_args") or {}).get("zoo"), str):
        build_args = dict(meta.get("build_args") or {"zoo": model[len("zoo:"):]})
        name = str(build_args.pop("zoo"))
        return _rebuild_zoo(model, name, build_args, model_file, ref, root, cache_dir)
    origin_file = model_file.parent / ORIGIN_FILE
    if origin_file.is_file():
        try:
            origin = json.loads(origin_file.read_text())
        except (OSError, ValueError) as exc:
            raise GitRefError(f"{model}: cannot read {origin_file} ({exc})") from None
        return _rebuild_builder(model, origin, model_file, ref, root, cache_dir)
    if meta or model.startswith("cache:") or _inside(model_file, cache_dir):
        raise GitRefError(f"{model}: not comparable against {ref} (built from a Graph object; pass the builder "
                          f"function, model_cache.build(module.function, name, **kwargs), to rebuild it from "
                          f"{ref}'s sources)")
    return model_at_ref(model_file, ref, cache_dir / "against")


def _meta(model_file: Path) -> dict[str, object]:
    """The model cache's meta file of a built model (``<stem>.json``), {} for a file not built by the cache."""
    meta = model_file.with_suffix(".json")
    if model_file.suffix not in FORMAT_BY_SUFFIX or not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and "files" in data else {}


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _commit(ref: str, root: Path) -> str:
    proc = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if proc.returncode != 0:
        raise GitRefError(f"unknown git revision {ref!r}")
    return _out(proc)


def _unchanged(ref: str, root: Path, folder: Path) -> bool:
    """No tracked file under ``folder`` differs from REF (committed or not) and no untracked file was added."""
    rel = folder.resolve().relative_to(root.resolve()).as_posix() or "."
    diff = _git(["diff", "--quiet", ref, "--", rel], root)
    if diff.returncode not in (0, 1):
        raise GitRefError(f"git diff {ref} -- {rel}: {_err(diff)}")
    if diff.returncode == 1:
        return False
    others = _git(["ls-files", "--others", "--exclude-standard", "--", rel], root)
    return others.returncode == 0 and not _out(others)


def ref_tree(ref: str, root: Path, cache_dir: Path) -> Path:
    """REF's tracked files, extracted once per commit under ``<cache>/against/src-<commit>``."""
    commit = _commit(ref, root)
    dest = cache_dir / "against" / f"src-{commit[:12]}"
    if (dest / ".complete").is_file():
        return dest
    archive = _git(["archive", "--format=tar", commit], root)
    if archive.returncode != 0:
        raise GitRefError(f"git archive {ref}: {_err(archive)}")
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+: refuse links and paths out of the folder
            tar.extractall(partial, filter="data")
        else:
            tar.extractall(partial)  # our own repository's archive
    (partial / ".complete").write_text(commit)
    try:
        os.replace(partial, dest)
    except OSError:  # another worker extracted it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
        if not (dest / ".complete").is_file():
            raise
    return dest


def _rebuild_zoo(model: str, name: str, kwargs: dict[str, object], model_file: Path, ref: str, root: Path,
                 cache_dir: Path) -> Path | None:
    package = Path(__file__).resolve().parent
    if not _inside(package, root) or _unchanged(ref, root, package / "models"):
        return None  # the zoo is not this repository's code (an installed plugin), or REF's zoo is the same code
    origin = {"builder": ZOO_BUILDER, "args": [name], "kwargs": kwargs, "import_root": str(package.parent)}
    return _rebuild(model, origin, model_file, ref, root, cache_dir)


def _rebuild_builder(model: str, origin: dict[str, object], model_file: Path, ref: str, root: Path,
                     cache_dir: Path) -> Path | None:
    import_root = Path(str(origin.get("import_root", "")))
    if not _inside(import_root, root):
        raise GitRefError(f"{model}: not comparable against {ref} (its builder {origin.get('builder')} is "
                          f"outside the git repository {root})")
    if _unchanged(ref, root, import_root):
        return None
    return _rebuild(model, origin, model_file, ref, root, cache_dir)


def _rebuild(model: str, origin: dict[str, object], model_file: Path, ref: str, root: Path,
             cache_dir: Path) -> Path | None:
    """Builds ``origin`` from REF's tree in a subprocess; None when it gives the bytes measured now."""
    fmt = FORMAT_BY_SUFFIX.get(model_file.suffix)
    if fmt is None:
        raise GitRefError(f"{model}: not comparable against {ref} (the runtime loads a converted "
                          f"{model_file.suffix} file; REF's model is rebuilt as ONNX or TFLite only)")
    tree = ref_tree(ref, root, cache_dir)
    import_root = tree / Path(str(origin["import_root"])).resolve().relative_to(root.resolve())
    commit = tree.name.removeprefix("src-")
    name = str(origin.get("name") or model_file.stem)
    key = hashlib.sha256(json.dumps(origin, sort_keys=True).encode()).hexdigest()[:10]
    out_dir = cache_dir / "against" / commit / f"{name}-{key}"
    built = out_dir / f"{name}{model_file.suffix}"
    if not built.is_file():
        spec = {"builder": origin["builder"], "args": origin.get("args", []), "kwargs": origin.get("kwargs", {}),
                "out_dir": str(out_dir), "name": name, "format": fmt}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(import_root), str(tree)]
                                                          + [p for p in sys.path if p and Path(p).is_dir()]))
        try:
            proc = subprocess.run([sys.executable, "-c", _REBUILD, json.dumps(spec)], cwd=import_root, env=env,
                                  capture_output=True, text=True, timeout=REBUILD_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise GitRefError(f"{model}: cannot rebuild it from {ref}'s sources ({exc})") from None
        if proc.returncode != 0 or not built.is_file():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise GitRefError(f"{model}: not comparable against {ref} (rebuilding it from {ref}'s sources "
                              f"failed: {why})")
    if _sha256(built) == _sha256(model_file):
        return None
    return built


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
