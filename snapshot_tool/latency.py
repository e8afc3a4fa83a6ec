"""Latency: measuring a model call, and deciding whether a candidate got slower.

A latency gate that fails on noise gets switched off; one that misses a 2x slowdown is
useless. Everything here is shaped by one fact: the machines this runs on (shared 2-core CI
runners, laptops) are noisy, and their noise is neither small, nor stationary, nor
normally distributed. So:

**Warm-up until stable.** The first calls of a TensorFlow function trace, allocate and fill
caches; they say nothing about steady-state latency. We time the very first call on its own
(``first_call_s``; the caller passes the load time through as ``cold_load_s``), then keep
calling until at least 10 calls and a minimum time have passed *and* the two halves of the
last window of calls agree (medians within 10%), with a cap so a never-settling machine
cannot hang the run. Only then do timed calls start.

**Side-by-side in ABBA rounds is the real gate.** A stored baseline was measured at another
time, under other load, maybe on another machine; the difference between two sessions on
one CI runner is often larger than the 10% we want to detect. Running baseline (A) and
candidate (B) in the same process, interleaved A,B,B,A then B,A,A,B, exposes both to the
same drift: a slow period hits each equally, and neither side always goes first. Each
round gives one ratio, candidate over baseline; the rounds are then (nearly) independent
observations of the slowdown, with the common noise divided out.

Each side's figure in a round is, by default, the **minimum** of its two calls, not their
mean. Noise on a shared machine is one-sided - preemption and cache thrashing only ever add
time - and it hits single calls: with a 10% chance per call, a mean-based round is
contaminated 34% of the time, a min-based one 2%. (On the 2-core box this was built on,
with a busy loop and another test run competing, 20 gates each: mean-based rounds caught
16 of 20 real 1.5x slowdowns and passed 2 of them outright; min-based rounds caught 20 of
20, and 20 of 20 at 1.2x; no false alarm on identical models either way.) The
drift the mean would cancel is negligible within one round of four calls. Under a pure
slowdown every quantile moves by the same factor, so the ratio is unchanged; pass
``per_round="mean"`` to :func:`gate_side_by_side` for the textbook ABBA estimator.

**Why a confidence interval *and* a test.** The verdict has to be right in both directions,
so it uses two views that fail differently:

* a bootstrap confidence interval (95%, seeded, so the same samples always give the same
  verdict) of the median ratio says *how big* the slowdown is and how sure we are of it.
  Medians, not means, because a single interrupt-sized outlier must not move the verdict.
* a one-sided, distribution-free test whose null hypothesis is "the candidate is **not
  slower than the limit**" (true ratio <= 1 + max_drift) - not merely "not slower than the
  baseline". Testing against 1.0 would be significant for any real 2% slowdown and say
  nothing about the 10% limit; testing against the limit asks exactly the question a FAIL
  answers. Sign and rank tests need no normality and shrug off heavy tails. The percentile
  bootstrap of a median is slightly over-confident with 30 rounds; an exact test is not,
  so requiring both keeps false alarms below the smaller of the two error rates.

  For paired rounds the test is the exact sign test of the per-round ratios against the
  limit: how many rounds are above ``limit``, against Binomial(n, 1/2). It uses the pairing
  (Mann-Whitney would throw it away and see round-to-round drift as noise), assumes no
  symmetry, is the exact dual of a CI for the median, and is the most robust choice under
  the heavy-tailed, one-sided noise of a shared machine, where a few huge outlier rounds
  cost the Wilcoxon signed-rank test much of its power (they take its top ranks). For two
  independent samples (stored mode) it is the Mann-Whitney U test of candidate samples
  against baseline samples scaled by the limit: under a scale-shift model its null is
  exactly "ratio <= limit".

Verdict (see :func:`decide`): **pass** when the median ratio or the CI's upper bound is
within the limit; **fail** only when the test is significant at alpha = 0.01 *and* the CI's
lower bound is above the limit; otherwise **inconclusive** - the gate then measures once
more with twice the rounds, pools them, and decides again. A result that stays inconclusive
is reported as a warning, not a failure (the CLI's ``--latency-strict`` can change that).

**Stored-baseline mode** compares a fresh measurement with the golden's stored samples. If
the environment fingerprint (CPU model, CPUs, cgroup quota, TensorFlow version, thread
settings) matches, the same statistics apply to two independent samples, with the looser
``stored_max_drift`` (default 25%) because between-session variance is not in either
sample. If the fingerprints differ, timings from two machines are not comparable: we scale
the stored samples by a calibration workload (a fixed numpy job timed on both machines)
to give a rough, *advisory* ratio that never fails, and say which fields differ. A
different machine's speed is not a regression in the model.

This module never prints; progress goes through an optional ``progress(done, total)``
callback. TensorFlow is never imported here, and scipy only inside the functions that test.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Progress = Callable[[int, int], None]
Verdict = Literal["pass", "fail", "inconclusive", "advisory"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Significance level of the one-sided test; a FAIL needs p below it.
ALPHA = 0.01
#: Warm-up is over when the medians of the two halves of the last window agree this well.
WARMUP_TOLERANCE = 0.10
#: Calls in the warm-up stability window (two halves of 10).
WARMUP_WINDOW = 20
#: The fingerprint fields that change timings; everything else is informational.
TIMING_FIELDS = (
    "cpu_model",
    "logical_cpus",
    "usable_cpus",
    "cpu_quota",
    "tensorflow",
    "threads",
)
# Rounds played and thrown away after warming each callable alone: alternating between two
# models evicts each other's caches, and the gate measures that interleaved steady state.
_DISCARD_ROUNDS = 2
# Below this many timed calls, percentiles and tests mean nothing; max_time_s yields to it.
_MIN_TIMED_CALLS = 5
# Bootstrap resamples are drawn in blocks so 10k-sample measurements stay a few MB.
_BOOT_BLOCK_ELEMENTS = 2_000_000
_PROGRESS_EVERY_NS = 50_000_000


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-call latencies, all in nanoseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float
    std: float


def summarize(samples_ns: npt.ArrayLike) -> LatencyStats:
    """Percentiles, mean and standard deviation of ``samples_ns`` (empty -> all NaN, n=0)."""
    a = np.asarray(samples_ns, dtype=np.float64).ravel()
    if a.size == 0:
        nan = float("nan")
        return LatencyStats(n=0, p50=nan, p90=nan, p99=nan, mean=nan, std=nan)
    p50, p90, p99 = np.percentile(a, [50.0, 90.0, 99.0])
    return LatencyStats(
        n=int(a.size),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        mean=float(a.mean()),
        std=float(a.std(ddof=1)) if a.size > 1 else 0.0,
    )


@dataclass(frozen=True)
class RatioEstimate:
    """How much slower the candidate is than the baseline (ratio > 1 means slower).

    ``p_value`` is one-sided, for the null hypothesis "true ratio <= ``limit``"; ``limit``
    records which null was tested (1.0 unless the caller asked for its drift limit).
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    limit: float = 1.0


def _positive(x: npt.ArrayLike, name: str) -> FloatArray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    # A 0 ns reading is timer granularity, not a free call; 1 ns keeps log-ratios finite.
    return np.maximum(a, 1.0)


def _percentile_ci(boot: FloatArray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(boot, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _samples(baseline_ns: npt.ArrayLike, candidate_ns: npt.ArrayLike, limit: float
             ) -> tuple[FloatArray, FloatArray]:
    """Both samples as positive float arrays, and a usable limit: the checks both
    estimators start with."""
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    return _positive(baseline_ns, "baseline_ns"), _positive(candidate_ns, "candidate_ns")


def paired_ratio_estimate(
    baseline_ns: npt.ArrayLike,
    candidate_ns: npt.ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    limit: float = 1.0,
) -> RatioEstimate:
    """Median of per-round ratios ``candidate_ns[i] / baseline_ns[i]``, for paired rounds.

    The CI is a percentile bootstrap of the median over rounds (seeded, reproducible). The
    p-value is the exact one-sided sign test of the rounds above ``limit`` (H0: median
    ratio <= ``limit``; rounds exactly at the limit carry no sign and are dropped).
    """
    from scipy import stats

    base, cand = _samples(baseline_ns, candidate_ns, limit)
    if base.shape != cand.shape:
        raise ValueError(
            f"paired samples need equal lengths, got {base.size} baseline and {cand.size} "
            "candidate rounds"
        )
    ratios = cand / base
    n = ratios.size
    rng = np.random.default_rng(seed)
    boot = np.median(ratios[rng.integers(0, n, size=(n_boot, n))], axis=1)
    ci_low, ci_high = _percentile_ci(boot, confidence)

    above, below = int(np.sum(ratios > limit)), int(np.sum(ratios < limit))
    p = 1.0
    if above + below > 0:
        p = float(stats.binomtest(above, above + below, 0.5, alternative="greater").pvalue)
    return RatioEstimate(
        ratio=float(np.median(ratios)),
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=1.0 if math.isnan(p) else p,
        limit=limit,
    )


def _boot_medians(x: FloatArray, n_boot: int, rng: np.random.Generator) -> FloatArray:
    block = max(1, _BOOT_BLOCK_ELEMENTS // x.size)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        out[start:start + k] = np.median(x[rng.integers(0, x.size, size=(k, x.size))], axis=1)
    return out


def independent_ratio_estimate(
    baseline_ns: npt.ArrayLike,
    candidate_ns: npt.ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    limit: float = 1.0,
) -> RatioEstimate:
    """Ratio of medians ``median(candidate) / median(baseline)`` for two unpaired samples.

    The CI resamples each sample independently (percentile bootstrap of the ratio of
    medians). The p-value is the one-sided Mann-Whitney U test of the candidate samples
    against the baseline samples scaled by ``limit`` (H0: candidate not slower than
    ``limit`` x baseline). Both treat samples as independent calls; slow drift inside one
    session makes the CI a little narrow, which is one reason stored mode has a looser limit.
    """
    from scipy import stats

    base, cand = _samples(baseline_ns, candidate_ns, limit)
    rng = np.random.default_rng(seed)
    boot = _boot_medians(cand, n_boot, rng) / _boot_medians(base, n_boot, rng)
    ci_low, ci_high = _percentile_ci(boot, confidence)
    p = 1.0
    if base.size >= 2 and cand.size >= 2:
        p = float(stats.mannwhitneyu(cand, base * limit, alternative="greater").pvalue)
    return RatioEstimate(
        ratio=float(np.median(cand) / np.median(base)),
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=1.0 if math.isnan(p) else p,
        limit=limit,
    )


def decide(est: RatioEstimate, max_drift: float, alpha: float = ALPHA) -> str:
    """``"pass"``, ``"fail"`` or ``"inconclusive"`` for one estimate against ``1 + max_drift``.

    * pass - the median ratio is within the limit (``<=``), or the whole CI is.
    * fail - the test is significant (``p < alpha``) *and* the CI lies entirely above the
      limit (``ci_low > limit``). Both are needed; either alone never fails a build.
    * inconclusive - the estimate is above the limit but the evidence is not strong enough.

    ``est.p_value`` should test the same limit (pass ``limit=1 + max_drift`` to the
    estimators, as the gates do); a p-value against 1.0 only makes the test weaker.
    """
    limit = 1.0 + max_drift
    if not math.isfinite(est.ratio):
        return "inconclusive"
    if est.ratio <= limit or est.ci_high <= limit:
        return "pass"
    if est.p_value < alpha and est.ci_low > limit:
        return "fail"
    return "inconclusive"


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measurement:
    """Timed calls of one callable at one batch size (what ``/latency/batch_<n>`` stores)."""

    batch_size: int
    samples_ns: IntArray = field(compare=False)
    warmup_calls: int
    first_call_s: float
    cold_load_s: float
    stats: LatencyStats
    #: False when warm-up hit its time cap before two consecutive half-windows agreed.
    warmup_stable: bool = True


def _call_ns(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def _halves_agree(durations: Sequence[int]) -> bool:
    if len(durations) < 4:
        return False
    half = len(durations) // 2
    m1 = float(np.median(durations[-2 * half:-half]))
    m2 = float(np.median(durations[-half:]))
    lo = min(m1, m2)
    return lo > 0 and abs(m2 - m1) / lo <= WARMUP_TOLERANCE


def _warm_up(
    fn: Callable[[], object], *, min_calls: int, min_time_s: float, max_time_s: float
) -> tuple[int, bool, list[int]]:
    """Call ``fn`` until steady; returns (calls made, stable?, their durations in ns)."""
    start = time.perf_counter_ns()
    durations: list[int] = []
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    while True:
        durations.append(_call_ns(fn))
        elapsed = time.perf_counter_ns() - start
        if len(durations) >= min_calls and elapsed >= min_ns:
            # The window never includes the very first call: tracing is not steady state.
            window = durations[1:][-WARMUP_WINDOW:]
            if _halves_agree(window):
                return len(durations), True, durations
        if elapsed >= max_ns and len(durations) >= min_calls:
            return len(durations), False, durations


def measure(
    fn: Callable[[], object],
    batch_size: int,
    *,
    min_samples: int = 30,
    min_time_s: float = 1.0,
    max_time_s: float = 10.0,
    cold_load_s: float = 0.0,
    progress: Progress | None = None,
    warmup_min_calls: int = 10,
    warmup_min_time_s: float | None = None,
    warmup_max_time_s: float | None = None,
    max_samples: int = 20_000,
) -> Measurement:
    """Time ``fn`` (which must already materialize its outputs) after warming it up.

    The very first call is timed alone (``first_call_s``). Warm-up then runs at least
    ``warmup_min_calls`` calls (the first included) and ``warmup_min_time_s`` (default
    ``min(0.25, min_time_s)``) until the two halves of the last 20 calls have medians
    within 10%, or ``warmup_max_time_s`` (default ``max_time_s / 2``) runs out.
    Timed calls continue until there are ``min_samples`` of them and ``min_time_s`` has
    passed; ``max_time_s`` or ``max_samples`` stop them earlier (never below 5 calls).
    ``progress(done, total)`` reports timed calls against an estimate of the total.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if min_samples < 1 or min_time_s < 0 or max_time_s < min_time_s:
        raise ValueError("need min_samples >= 1 and 0 <= min_time_s <= max_time_s")
    wmin = min(0.25, min_time_s) if warmup_min_time_s is None else warmup_min_time_s
    wmax = max_time_s / 2 if warmup_max_time_s is None else warmup_max_time_s

    first_ns = _call_ns(fn)
    calls, stable, warm = _warm_up(
        fn,
        min_calls=max(1, warmup_min_calls - 1),
        min_time_s=wmin,
        max_time_s=max(wmin, wmax),
    )
    typical_ns = max(1.0, float(np.median(warm[-WARMUP_WINDOW:])))
    total = int(min(
        max(min_samples, math.ceil(min_time_s * 1e9 / typical_ns)),
        max(_MIN_TIMED_CALLS, math.floor(max_time_s * 1e9 / typical_ns)),
        max_samples,
    ))
    total = max(total, min(min_samples, max_samples), 1)

    # Start the timed phase from a clean heap so one collection of warm-up garbage does
    # not land in the samples; collections caused by the calls themselves are real cost.
    gc.collect()
    samples: list[int] = []
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    start = last_report = time.perf_counter_ns()
    while True:
        t0 = time.perf_counter_ns()
        fn()
        t1 = time.perf_counter_ns()
        samples.append(t1 - t0)
        n, elapsed = len(samples), t1 - start
        if (n >= min_samples and elapsed >= min_ns) or n >= max_samples:
            break
        if elapsed >= max_ns and n >= _MIN_TIMED_CALLS:
            break
        if progress is not None and t1 - last_report >= _PROGRESS_EVERY_NS:
            total = max(total, n + 1)
            progress(n, total)
            last_report = t1
    if progress is not None:
        progress(len(samples), len(samples))
    arr = np.asarray(samples, dtype=np.int64)
    arr.setflags(write=False)
    return Measurement(
        batch_size=batch_size,
        samples_ns=arr,
        warmup_calls=1 + calls,
        first_call_s=first_ns / 1e9,
        cold_load_s=float(cold_load_s),
        stats=summarize(arr),
        warmup_stable=stable,
    )


# --------------------------------------------------------------------------- environment


def _calibration_workload() -> float:
    # Fixed seed, fixed shapes: the same floating-point work on every machine and run.
    rng = np.random.default_rng(20240601)
    n = 256
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = (rng.standard_normal((n, n), dtype=np.float32) / np.float32(math.sqrt(n)))
    half = np.float32(0.5)
    x = a
    for _ in range(32):
        x = np.tanh(x @ b) + a * half
    return float(x.sum())


def calibrate(repeats: int = 7) -> float:
    """Median seconds of a fixed numpy workload (256x256 float32 matmuls + tanh, ~5-20 ms).

    Stored beside a golden's samples; the ratio of two machines' calibrations scales stored
    samples in advisory mode. BLAS is held to one thread where threadpoolctl is available,
    so the figure reflects per-core speed rather than how many idle cores the runner had.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        threadpool_limits = None

    def run() -> float:
        _calibration_workload()  # warm: page in, BLAS init
        times = []
        for _ in range(repeats):
            times.append(_call_ns(_calibration_workload))
        return float(np.median(times)) / 1e9

    if threadpool_limits is None:  # pragma: no cover
        return run()
    with threadpool_limits(limits=1, user_api="blas"):
        return run()


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model", "cpu"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_dirs(controller: str) -> list[Path]:
    """This process's own cgroup directory first, then the mount root (as in containers)."""
    root = Path("/sys/fs/cgroup")
    dirs: list[Path] = []
    own = _read(Path("/proc/self/cgroup")) or ""
    for line in own.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controller == "" and controllers == "":
            dirs.append(root / rel)
        elif controller and controller in controllers.split(","):
            for mount in (root / controllers, root / controller, root / "cpu,cpuacct"):
                dirs.append(mount / rel)
    if controller:
        dirs += [root / controller, root / "cpu,cpuacct"]
    else:
        dirs.append(root)
    return dirs


def cgroup_cpu_quota() -> float | None:
    """CPUs the cgroup may use (quota / period), or ``None`` if unlimited or unreadable."""
    for d in _cgroup_dirs(""):  # cgroup v2: "max 100000" or "200000 100000"
        text = _read(d / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota == "max":
                return None
            try:
                return round(int(quota) / int(period or "100000"), 4)
            except (ValueError, ZeroDivisionError):
                return None
    for d in _cgroup_dirs("cpu"):  # cgroup v1
        q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if q is not None and p is not None:
            try:
                quota_us, period_us = int(q), int(p)
            except ValueError:
                return None
            return round(quota_us / period_us, 4) if quota_us > 0 and period_us > 0 else None
    return None


def environment_fingerprint(thread_settings: dict[str, int] | None = None) -> dict[str, object]:
    """A JSON-ready description of what the timings depend on.

    ``thread_settings`` are the caller's (e.g. TensorFlow intra/inter op threads). The
    TensorFlow version is included only if TensorFlow is already imported; this function
    never imports it.
    """
    tf = sys.modules.get("tensorflow")
    tf_version = getattr(tf, "__version__", None) if tf is not None else None
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_quota": cgroup_cpu_quota(),
        "tensorflow": str(tf_version) if tf_version is not None else None,
        "threads": {str(k): int(v) for k, v in sorted((thread_settings or {}).items())},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _norm(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fingerprint_matches(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[bool, str]:
    """Whether two fingerprints agree on the fields that change timings, and which differ.

    Compared: CPU model, logical and usable CPUs, cgroup CPU quota, TensorFlow version,
    thread settings. Python, numpy and platform strings are informational. A field missing
    on one side counts as different (unknown is not the same as equal).
    """
    diffs = []
    for key in TIMING_FIELDS:
        va, vb = _norm(a.get(key)), _norm(b.get(key))
        if va != vb:
            diffs.append(f"{key} {va!r} vs {vb!r}")
    if diffs:
        return False, "environment differs: " + "; ".join(diffs)
    return True, ""


# --------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class LatencyCheck:
    """The latency verdict for one batch size. Times in ``baseline``/``candidate`` are ns."""

    batch_size: int
    mode: Literal["side_by_side", "stored"]
    verdict: Verdict
    baseline: LatencyStats
    candidate: LatencyStats
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    limit: float
    #: Paired rounds (side-by-side), or candidate calls compared (stored mode).
    rounds: int
    note: str = ""
    #: Which signature was timed; set by the caller for multi-signature goldens.
    signature: str = ""

    @property
    def passed(self) -> bool:
        """Only a FAIL fails; inconclusive/advisory are warnings (``--latency-strict`` aside)."""
        return self.verdict != "fail"


def _as_verdict(decision: str) -> Verdict:
    if decision == "fail":
        return "fail"
    if decision == "inconclusive":
        return "inconclusive"
    return "pass"


def _drift_to_accept(ci_high: float) -> str:
    # Round up to whole percent so the suggested setting covers the CI, not just the estimate.
    return f"{math.ceil(max(ci_high - 1.0, 0.0) * 100.0 + 1e-9) / 100.0:.2f}"


def _describe(est: RatioEstimate, verdict: str, *, key: str, rounds_word: str) -> str:
    ci = f"{est.ratio:.3f}x (95% CI {est.ci_low:.3f}-{est.ci_high:.3f}, p={est.p_value:.2g})"
    if verdict == "fail":
        return (
            f"candidate is {ci} the baseline's latency, above the limit {est.limit:.2f}x; "
            f"if this slowdown is intended, set [latency] {key} = "
            f"{_drift_to_accept(est.ci_high)} in snapshot.toml"
        )
    if verdict == "inconclusive":
        return (
            f"candidate is {ci} the baseline's latency; the interval straddles the limit "
            f"{est.limit:.2f}x after {rounds_word} - rerun on a quieter machine"
        )
    return ""


def _mean2(calls: list[int]) -> float:
    return sum(calls) / len(calls)


def gate_side_by_side(
    baseline_fn: Callable[[], object],
    candidate_fn: Callable[[], object],
    batch_size: int,
    max_drift: float,
    *,
    rounds: int = 30,
    seed: int = 0,
    progress: Progress | None = None,
    warmup_min_time_s: float = 0.25,
    warmup_max_time_s: float = 5.0,
    alpha: float = ALPHA,
    per_round: Literal["min", "mean"] = "min",
) -> LatencyCheck:
    """Time baseline (A) and candidate (B) interleaved in ABBA/BAAB rounds and decide.

    Both are warmed up alone, then ``2`` discarded rounds settle the interleaved state.
    Each round's figure per side is the min (default; see the module docstring for why)
    or the mean of its two calls; the decision uses the
    per-round ratios (:func:`paired_ratio_estimate` against ``1 + max_drift``, then
    :func:`decide`). An inconclusive result triggers one more run of ``2 * rounds``
    rounds, pooled with the first, and a final decision.
    ``progress(done, total)`` counts rounds (total grows if the re-run happens).
    """
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2, got {rounds}")
    if max_drift < 0:
        raise ValueError(f"max_drift must be >= 0, got {max_drift}")
    limit = 1.0 + max_drift
    for fn in (baseline_fn, candidate_fn):
        _warm_up(fn, min_calls=10, min_time_s=warmup_min_time_s, max_time_s=warmup_max_time_s)

    base_calls: list[int] = []
    cand_calls: list[int] = []
    base_rounds: list[float] = []
    cand_rounds: list[float] = []
    figure: Callable[[list[int]], float] = min if per_round == "min" else _mean2
    played = 0

    def play(n_rounds: int, done: int, total: int, *, keep: bool = True) -> None:
        nonlocal played
        for i in range(n_rounds):
            # ABBA then BAAB: linear drift cancels within a round, and neither side always
            # goes first (first-after-switch calls pay for cache misses).
            order = (0, 1, 1, 0) if played % 2 == 0 else (1, 0, 0, 1)
            played += 1
            got: tuple[list[int], list[int]] = ([], [])
            for who in order:
                got[who].append(_call_ns(baseline_fn if who == 0 else candidate_fn))
            if keep:
                base_calls.extend(got[0])
                cand_calls.extend(got[1])
                base_rounds.append(figure(got[0]))
                cand_rounds.append(figure(got[1]))
                if progress is not None:
                    progress(done + i + 1, total)

    play(_DISCARD_ROUNDS, 0, rounds, keep=False)
    gc.collect()
    play(rounds, 0, rounds)
    est = paired_ratio_estimate(base_rounds, cand_rounds, seed=seed, limit=limit)
    verdict = decide(est, max_drift, alpha)
    if verdict == "inconclusive":
        total = rounds * 3
        play(2 * rounds, rounds, total)
        est = paired_ratio_estimate(base_rounds, cand_rounds, seed=seed, limit=limit)
        verdict = decide(est, max_drift, alpha)
    n = len(base_rounds)
    return LatencyCheck(
        batch_size=batch_size,
        mode="side_by_side",
        verdict=_as_verdict(verdict),
        baseline=summarize(base_calls),
        candidate=summarize(cand_calls),
        ratio=est.ratio,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        p_value=est.p_value,
        limit=limit,
        rounds=n,
        note=_describe(est, verdict, key="max_drift", rounds_word=f"{n} ABBA rounds"),
    )


def gate_stored(
    stored: Measurement,
    stored_fingerprint: Mapping[str, object],
    stored_calibration_s: float,
    candidate_fn: Callable[[], object],
    batch_size: int,
    stored_max_drift: float,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    fingerprint: Mapping[str, object] | None = None,
    calibration_s: float | None = None,
    min_samples: int = 30,
    min_time_s: float = 1.0,
    max_time_s: float = 10.0,
    alpha: float = ALPHA,
) -> LatencyCheck:
    """Measure ``candidate_fn`` now and compare it with a golden's stored samples.

    ``fingerprint`` is this environment's (pass one built with the same thread settings the
    golden recorded; default :func:`environment_fingerprint` with none). If it matches
    ``stored_fingerprint``, the verdict comes from :func:`independent_ratio_estimate` and
    :func:`decide` against ``1 + stored_max_drift`` (re-measuring once, with twice the
    samples and time, on inconclusive). If not, the stored samples are scaled by
    ``calibration_s / stored_calibration_s`` (``calibration_s`` defaults to a fresh
    :func:`calibrate`) and the verdict is ``"advisory"``: reported, never failing.
    """
    if stored.batch_size != batch_size:
        raise ValueError(
            f"stored measurement is for batch {stored.batch_size}, not {batch_size}"
        )
    if stored.samples_ns.size == 0:
        raise ValueError("stored measurement has no samples")
    limit = 1.0 + stored_max_drift
    now = environment_fingerprint() if fingerprint is None else fingerprint
    same, why = fingerprint_matches(stored_fingerprint, now)

    cand = measure(candidate_fn, batch_size, min_samples=min_samples, min_time_s=min_time_s,
                   max_time_s=max_time_s, progress=progress)
    cand_samples: IntArray = cand.samples_ns

    if not same:
        base = stored.samples_ns.astype(np.float64)
        scale_note = "stored samples not scaled (no calibration recorded)"
        if math.isfinite(stored_calibration_s) and stored_calibration_s > 0:
            cal_now = calibrate() if calibration_s is None else calibration_s
            scale = cal_now / stored_calibration_s
            base = base * scale
            scale_note = (
                f"stored samples scaled x{scale:.3f} by calibration "
                f"({cal_now * 1e3:.2f} ms now vs {stored_calibration_s * 1e3:.2f} ms recorded)"
            )
        est = independent_ratio_estimate(base, cand_samples, seed=seed, limit=limit)
        note = (
            f"{why}; {scale_note}; candidate is ~{est.ratio:.2f}x the golden's latency "
            f"(advisory only, never fails: timings from different machines are not "
            f"comparable). For a gating check, record the golden on this machine type or "
            f"use --baseline-model for a side-by-side run."
        )
        return LatencyCheck(
            batch_size=batch_size, mode="stored", verdict="advisory",
            baseline=summarize(base), candidate=cand.stats, ratio=est.ratio,
            ci_low=est.ci_low, ci_high=est.ci_high, p_value=est.p_value, limit=limit,
            rounds=int(cand_samples.size), note=note,
        )

    est = independent_ratio_estimate(stored.samples_ns, cand_samples, seed=seed, limit=limit)
    verdict = decide(est, stored_max_drift, alpha)
    if verdict == "inconclusive":
        more = measure(candidate_fn, batch_size, min_samples=2 * min_samples,
                       min_time_s=2 * min_time_s, max_time_s=2 * max_time_s, progress=progress)
        cand_samples = np.concatenate([cand_samples, more.samples_ns])
        est = independent_ratio_estimate(stored.samples_ns, cand_samples, seed=seed,
                                         limit=limit)
        verdict = decide(est, stored_max_drift, alpha)
    return LatencyCheck(
        batch_size=batch_size,
        mode="stored",
        verdict=_as_verdict(verdict),
        baseline=stored.stats,
        candidate=summarize(cand_samples),
        ratio=est.ratio,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        p_value=est.p_value,
        limit=limit,
        rounds=int(cand_samples.size),
        note=_describe(est, verdict, key="stored_max_drift",
                       rounds_word=f"{cand_samples.size} calls"),
    )
