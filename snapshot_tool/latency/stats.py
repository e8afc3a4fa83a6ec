"""Latency statistics: summaries of timed calls, the ratio estimates (bootstrap CI plus an
exact test) and the pass/fail/inconclusive decision. Pure numpy (scipy inside the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: Significance level of the one-sided test; a FAIL needs p below it.
ALPHA = 0.01
# Bootstrap resamples are drawn in blocks so 10k-sample measurements stay a few MB.
_BOOT_BLOCK_ELEMENTS = 2_000_000


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



#: Per-call samples a :class:`~snapshot_tool.latency.gate.LatencyCheck` keeps for plots.
SAMPLES_KEPT = 2000


def kept_samples(samples_ns: npt.ArrayLike, n: int = SAMPLES_KEPT) -> tuple[int, ...]:
    """At most ``n`` samples that keep the distribution's shape: all of them when there are
    few, else ``n`` evenly spaced order statistics (so the tails survive, which a random
    subset of a long-tailed latency series would often drop)."""
    a = np.sort(np.asarray(samples_ns, dtype=np.float64).ravel())
    a = a[np.isfinite(a)]
    if a.size > n:
        a = a[np.linspace(0, a.size - 1, n).round().astype(np.int64)]
    return tuple(int(v) for v in a.round().astype(np.int64))
