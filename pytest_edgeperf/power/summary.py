"""Power summary of one timed window: mean/min/max power, energy, energy per inference and the FoM.

Energy is the trapezoid integral of the samples over exactly [window_start, window_end], with the power at
each edge interpolated from the samples either side (held at the nearest sample when the trace does not
reach past the edge). FoM = (accuracy / 100) x inferences / energy = correctly inferred images per joule,
which is seed 001's accuracy x throughput / power. When the trace cannot support a figure the summary is
``{"unavailable": "<why>"}``: power is never invented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.integrate import trapezoid

from pytest_edgeperf.power.trace import PowerTrace

MIN_SAMPLES_IN_WINDOW = 2
MIN_COVERAGE = 0.5  # at least half the window must lie between real samples, the rest is held flat
# several worker windows: a window too short for its own figure borrows the others' mean power, provided the
# windows with their own figure make up at least this share of the timed time
MIN_MEASURED_SHARE = 0.5
FOM_KEYS = {"top1_pct": "fom_top1_per_j", "top5_pct": "fom_top5_per_j", "map50_pct": "fom_map50_per_j"}


class SampleShortfall(str):
    """Why a window has no figure of its own when the meter worked but sampled too sparsely for that window."""


def _window_energy(trace: PowerTrace, start_s: float, end_s: float, clock: str
                   ) -> tuple[float, np.ndarray] | str:
    """(energy_j, in-window powers) or the reason there is no honest answer (a SampleShortfall if too sparse)."""
    if trace.error:
        return f"power meter failed during the run: {trace.error}"
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or end_s <= start_s:
        return f"empty or invalid timed window [{start_s}, {end_s}]"
    t_s = trace.times_s(clock)
    p_w = trace.power_w()
    order = np.argsort(t_s, kind="stable")
    t_s, p_w = t_s[order], p_w[order]
    inside = (t_s >= start_s) & (t_s <= end_s)
    n_inside = int(inside.sum())
    window_s = end_s - start_s
    if n_inside < MIN_SAMPLES_IN_WINDOW:
        return SampleShortfall(f"only {n_inside} power sample(s) inside the {window_s:.3f} s timed window "
                               f"(need {MIN_SAMPLES_IN_WINDOW}: raise the power sample rate or lengthen the run)")
    first_s = start_s if t_s[0] <= start_s else float(t_s[inside][0])
    last_s = end_s if t_s[-1] >= end_s else float(t_s[inside][-1])
    if (last_s - first_s) < MIN_COVERAGE * window_s:
        return SampleShortfall(f"power samples cover only {100 * (last_s - first_s) / window_s:.0f}% "
                               "of the timed window")
    edge_w = np.interp([start_s, end_s], t_s, p_w)
    times = np.concatenate(([start_s], t_s[inside], [end_s]))
    powers = np.concatenate(([edge_w[0]], p_w[inside], [edge_w[1]]))
    return float(trapezoid(powers, times)), p_w[inside]


def time_weighted_mean_w(trace: PowerTrace, start_s: float, end_s: float,
                         clock: str = "perf") -> float | None:
    """Mean power over a span (energy / time), or None when the trace cannot support it."""
    got = _window_energy(trace, start_s, end_s, clock)
    if isinstance(got, str):
        return None
    return got[0] / (end_s - start_s)


def summarize_power(
    trace: PowerTrace,
    window_start_s: float,
    window_end_s: float,
    inferences: int,
    idle_w: float | None,
    accuracy: dict[str, float] | None = None,
    *,
    clock: str = "perf",
) -> dict[str, Any]:
    """The ``Result.power`` dict for one timed window.

    ``window_*_s`` are on ``clock``: ``"perf"`` (perf_counter, ``Result.window_start_s``) or ``"unix"``
    (wall clock, ``Result.window_start_unix_s``; handy for CSV logs). ``inferences`` is the number of valid
    timed inferences; ``accuracy`` holds percentages keyed ``top1_pct``/``top5_pct``/``map50_pct``.
    """
    if inferences <= 0:
        return {"unavailable": "no valid timed inferences to divide the energy by"}
    got = _window_energy(trace, window_start_s, window_end_s, clock)
    if isinstance(got, SampleShortfall):
        # kept apart from a failed meter: combine_power may fill this window in from its siblings' mean power
        return {"unavailable": str(got), "too_few_samples": True, "window_s": window_end_s - window_start_s,
                "inferences": int(inferences), "idle_w": None if idle_w is None else float(idle_w),
                "meter": trace.meter}
    if isinstance(got, str):
        return {"unavailable": got}
    energy_j, inside_w = got
    if not energy_j > 0:
        return {"unavailable": f"meter {trace.meter} gave a non-positive energy ({energy_j:.6g} J)"}
    return _figures(energy_j, window_end_s - window_start_s, int(inferences), float(inside_w.min()),
                    float(inside_w.max()), None if idle_w is None else float(idle_w), int(inside_w.size),
                    trace.meter, accuracy)


def _figures(energy_j: float, window_s: float, inferences: int, power_min_w: float, power_max_w: float,
             idle_w: float | None, samples: int, meter: str, accuracy: dict[str, float] | None) -> dict[str, Any]:
    """The summary dict of one window or of several added up, with the FoM for each accuracy figure given."""
    out: dict[str, Any] = {
        "power_mean_w": energy_j / window_s,
        "power_min_w": power_min_w,
        "power_max_w": power_max_w,
        "idle_w": idle_w,
        "energy_j": energy_j,
        "energy_per_inference_j": energy_j / inferences,
        "samples": samples,
        "meter": meter,
        "window_s": window_s,
        "inferences": inferences,
    }
    for acc_key, fom_key in FOM_KEYS.items():
        value = (accuracy or {}).get(acc_key)
        if value is not None and math.isfinite(value):
            out[fom_key] = (float(value) / 100.0) * inferences / energy_j
    return out


def combine_power(summaries: list[dict[str, Any]], accuracy: dict[str, float] | None = None) -> dict[str, Any]:
    """One summary from the timed windows of several worker processes: energies and inferences add up.

    Mean power is total energy / total window time, the FoM uses all inferences. A window that was too short
    for a figure of its own (``too_few_samples``: the meter worked, it just sampled too rarely for, say, a
    0.2 s window) is given the measured windows' mean power, the same model doing the same work, as long as
    the measured windows make up at least half the timed time; ``estimated_windows`` says how many were. Any
    other gap (the meter failed) makes the whole unavailable with that window's reason: a partial energy
    would understate it.
    """
    if not summaries:
        return {"unavailable": "no timed window"}
    reasons = {s.get("unavailable") for s in summaries}
    if len(reasons) == 1 and None not in reasons:
        return {"unavailable": str(reasons.pop())}  # the same for all (the meter failed): no process to name

    def which(index: int) -> str:
        return f"process {index + 1} of {len(summaries)}: " if len(summaries) > 1 else ""

    measured = [s for s in summaries if "unavailable" not in s]
    short = [s for s in summaries if s.get("too_few_samples")]
    for index, summary in enumerate(summaries):
        if "unavailable" in summary and not summary.get("too_few_samples"):
            return {"unavailable": which(index) + summary["unavailable"]}
    measured_s = sum(s["window_s"] for s in measured)
    short_s = sum(s["window_s"] for s in short)
    if not measured or measured_s < MIN_MEASURED_SHARE * (measured_s + short_s):
        index = next(i for i, s in enumerate(summaries) if s.get("too_few_samples"))
        lead = which(index) if len(short) == 1 else f"{len(short)} of {len(summaries)} processes, e.g. {which(index)}"
        return {"unavailable": lead + summaries[index]["unavailable"]}
    measured_mean_w = sum(s["energy_j"] for s in measured) / measured_s
    energy_j = sum(s["energy_j"] for s in measured) + measured_mean_w * short_s
    window_s = measured_s + short_s
    inferences = sum(s["inferences"] for s in measured + short)
    out = _figures(energy_j, window_s, int(inferences), min(s["power_min_w"] for s in measured),
                   max(s["power_max_w"] for s in measured), summaries[0]["idle_w"],
                   sum(s["samples"] for s in measured), summaries[0]["meter"], accuracy)
    if len(summaries) > 1:
        out["windows"] = len(summaries)
    if short:
        out["estimated_windows"] = len(short)
        out["estimated_s"] = short_s
    return out
