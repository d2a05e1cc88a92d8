"""Benchmark of the history's change-point detection (``edgeperf history changes``) on real measurements.

Each "run" is a short block of real timing of this project's ``zoo:tiny_cnn`` with ONNX Runtime (one thread,
in-process): ``--samples`` samples, each the time of ``WORK`` (20) back-to-back inferences, each followed by the
time of ``REF_WORK`` inferences of a second, unchanged session (the machine-speed reference, as the plugin times
one between samples). The run's values are fps = WORK / fast-half mean sample time (the location statistic the
plugin's verdict uses) and reference_ms = the reference's fast-half mean. Three series of ``--runs`` (200) runs
are measured interleaved (run i of each series back to back, so the machine's own drift reaches all three alike):

- unchanged: 20 inferences per sample throughout;
- step: from run 120 on, 22 inferences per sample (1.1x the work: a 10% slower "model");
- drift: from run 1 on, each sample also busy-waits 0.2% x run-number of the calibrated sample time (real extra
  time inside the timed sample, growing by 0.2% of the work per run).

Every run is written into a fresh SQLite history through ``pytest_edgeperf.history.record`` as a results payload
(fps and latency_p50_ms), with a synthetic commit id per run index, then ``changes.analyse`` judges the fps
series exactly as ``edgeperf history changes`` does. Reported: where the step was found (pass: within 3 runs of
120, a regression), change points on the unchanged series (pass: no regression), and whether the drift is
reported (pass: at least one regression; consecutive same-direction change points of a drift are merged into one
reported drift "from run X to run Y, total Z%", see ``changes.merge_drifts``). ``--site DIR`` also writes the
dashboard of the result.

Usage:  python benchmarks/bench_changepoints.py       (a rep: ~40 s on an idle 2-core VM, 2-4 min at load 10-16)
        python benchmarks/bench_changepoints.py --reps 3 --site /tmp/site
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEP_AT = 120
WORK = 20
STEP_WORK = 22  # 1.1x
DRIFT_PER_RUN = 0.002
REF_WORK = WORK  # as long as a sample, so preemption on a busy machine hits both alike


def _session(cache: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    from pytest_edgeperf.models.cache import ModelCache

    stem = ModelCache(cache).zoo("tiny_cnn")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(stem.with_suffix(".onnx")), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return sess, {inp.name: x}


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _block(sess, ref, feed, samples: int, work: int, spin_s: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """One run: the fast-half mean time (s) of ``samples`` samples of ``work`` inferences (+ ``spin_s`` busy work),
    and the fast-half mean time (ms) of the reference (``REF_WORK`` inferences of an unchanged session) timed after
    each sample, as the plugin's machine-speed reference is."""
    times, ref_times = np.empty(samples), np.empty(samples)
    run, ref_run = sess.run, ref.run
    for i in range(samples):
        t0 = time.perf_counter()
        for _ in range(work):
            run(None, feed)
        if spin_s:
            _spin(spin_s)
        t1 = time.perf_counter()
        for _ in range(REF_WORK):
            ref_run(None, feed)
        t2 = time.perf_counter()
        times[i], ref_times[i] = t1 - t0, t2 - t1
    half = max(1, samples // 2)
    return float(np.sort(times)[:half].mean()), float(np.sort(ref_times)[:half].mean() * 1e3)


def _payload(series: str, run: int, fps: float, ref_ms: float, created: float) -> dict:
    commit = hashlib.sha1(f"bench-commit-{run}".encode()).hexdigest()
    return {"schema_version": 1, "tool": "pytest-edgeperf", "version": "bench", "created_unix": created,
            "device": {"profile": "bench-host", "model": None},
            "environment": {"git_commit": commit, "hostname": "bench"},
            "results": [{"test_id": f"benchmarks/bench_changepoints.py::tiny_cnn[{series}]",
                         "framework": "onnxruntime", "model": "zoo:tiny_cnn", "device": "bench-host",
                         "status": "ok", "quick": False, "environment": {"runtime_version": "bench"},
                         "summary": {"fps": fps, "latency_p50_ms": WORK / fps * 1e3,
                                     "reference_ms": ref_ms}}]}


def measure(runs: int, samples: int, cache: Path) -> dict[str, list[float]]:
    sess, feed = _session(cache)
    ref, _ = _session(cache)
    for _ in range(200):  # warm-up
        sess.run(None, feed)
        ref.run(None, feed)
    base_s = statistics.median(_block(sess, ref, feed, samples, WORK, 0.0)[0] for _ in range(5))
    out: dict[str, list[tuple[float, float]]] = {"unchanged": [], "step": [], "drift": []}
    for r in range(runs):
        for name, work, spin_s in (("unchanged", WORK, 0.0), ("step", STEP_WORK if r >= STEP_AT else WORK, 0.0),
                                   ("drift", WORK, DRIFT_PER_RUN * (r + 1) * base_s)):
            fast_s, ref_ms = _block(sess, ref, feed, samples, work, spin_s)
            out[name].append((WORK / fast_s, ref_ms))
    return out


def judge(series: dict[str, list[tuple[float, float]]], db: Path, site: Path | None) -> dict[str, list]:
    from pytest_edgeperf.history.changes import Filters, analyse
    from pytest_edgeperf.history.db import connect, resolve_url
    from pytest_edgeperf.history.record import GitInfo, record_payload

    engine = connect(resolve_url(str(db), Path.cwd()))
    t0 = 1.8e9
    for name, values in series.items():
        for r, (fps, ref_ms) in enumerate(values):
            payload = _payload(name, r, fps, ref_ms, t0 + r * 60)
            record_payload(engine, payload, GitInfo(payload["environment"]["git_commit"], "bench"))
    analysis = analyse(engine, Filters(metrics=("fps",)))
    found: dict[str, list] = {name: [] for name in series}
    for cp in analysis.changes:
        found[cp.key.test_id.rsplit("[", 1)[1].rstrip("]")].append(cp)
    if site is not None:
        from pytest_edgeperf.history.dashboard import write_site

        write_site(engine, site)
    engine.dispose()
    return found


def _where(cp) -> str:  # type: ignore[no-untyped-def]
    """Runs numbered from 0 as this benchmark counts them (the step is at run 120)."""
    if cp.is_drift:
        return f"drift over {cp.steps} steps from run {cp.index} to run {cp.last_index}"
    return f"run {cp.index}"


def _noise_pct(v: np.ndarray) -> float:
    diffs = np.diff(v) / v[:-1] * 100
    return float(np.median(np.abs(diffs - np.median(diffs)))) * 1.4826 / np.sqrt(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=41, help="samples per run (each WORK inferences)")
    parser.add_argument("--reps", type=int, default=1, help="repeat the whole experiment")
    parser.add_argument("--site", type=Path, help="write the dashboard of the (last) history here")
    parser.add_argument("--save", type=Path, help="save the measured series (JSON) to re-judge with --load")
    parser.add_argument("--load", type=Path, help="judge series saved by --save instead of measuring")
    args = parser.parse_args()
    cache = Path(os.environ.get("EDGEPERF_CACHE") or Path.home() / ".cache" / "pytest-edgeperf")
    ok = True
    saved: list[dict] = []
    for rep in range(1, args.reps + 1):
        t = time.perf_counter()
        if args.load:
            series = {k: [tuple(p) for p in v] for k, v in json.loads(args.load.read_text())[rep - 1].items()}
        else:
            series = measure(args.runs, args.samples, cache)
            saved.append(series)
            if args.save:  # after every rep, so a long run stopped early keeps what it measured
                args.save.write_text(json.dumps(saved))
        took = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            found = judge(series, Path(tmp) / "history.db", args.site)
        runs = len(series["step"])
        print(f"rep {rep}: {runs} runs x 3 series " + (f"loaded from {args.load}" if args.load else
                                                      f"measured in {took:.0f} s"))
        for name, values in series.items():
            v = np.asarray([fps for fps, _ in values])
            rel = v * np.asarray([ref for _, ref in values])
            sd, sd_rel = _noise_pct(v), _noise_pct(rel)
            cps = sorted(found[name], key=lambda c: c.index)
            shown = ", ".join(f"{_where(c)} {c.kind} {c.change_pct:+.1f}% (p={c.p_value:.1g})" for c in cps)
            print(f"  {name:9s}: fps median {np.median(v):8.1f}, run-to-run noise {sd:.2f}% raw, {sd_rel:.2f}% "
                  f"relative to the reference (robust sd); "
                  f"{len(cps)} change point(s){': ' + shown if shown else ''}")
        step = [c for c in found["step"] if c.kind == "regression"]
        near = [c for c in step if abs(c.index - STEP_AT) <= 3]
        step_ok = bool(near)
        unchanged_ok = not [c for c in found["unchanged"] if c.kind == "regression"]
        drift = [c for c in found["drift"] if c.kind == "regression"]
        drift_ok = bool(drift)
        print(f"  step found within 3 runs of {STEP_AT}: {'PASS' if step_ok else 'FAIL'}"
              + (f" (at run {near[0].index}, {near[0].change_pct:+.1f}%)" if near else ""))
        print(f"  unchanged series, no regression change point: {'PASS' if unchanged_ok else 'FAIL'}")
        print(f"  drift of {DRIFT_PER_RUN * 100:.1f}%/run reported as a change: {'PASS' if drift_ok else 'FAIL'}"
              + (f" ({len(drift)} regression(s) reported: "
                 + ", ".join(f"{_where(c)}, total {c.change_pct:+.1f}%" for c in drift) + ")" if drift else ""))
        ok = ok and step_ok and unchanged_ok and drift_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
