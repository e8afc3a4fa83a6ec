"""Benchmark the side-by-side latency gate on real TensorFlow models.

    .venv/bin/python benchmarks/latency_gate.py [--trials 20] [--rounds 30]

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

Not part of the test suite: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapshot_tool.latency.fingerprint import calibrate, environment_fingerprint
from snapshot_tool.latency.gate import gate_side_by_side

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
    p.add_argument("--trials", type=int, default=20, help="comparisons per scenario")
    p.add_argument("--rounds", type=int, default=30, help="ABBA rounds per comparison")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per comparison")
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
