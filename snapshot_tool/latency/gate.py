"""The latency verdicts: side by side against a baseline model in ABBA rounds, or against
a golden's stored samples (see the package docstring for why).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from snapshot_tool.latency.fingerprint import (
    calibrate,
    environment_fingerprint,
    fingerprint_matches,
)
from snapshot_tool.latency.measure import Measurement, Progress, call_ns, measure, warm_up
from snapshot_tool.latency.stats import (
    ALPHA,
    IntArray,
    LatencyStats,
    RatioEstimate,
    decide,
    independent_ratio_estimate,
    kept_samples,
    paired_ratio_estimate,
    summarize,
)

Verdict = Literal["pass", "fail", "inconclusive", "advisory"]
# Rounds played and thrown away after warming each callable alone: alternating between two
# models evicts each other's caches, and the gate measures that interleaved steady state.
_DISCARD_ROUNDS = 2


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
    #: Per-call times (ns) behind ``baseline`` and ``candidate``, at most
    #: :data:`~snapshot_tool.latency.stats.SAMPLES_KEPT` each (see ``kept_samples``), for
    #: the HTML report's distributions; empty when not kept.
    baseline_samples_ns: tuple[int, ...] = field(default=(), repr=False, compare=False)
    candidate_samples_ns: tuple[int, ...] = field(default=(), repr=False, compare=False)

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
        warm_up(fn, min_calls=10, min_time_s=warmup_min_time_s, max_time_s=warmup_max_time_s)

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
                got[who].append(call_ns(baseline_fn if who == 0 else candidate_fn))
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
        baseline_samples_ns=kept_samples(base_calls),
        candidate_samples_ns=kept_samples(cand_calls),
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
            baseline_samples_ns=kept_samples(base),
            candidate_samples_ns=kept_samples(cand_samples),
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
        baseline_samples_ns=kept_samples(stored.samples_ns),
        candidate_samples_ns=kept_samples(cand_samples),
        ratio=est.ratio,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        p_value=est.p_value,
        limit=limit,
        rounds=int(cand_samples.size),
        note=_describe(est, verdict, key="stored_max_drift",
                       rounds_word=f"{cand_samples.size} calls"),
    )

