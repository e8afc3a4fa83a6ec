"""Benchmark the latency gates on real TensorFlow models.

    .venv/bin/python benchmarks/latency_gate.py [--trials 20] [--rounds 30]
    .venv/bin/python benchmarks/latency_gate.py --stored [--goldens 3] [--trials 3]

A latency gate is only worth having if it (1) never cries wolf on identical models and
(2) always catches a big slowdown. This builds small TF models (a chain of matmul+tanh
layers on a fixed input), makes slower variants by repeating the layer, and runs
``gate_side_by_side`` over and over:

* identical vs identical (two separate instances)  goal: 0 false alarms
* baseline vs ~1.5x slower                          goal: every one detected ("fail")
* baseline vs ~1.2x slower                          reported (limit is 1.10: a real
  slowdown, but close enough to the limit that some "inconclusive" is honest)
* baseline vs one extra layer (~1.07x, *within* the 1.10 limit)
                                                    goal: 0 failures (a slowdown the
  config allows must not fail the build either; the hardest false-alarm case)

The repeat counts are calibrated at start from bare-TensorFlow call times, and the bare-TF
slowdown ratios are printed, so the effect sizes are measured, not assumed. The bare-TF
median call time is also compared with the p50 the gate measured (ratio ~1 means the gate
adds no overhead or bias of its own).

TensorFlow runs with 1 intra-op and 1 inter-op thread, set before it executes anything
(the settings are frozen after the first op). On a shared 2-core machine, multi-threaded
ops make each call's time depend on whether another process holds the second core, which
is noise the gate then has to see through; single-threaded ops measure the model's work.
It is also what a careful user sets for latency goldens, and the fingerprint records it.

**Stored mode** (``--stored``) runs the real CLI, one process per command as in CI: a chain
model is saved as a SavedModel with slower variants (``--slowdowns``, default 1.3x and 1.5x:
depth grown until the slowdown in process CPU time per call, timed in bare TensorFlow with
the tool's own thread settings, reaches the target at every batch size; the wall-time
slowdown in ABBA rounds is printed beside it); ``--goldens`` goldens are recorded from the
unchanged model in separate processes; then ``--trials`` rounds each run ``compare`` as a
user runs it by default (the golden's model is on disk, so it self-checks; ``--plain``:
``compare --no-self-check``) of the unchanged model (a re-export: same weights,
other files) and of each slower variant against every golden, in a rotated order. Each
compare reports, per batch size, the plain stored gate's ratio and verdict (on CPU time,
scaled by the calibration workload run between the timed calls: ``uncorrected_ratio`` /
``uncorrected_verdict``), the CPU and wall ratios as recorded, the calibration ratios, the
machine factor from the self-check, and the self-checked (side-by-side) ratio and verdict.
It prints, per golden and batch size, the medians of the unchanged model, the fail counts
of the slowdowns with and without the self-check, and the load average over the run;
``--rows-json`` keeps every row. The plain figures come from the same runs as the
self-checked ones (the plain measurement is made first in each run, as a compare without
``--self-check`` makes it), so both gates are seen on the same machine states.

Not part of the test suite: it takes a few minutes (``--stored``: ~30 s per command on a
loaded 2-core box).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapshot_tool.latency.fingerprint import calibrate, environment_fingerprint
from snapshot_tool.latency.gate import gate_side_by_side
from snapshot_tool.latency.measure import timed_call

WIDTH = 256  # layer width
BATCH = 64  # rows of the fixed input
BASE_DEPTH = 10  # layers in the baseline model (~1-2 ms per call single-threaded)
MAX_DRIFT = 0.10  # the default [latency] max_drift


def build_model(tf: Any, depth: int) -> Callable[[], object]:
    """A tf.Module whose tf.function runs ``depth`` matmul+tanh layers; returns a callable."""

    class Chain(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            # Same seed for every model: identical weights, so work differs only by depth.
            rng = np.random.default_rng(0)
            w = rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)
            self.w = tf.constant(w.astype(np.float32))
            self.run = tf.function(
                self._run, input_signature=[tf.TensorSpec([BATCH, WIDTH], tf.float32)],
                autograph=False,
            )

        def _run(self, x: Any) -> Any:
            h = x
            for _ in range(depth):  # unrolled at trace time: depth really is repeated work
                h = tf.tanh(tf.matmul(h, self.w))
            return h

    model = Chain()
    x = tf.constant(np.random.default_rng(1).standard_normal((BATCH, WIDTH)).astype(np.float32))
    return lambda: model.run(x).numpy()  # materialize, as the real tool's runner does


def bare_median_ns(fn: Callable[[], object], calls: int = 300) -> float:
    """Median of plain back-to-back timed calls after a short warm-up: the bare-TF figure."""
    for _ in range(30):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times))


def bare_ratio(base: Callable[[], object], cand: Callable[[], object], calls: int = 300) -> float:
    """Bare-TF slowdown: median of alternating calls, candidate over baseline."""
    for _ in range(30):
        base()
        cand()
    tb: list[int] = []
    tc: list[int] = []
    for _ in range(calls):
        for fn, acc in ((base, tb), (cand, tc)):
            t0 = time.perf_counter_ns()
            fn()
            acc.append(time.perf_counter_ns() - t0)
    return float(np.median(tc) / np.median(tb))


def calibrate_depths(
    tf: Any, base: Callable[[], object], targets: tuple[float, ...]
) -> tuple[dict[float, int], list[str]]:
    """Depths whose bare-TF slowdown over ``base`` is closest to each target.

    A linear fit t = a + b*depth (per-call overhead + per-layer cost) gives a first guess;
    then the neighbouring depths are timed *interleaved* with the baseline and the closest
    ratio wins, so load that changes while probing cannot skew the effect sizes.
    """
    probe = (BASE_DEPTH // 2, BASE_DEPTH, 2 * BASE_DEPTH)
    t = [bare_median_ns(build_model(tf, d)) for d in probe]
    b, a = np.polyfit(probe, t, 1)  # slope per layer, fixed per-call overhead
    base_t = a + b * BASE_DEPTH
    points = ", ".join(f"{d}: {v / 1e3:.0f} us" for d, v in zip(probe, t, strict=True))
    lines = [f"bare-TF fit: depth {points} -> {b / 1e3:.1f} us/layer + {a / 1e3:.0f} us overhead"]
    depths = {}
    for r in targets:
        guess = max(BASE_DEPTH + 1, round((r * base_t - a) / b))
        tried = {d: bare_ratio(base, build_model(tf, d), calls=200)
                 for d in range(max(BASE_DEPTH + 1, guess - 2), guess + 3)}
        depths[r] = min(tried, key=lambda d: abs(tried[d] - r))
        lines.append(f"  target {r}x: guess depth {guess}, interleaved ratios "
                     + ", ".join(f"{d}: {v:.3f}" for d, v in tried.items())
                     + f" -> depth {depths[r]}")
    return depths, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=None,
                   help="comparisons per scenario (default 20; --stored: rounds over the "
                        "goldens, default 3)")
    p.add_argument("--rounds", type=int, default=30, help="ABBA rounds per comparison")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per comparison")
    p.add_argument("--stored", action="store_true",
                   help="benchmark stored mode through the CLI instead (see the docstring)")
    p.add_argument("--goldens", type=int, default=3, help="--stored: goldens to record")
    p.add_argument("--stored-max-drift", type=float, default=0.25,
                   help="--stored: [latency] stored_max_drift for the compares")
    p.add_argument("--slowdowns", type=float, nargs="+", default=[1.3, 1.5],
                   help="--stored: slowdown variants to compare (default 1.3 1.5)")
    p.add_argument("--rows-json", type=Path, default=None,
                   help="--stored: also write every compare's per-batch JSON row here")
    p.add_argument("--plain", action="store_true",
                   help="--stored: compare --no-self-check (plain stored mode only)")
    args = p.parse_args(argv)
    if args.stored:
        args.trials = args.trials or 3
        return stored_main(args)
    args.trials = args.trials or 20

    from snapshot_tool.models.base import import_tf

    tf = import_tf()  # quiet: TensorFlow's native start-up chatter would bury the table

    # Before TF executes anything: these cannot be changed after the first op.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    fp = environment_fingerprint({"intra_op": 1, "inter_op": 1})
    print(f"environment: {fp['cpu_model']}, {fp['logical_cpus']} logical CPUs, "
          f"quota {fp['cpu_quota']}, TF {fp['tensorflow']}, threads {fp['threads']}, "
          f"python {fp['python']}")
    print(f"calibration workload: {calibrate() * 1e3:.2f} ms")
    print(f"model: {BASE_DEPTH} x (matmul [{BATCH}x{WIDTH}]@[{WIDTH}x{WIDTH}] + tanh), "
          f"limit {1 + MAX_DRIFT:.2f}x, {args.rounds} ABBA rounds (+{2 * args.rounds} "
          f"on inconclusive), {args.trials} trials per scenario")

    base = build_model(tf, BASE_DEPTH)
    depths, fit_lines = calibrate_depths(tf, base, (1.5, 1.2))
    depths[1.07] = BASE_DEPTH + 1
    for line in fit_lines:
        print(line)
    scenarios: dict[str, Callable[[], object]] = {
        "identical": build_model(tf, BASE_DEPTH),
        "1.5x": build_model(tf, depths[1.5]),
        "1.2x": build_model(tf, depths[1.2]),
        "1.07x": build_model(tf, depths[1.07]),
    }
    bare_base = bare_median_ns(base)
    true_ratio = {name: bare_ratio(base, fn) for name, fn in scenarios.items()}
    print(f"bare-TF baseline median call: {bare_base / 1e3:.0f} us")
    for name in scenarios:
        d = BASE_DEPTH if name == "identical" else depths[float(name[:-1])]
        print(f"  {name:<9} depth {d:>2}: measured bare-TF slowdown {true_ratio[name]:.3f}x")
    print()

    verdicts: dict[str, Counter[str]] = {name: Counter() for name in scenarios}
    walls: dict[str, list[float]] = {name: [] for name in scenarios}
    ratios: dict[str, list[float]] = {name: [] for name in scenarios}
    reruns: Counter[str] = Counter()
    gate_p50: list[float] = []
    started = time.perf_counter()
    # Scenarios take turns within each trial, so slow drift of the machine over the
    # benchmark's minutes hits all of them alike.
    for trial in range(args.trials):
        for name, cand in scenarios.items():
            t0 = time.perf_counter()
            check = gate_side_by_side(base, cand, BATCH, MAX_DRIFT,
                                              rounds=args.rounds, seed=trial)
            walls[name].append(time.perf_counter() - t0)
            verdicts[name][check.verdict] += 1
            ratios[name].append(check.ratio)
            reruns[name] += check.rounds > args.rounds
            gate_p50.append(check.baseline.p50)
            if args.verbose:
                print(f"  trial {trial:>2} {name:<9} {check.verdict:<12} ratio {check.ratio:.3f} "
                      f"CI [{check.ci_low:.3f}, {check.ci_high:.3f}] p={check.p_value:.2g} "
                      f"rounds {check.rounds} {walls[name][-1]:.2f}s")

    n = args.trials
    print(f"{'scenario':<10} {'bare-TF':>8} {'fail':>5} {'incon':>6} {'pass':>5} "
          f"{'re-run':>6} {'median ratio':>13} {'wall/cmp':>9}")
    for name in scenarios:
        v = verdicts[name]
        print(f"{name:<10} {true_ratio[name]:>7.3f}x {v['fail']:>5} {v['inconclusive']:>6} "
              f"{v['pass']:>5} {reruns[name]:>6} {statistics.median(ratios[name]):>12.3f}x "
              f"{statistics.median(walls[name]):>8.2f}s")
    print()
    fa = verdicts["identical"]["fail"]
    fa_within = verdicts["1.07x"]["fail"]
    det15 = verdicts["1.5x"]["fail"]
    det12 = verdicts["1.2x"]["fail"]
    print(f"false alarms (identical):  {fa}/{n}   goal 0    {'OK' if fa == 0 else 'MISSED'}")
    print(f"detected 1.5x slowdowns:   {det15}/{n}  goal {n}/{n} "
          f"{'OK' if det15 == n else 'MISSED'}")
    print(f"detected 1.2x slowdowns:   {det12}/{n}  (reported; "
          f"{verdicts['1.2x']['inconclusive']} inconclusive, {verdicts['1.2x']['pass']} pass)")
    print(f"failures within limit (+1 layer, {true_ratio['1.07x']:.3f}x): {fa_within}/{n}  goal 0 "
          f"{'OK' if fa_within == 0 else 'MISSED'}")
    med_gate = statistics.median(gate_p50)
    print(f"bare-TF median call {bare_base / 1e3:.0f} us vs gate-measured baseline p50 "
          f"{med_gate / 1e3:.0f} us: ratio {med_gate / bare_base:.3f}")
    print(f"total {time.perf_counter() - started:.0f} s for {len(scenarios) * n} comparisons")
    return 0 if fa == 0 and fa_within == 0 and det15 == n else 1


# --------------------------------------------------------------------------- stored mode

STORED_WIDTH = 512
STORED_SIZES = (1, 16)
# 24 layers of 512x512: ~1 ms per call at batch 1 and ~7 ms at batch 16 on an idle core, so
# the per-call overhead (~0.2 ms) is small and depth scales the time at both batch sizes.
STORED_BASE_DEPTH = 24


def save_chain(tf: Any, path: Path, depth: int) -> Path:
    """A SavedModel of ``depth`` matmul+tanh layers whose output does not depend on depth
    (so every variant passes the outputs check and only latency differs)."""

    class Chain(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(0)
            w = rng.standard_normal((STORED_WIDTH, STORED_WIDTH)) / np.sqrt(STORED_WIDTH)
            self.w = tf.Variable(w.astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, STORED_WIDTH], tf.float32,
                                                    name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            h = x
            for _ in range(depth):
                h = tf.tanh(tf.matmul(h, self.w))
            return {"y": x * 2.0 + 0.0 * tf.reduce_sum(h)}

    m = Chain()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


def _loaded_fn(tf: Any, path: Path, bs: int) -> Callable[[], object]:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = tf.constant(np.random.default_rng(1).standard_normal((bs, STORED_WIDTH))
                    .astype(np.float32))
    return lambda: {k: v.numpy() for k, v in fn(x=x).items()}


def abba_ratio(tf: Any, base: Path, path: Path, bs: int) -> float:
    """Slowdown of ``path`` over ``base`` in bare TensorFlow, timed in ABBA rounds with the
    min of each side's two calls (the side-by-side gate's estimator: on a loaded box the
    plain median of alternating calls moved by 2x between two runs)."""
    check = gate_side_by_side(_loaded_fn(tf, base, bs), _loaded_fn(tf, path, bs), bs, 0.0,
                              rounds=40)
    return check.ratio


def cpu_ratio(tf: Any, base: Path, path: Path, bs: int, calls: int = 60) -> float:
    """Slowdown of ``path`` over ``base`` in process CPU time per call (all threads), in
    bare TensorFlow: alternating calls after a warm-up, ratio of the medians. CPU time is
    what the stored gate judges on, and the extra layers' share of it is not their share of
    wall time (the pool's second thread works on part of each call only)."""
    fns = (_loaded_fn(tf, base, bs), _loaded_fn(tf, path, bs))
    for _ in range(20):
        for fn in fns:
            fn()
    cpu: tuple[list[int], list[int]] = ([], [])
    for _ in range(calls):
        for side, fn in enumerate(fns):
            cpu[side].append(timed_call(fn)[1])
    return float(np.median(cpu[1]) / np.median(cpu[0]))


def slowdowns(tf: Any, base: Path, path: Path, bs: int) -> tuple[float, float]:
    """(wall, CPU) slowdown of ``path`` over ``base`` at batch ``bs`` in bare TensorFlow."""
    return abba_ratio(tf, base, path, bs), cpu_ratio(tf, base, path, bs)


def slow_variant(tf: Any, root: Path, base: Path, target: float) -> tuple[int, Path]:
    """A variant at least ``target`` times slower than ``base`` in CPU time per call (what
    the stored gate judges on) at every stored batch size in bare TensorFlow: depth grows
    from ``target`` x the base depth until it is, since the per-call overhead makes a batch
    of 1 scale less than the depth. Each step adds the layers the last measurement asks
    for, at most a fifth more: on a loaded box one noisy probe once tripled the depth."""
    depth = round(STORED_BASE_DEPTH * target)
    for _ in range(6):
        path = save_chain(tf, root / f"slow_{target:g}_{depth}", depth)
        worst = min(cpu_ratio(tf, base, path, bs, calls=100) for bs in STORED_SIZES)
        if worst >= target:
            break
        per_layer = max(worst - 1.0, 0.05) / (depth - STORED_BASE_DEPTH)
        step = math.ceil((target - worst) / per_layer)
        depth += max(1, min(step, math.ceil(depth / 5)))
    return depth, path


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snapshot_tool", *args], env=env,
                          capture_output=True, text=True, check=False)


def _load() -> float:
    return os.getloadavg()[0]


def stored_main(args: argparse.Namespace) -> int:
    from snapshot_tool.latency.fingerprint import calibrate, fix_threads
    from snapshot_tool.models.base import import_tf

    tf = import_tf()
    threads = fix_threads()  # the tool's own settings, so the bare-TF ratios are its ratios
    root = Path(tempfile.mkdtemp(prefix="latency_stored_"))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]),
               TF_CPP_MIN_LOG_LEVEL="3")
    loads: list[float] = [_load()]
    try:
        base = save_chain(tf, root / "base", STORED_BASE_DEPTH)
        models = {"unchanged": save_chain(tf, root / "base_reexport", STORED_BASE_DEPTH)}
        depths = {}
        for r in args.slowdowns:
            depths[r], models[f"{r:g}x"] = slow_variant(tf, root, base, r)
        print(f"threads {threads}, calibration workload {calibrate() * 1e3:.2f} ms, "
              f"load average {_load():.2f}")
        print(f"model: {STORED_BASE_DEPTH} x (matmul [bs x {STORED_WIDTH}] @ "
              f"[{STORED_WIDTH} x {STORED_WIDTH}] + tanh), batch sizes {STORED_SIZES}")
        true: dict[str, dict[int, tuple[float, float]]] = {}
        for name, path in models.items():
            true[name] = {bs: slowdowns(tf, base, path, bs) for bs in STORED_SIZES}
            depth = STORED_BASE_DEPTH if name == "unchanged" else depths[float(name[:-1])]
            print(f"  {name:<9} depth {depth:>3}: bare-TF slowdown (wall ABBA / CPU) "
                  + ", ".join(f"batch {bs} {w:.3f}x / {c:.3f}x"
                              for bs, (w, c) in true[name].items()))
        cfg = root / "snapshot.toml"
        cfg.write_text(f"[latency]\nstored_max_drift = {args.stored_max_drift}\n")
        sizes = ",".join(str(b) for b in STORED_SIZES)
        goldens = []
        for g in range(args.goldens):
            golden = root / f"golden_{g}.h5"
            res = _run(["record", str(base), "--golden", str(golden), "--num-samples",
                        str(max(STORED_SIZES)), "--batch-size", str(max(STORED_SIZES)),
                        "--latency-batch-sizes", sizes], env)
            loads.append(_load())
            if res.returncode != 0:
                print(f"record failed: {res.stderr.strip()[-500:]}")
                return 2
            goldens.append(golden)
            print(f"recorded golden {g} (load average {loads[-1]:.2f})")
        rows: list[dict[str, Any]] = []
        names = list(models)
        started = time.perf_counter()
        for trial in range(args.trials):
            for gi, golden in enumerate(goldens):
                # Rotate the order so no candidate always runs first after a record.
                k = (trial + gi) % len(names)
                for name in names[k:] + names[:k]:
                    report = root / "r.json"
                    t0 = time.perf_counter()
                    check = ["--no-self-check"] if args.plain else []
                    res = _run(["compare", str(models[name]), "--golden", str(golden),
                                *check, "--config", str(cfg), "--report-json",
                                str(report)], env)
                    loads.append(_load())
                    if not report.exists():
                        print(f"compare failed: {res.stderr.strip()[-500:]}")
                        return 2
                    for b in json.loads(report.read_text())["latency"]["batches"]:
                        rows.append(dict(b, golden=gi, candidate=name, trial=trial,
                                         load=loads[-1], wall=time.perf_counter() - t0))
                        if args.verbose:
                            print(f"  trial {trial} golden {gi} {name:<9} batch "
                                  f"{b['batch_size']:>2}: stored "
                                  f"{b['uncorrected_ratio']:.3f} ({b['uncorrected_verdict']})"
                                  f", wall {b['wall_ratio']:.3f}, cpu {_f(b['cpu_ratio'])}, "
                                  f"calibration wall {_f(b['calibration_ratio'])} cpu "
                                  f"{_f(b['calibration_cpu_ratio'])}, "
                                  f"machine {_f(b['machine_factor'])}, corrected "
                                  f"{b['ratio']:.3f} ({b['verdict']}), load {loads[-1]:.1f}, "
                                  f"{rows[-1]['wall']:.0f} s", flush=True)
                    report.unlink()
        if args.rows_json is not None:
            args.rows_json.write_text(json.dumps({"bare": true, "rows": rows}, indent=1))
        print_stored(rows, args, true, loads, time.perf_counter() - started)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):>6.3f}x [{min(values):.3f}, {max(values):.3f}]"


def _in_band(rows: list[dict[str, Any]]) -> str:
    """How many (golden, batch size) medians of the unchanged model are within 0.95-1.05,
    plain and (when the compares self-checked) self-checked."""
    plain = checked = cells = 0
    for key in sorted({(r["golden"], r["batch_size"]) for r in rows}):
        rs = [r for r in rows if r["candidate"] == "unchanged"
              and (r["golden"], r["batch_size"]) == key]
        if not rs:
            continue
        cells += 1
        plain += 0.95 <= statistics.median(r["uncorrected_ratio"] for r in rs) <= 1.05
        if all(r["machine_factor"] is not None for r in rs):
            checked += 0.95 <= statistics.median(r["ratio"] for r in rs) <= 1.05
    self_checked = any(r["machine_factor"] is not None for r in rows)
    return (f"medians of the unchanged model within 0.95-1.05: plain {plain}/{cells}"
            + (f", self-checked {checked}/{cells}" if self_checked else ""))


def print_stored(rows: list[dict[str, Any]], args: argparse.Namespace,
                 true: dict[str, dict[int, tuple[float, float]]], loads: list[float],
                 wall: float) -> None:
    def sel(**kw: Any) -> list[dict[str, Any]]:
        return [r for r in rows if all(r[k] == v for k, v in kw.items())]

    limit = 1 + args.stored_max_drift
    print()
    print(f"unchanged model, median [min, max] over {args.trials} compares per golden "
          f"(stored limit {limit:.2f}x). plain: the plain stored gate's ratio (CPU time, "
          "scaled by the calibration workload's CPU time); CPU and wall: as recorded")
    print(f"{'golden':>6} {'batch':>5} {'plain':>23} {'CPU':>23} {'wall':>23} "
          f"{'cal CPU':>8} {'machine':>8} {'self-checked':>23}")
    for g in range(args.goldens):
        for bs in STORED_SIZES:
            rs = sel(golden=g, candidate="unchanged", batch_size=bs)
            if not rs:
                continue

            def col(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
                return [r[key] for r in rs if r[key] is not None]

            plain, cpu, walls = col("uncorrected_ratio"), col("cpu_ratio"), col("wall_ratio")
            cal, mf, cor = col("calibration_cpu_ratio"), col("machine_factor"), col("ratio")
            print(f"{g:>6} {bs:>5} {_spread(plain):>23} {_spread(cpu) if cpu else '-':>23} "
                  f"{_spread(walls):>23} {_f(statistics.median(cal) if cal else None):>8} "
                  f"{_f(statistics.median(mf) if mf else None):>8} "
                  f"{_spread(cor) if mf else '-':>23}")
    print(_in_band(rows))
    print()
    print("verdicts per compare (worst over batch sizes), plain stored gate / with --self-check:")
    order = ("fail", "inconclusive", "advisory", "pass")
    for name in true:
        plain: Counter[str] = Counter()
        fixed: Counter[str] = Counter()
        for g in range(args.goldens):
            for t in range(args.trials):
                rs = sel(golden=g, candidate=name, trial=t)
                if rs:
                    plain[min((r["uncorrected_verdict"] for r in rs), key=order.index)] += 1
                    fixed[min((r["verdict"] for r in rs), key=order.index)] += 1
        n = sum(plain.values())
        bare = ", ".join(f"{w:.2f}x/{c:.2f}x" for w, c in true[name].values())
        print(f"  {name:<9} (bare-TF wall/CPU {bare}): plain fail {plain['fail']}/{n} "
              f"(inconclusive {plain['inconclusive']}, pass {plain['pass']}); "
              f"self-check fail {fixed['fail']}/{n} (inconclusive {fixed['inconclusive']}, "
              f"pass {fixed['pass']})")
    print()
    print(f"load average (1 min) over the run: min {min(loads):.2f}, median "
          f"{statistics.median(loads):.2f}, max {max(loads):.2f}; "
          f"{len(rows) // len(STORED_SIZES)} compares in {wall:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
