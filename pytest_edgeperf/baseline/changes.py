"""What an update did, per test, and its one-line-per-test summary for the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Change:
    """What an update did to one entry: added, updated (with old/new metrics) or unchanged."""

    file: Path
    test: str  # key inside the file, e.g. "test_arch[squeezenet-onnxruntime]"
    kind: str  # "added" | "updated" | "unchanged"
    old_metrics: dict[str, float] = field(default_factory=dict)
    new_metrics: dict[str, float] = field(default_factory=dict)


def describe_changes(changes: list[Change]) -> str:
    """Human summary of an update: one line per test, metric moves as ``fps 30.1 -> 28.4 (-5.6%)``."""
    if not changes:
        return "edgeperf: no baselines recorded"
    lines = []
    for ch in changes:
        head = f"{ch.file}: {ch.test}"
        if ch.kind == "added":
            shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(ch.new_metrics.items()))
            lines.append(f"{head}: added ({shown})" if shown else f"{head}: added")
            continue
        moves = []
        for name in sorted(set(ch.old_metrics) | set(ch.new_metrics)):
            old, new = ch.old_metrics.get(name), ch.new_metrics.get(name)
            if old == new:
                continue
            if old is None:
                moves.append(f"{name} new {_fmt(new)}")
            elif new is None:
                moves.append(f"{name} dropped (was {_fmt(old)})")
            else:
                pct = f" ({(new - old) / abs(old) * 100:+.1f}%)" if old else ""
                moves.append(f"{name} {_fmt(old)} -> {_fmt(new)}{pct}")
        lines.append(f"{head}: {'updated: ' + ', '.join(moves) if moves else 'unchanged metrics'}")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
