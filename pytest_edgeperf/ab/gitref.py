"""A model file at a git revision (``--edgeperf-against=REF``): has it changed since REF, and REF's copy of it.

Files are compared by their git blob hash (``git hash-object`` against ``git rev-parse REF:path``), so an edit not
yet committed, or a file not yet added, counts as a change just as a commit does. REF's copy is written once per
content into the cache (``<cache>/against/<blob>/<name>``), keeping the file name so the runtime loads it the same
way. Every failure is a GitRefError with one line: git missing, not a repository, REF unknown (or absent from a
shallow clone), the file absent at REF.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pytest_edgeperf.errors import EdgeperfError

from ..fileio import atomic_write_bytes


class GitRefError(EdgeperfError):
    """Why REF's version of a model cannot be had, in one line."""


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise GitRefError("git is not installed (--edgeperf-against needs it)") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitRefError(f"git {args[0]} failed: {exc}") from None


def _out(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode(errors="replace").strip()


def _err(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else f"exit status {proc.returncode}"


def check_ref(ref: str, where: Path) -> Path:
    """The repository's top directory, after checking that ``ref`` names a commit in it."""
    if shutil.which("git") is None:
        raise GitRefError("git is not installed (--edgeperf-against needs it)")
    top = _git(["rev-parse", "--show-toplevel"], where)
    if top.returncode != 0:
        raise GitRefError(f"{where} is not in a git repository")
    root = Path(_out(top))
    if _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root).returncode != 0:
        shallow = _out(_git(["rev-parse", "--is-shallow-repository"], root)) == "true"
        if shallow:
            raise GitRefError(f"revision {ref!r} is not in this shallow clone (fetch it, e.g. "
                              f"`git fetch --unshallow` or actions/checkout with fetch-depth: 0)")
        raise GitRefError(f"unknown git revision {ref!r}")
    return root


def model_at_ref(model_file: Path, ref: str, cache_dir: Path) -> Path | None:
    """REF's copy of ``model_file`` (written under ``cache_dir``), or None when the file is the same at REF."""
    model_file = model_file.resolve()
    root = check_ref(ref, model_file.parent)
    try:
        rel = model_file.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise GitRefError(f"{model_file} is outside the git repository {root}") from None
    at_ref = _git(["rev-parse", "--verify", "--quiet", f"{ref}:{rel}"], root)
    if at_ref.returncode != 0:
        raise GitRefError(f"{rel} does not exist at {ref}")
    ref_blob = _out(at_ref)
    now = _git(["hash-object", "--", str(model_file)], root)
    if now.returncode != 0:
        raise GitRefError(f"git hash-object {rel}: {_err(now)}")
    if _out(now) == ref_blob:
        return None
    dest = cache_dir / ref_blob / model_file.name
    if dest.is_file():
        return dest
    shown = _git(["cat-file", "blob", ref_blob], root)
    if shown.returncode != 0:
        raise GitRefError(f"git show {ref}:{rel}: {_err(shown)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, shown.stdout)  # never a half-written model under the final name
    return dest
