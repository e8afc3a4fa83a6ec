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
from snapshot_tool.latency.measure import Measurement, Progress, Timer, call_ns, warm_up
from snapshot_tool.latency.stats import (
    ALPHA,
    FloatArray,
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
# A calibration ratio further than this from 1 is worth a note even on a pass.
_CALIBRATION_NOTABLE = 0.10


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
    #: Stored mode: the calibration workload's time now over its time at record (> 1: this
    #: machine is slower at fixed numpy work than when the golden was recorded).
    calibration_ratio: float | None = None
    #: Stored mode with a self-check: the golden's own model, re-timed now, over its stored
    #: samples (medians). The stored baseline was multiplied by it before the test.
    machine_factor: float | None = None
    #: Stored mode: median candidate / median stored sample, before any correction.
    uncorrected_ratio: float | None = None
    #: Stored mode: the verdict against the uncorrected stored samples (equal to
    #: ``verdict`` without a self-check).
    uncorrected_verdict: Verdict | None = None

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


@dataclass(frozen=True)
class _Taken:
    """Candidate samples and, with a self-check, the golden's own model re-timed beside it."""

    candidate: IntArray
    golden_now: IntArray | None


def _take(candidate: Timer, self_check: Timer | None, scale: float) -> _Taken:
    if self_check is None:
        return _Taken(candidate(scale).samples_ns, None)
    # Golden, candidate, candidate, golden: drift of the machine during the four
    # measurements weighs on both sides alike, and neither always goes first.
    g1 = self_check(scale).samples_ns
    c1 = candidate(scale).samples_ns
    c2 = candidate(scale).samples_ns
    g2 = self_check(scale).samples_ns
    return _Taken(np.concatenate([c1, c2]), np.concatenate([g1, g2]))


def _pool(a: _Taken, b: _Taken) -> _Taken:
    now = None if a.golden_now is None or b.golden_now is None else np.concatenate(
        [a.golden_now, b.golden_now])
    return _Taken(np.concatenate([a.candidate, b.candidate]), now)


def _machine_note(calibration_ratio: float | None, factor: RatioEstimate | None) -> str:
    parts = []
    if factor is not None:
        parts.append(f"the golden's own model now takes {factor.ratio:.3f}x its recorded time "
                     f"(self-check, 95% CI {factor.ci_low:.3f}-{factor.ci_high:.3f})")
    if calibration_ratio is not None:
        parts.append(f"the calibration workload {calibration_ratio:.3f}x")
    return "machine vs record: " + ", ".join(parts) if parts else ""


def gate_stored(
    stored: Measurement,
    stored_fingerprint: Mapping[str, object],
    stored_calibration_s: float,
    candidate: Timer,
    batch_size: int,
    stored_max_drift: float,
    *,
    seed: int = 0,
    fingerprint: Mapping[str, object] | None = None,
    calibration_s: float | None = None,
    self_check: Timer | None = None,
    alpha: float = ALPHA,
) -> LatencyCheck:
    """Measure the candidate now and compare it with a golden's stored samples.

    ``candidate`` and ``self_check`` are timers (``timer(scale) -> Measurement``),
    normally :func:`~snapshot_tool.latency.measure.model_timer` of a freshly loaded copy: the
    routine ``record`` measured the stored samples with. ``fingerprint`` is this
    environment's (default :func:`environment_fingerprint` with no thread settings).

    The calibration workload is timed now (``calibration_s`` overrides) and its ratio to the
    recorded one is reported as ``calibration_ratio``. With ``self_check`` (the golden's own
    model, timed in blocks golden, candidate, candidate, golden), the **machine factor** is
    median(golden's model now) / median(stored samples); the stored samples are multiplied
    by it before the test, so the verdict asks "is the candidate slower than the golden's
    model is *today*", and ``uncorrected_ratio`` keeps candidate / stored as recorded.

    If the fingerprints match, the verdict comes from :func:`independent_ratio_estimate` and
    :func:`decide` against ``1 + stored_max_drift`` (measuring once more with twice the
    budget, pooled, on inconclusive). If not, the stored samples are scaled by the machine
    factor (or, without a self-check, by the calibration ratio) and the verdict is
    ``"advisory"``: reported, never failing.
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
    cal_ratio: float | None = None
    if math.isfinite(stored_calibration_s) and stored_calibration_s > 0:
        cal_now = calibrate() if calibration_s is None else calibration_s
        cal_ratio = cal_now / stored_calibration_s
    recorded = stored.samples_ns.astype(np.float64)

    def estimate(taken: _Taken) -> tuple[RatioEstimate, RatioEstimate | None, FloatArray]:
        factor = None
        base = recorded
        if taken.golden_now is not None:
            factor = independent_ratio_estimate(recorded, taken.golden_now, seed=seed)
            base = recorded * factor.ratio
        elif not same and cal_ratio is not None:
            base = recorded * cal_ratio
        return independent_ratio_estimate(base, taken.candidate, seed=seed,
                                          limit=limit), factor, base

    taken = _take(candidate, self_check, 1.0)
    est, factor, base = estimate(taken)
    verdict = decide(est, stored_max_drift, alpha) if same else "advisory"
    if verdict == "inconclusive":
        taken = _pool(taken, _take(candidate, self_check, 2.0))
        est, factor, base = estimate(taken)
        verdict = decide(est, stored_max_drift, alpha)
    uncorrected = float(np.median(taken.candidate) / np.median(recorded))
    plain = verdict
    if factor is not None and same:
        # What the stored gate says without the correction, on the same samples: the
        # report and the benchmark set the two verdicts side by side.
        plain = decide(independent_ratio_estimate(recorded, taken.candidate, seed=seed,
                                                  limit=limit), stored_max_drift, alpha)
    machine = _machine_note(cal_ratio, factor)
    if not same:
        scaled = ("stored samples scaled by the self-check" if factor is not None else
                  "stored samples scaled by the calibration workload" if cal_ratio is not None
                  else "stored samples not scaled (no calibration recorded)")
        note = (
            f"{why}; {scaled}; {machine + '; ' if machine else ''}candidate is "
            f"~{est.ratio:.2f}x the golden's latency (advisory only, never fails: timings "
            f"from different machines are not comparable). For a gating check, record the "
            f"golden on this machine type or use --baseline-model for a side-by-side run."
        )
    else:
        described = _describe(est, verdict, key="stored_max_drift",
                              rounds_word=f"{taken.candidate.size} calls")
        if factor is not None:
            machine += f"; stored baseline scaled by it (uncorrected ratio {uncorrected:.3f}x)"
        # A plain pass stays quiet unless the machine itself moved enough to matter.
        moved = cal_ratio is not None and abs(cal_ratio - 1.0) > _CALIBRATION_NOTABLE
        shown = machine if factor is not None or verdict != "pass" or moved else ""
        if moved and factor is None:
            shown += "; compare --self-check re-times the golden's own model to correct for it"
        note = "; ".join(x for x in (described, shown) if x)
    return LatencyCheck(
        batch_size=batch_size,
        mode="stored",
        verdict=_as_verdict(verdict) if verdict != "advisory" else "advisory",
        baseline=summarize(base),
        candidate=summarize(taken.candidate),
        baseline_samples_ns=kept_samples(base),
        candidate_samples_ns=kept_samples(taken.candidate),
        ratio=est.ratio,
        ci_low=est.ci_low,
        ci_high=est.ci_high,
        p_value=est.p_value,
        limit=limit,
        rounds=int(taken.candidate.size),
        note=note,
        calibration_ratio=cal_ratio,
        machine_factor=None if factor is None else factor.ratio,
        uncorrected_ratio=uncorrected,
        uncorrected_verdict=_as_verdict(plain) if plain != "advisory" else "advisory",
    )
