"""The latency verdicts: side by side against a baseline model in ABBA rounds, or against
a golden's stored samples (see the package docstring for why).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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


#: The golden's own model and the candidate, each a callable running one batch: the
#: self-check times them side by side (ABBA rounds) in the candidate's process.
SelfCheck = tuple[Callable[[], object], Callable[[], object]]


def _machine_note(calibration_ratio: float | None, factor: float | None) -> str:
    parts = []
    if factor is not None:
        parts.append(f"the golden's own model now takes {factor:.3f}x its recorded time "
                     "(self-check)")
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
    self_check: SelfCheck | None = None,
    self_check_rounds: int = 30,
    progress: Progress | None = None,
    alpha: float = ALPHA,
) -> LatencyCheck:
    """Measure the candidate now and compare it with a golden's stored samples.

    ``candidate`` is a timer (``timer(scale) -> Measurement``), normally
    :func:`~snapshot_tool.latency.measure.model_timer` of a freshly loaded copy: the routine
    ``record`` measured the stored samples with. ``fingerprint`` is this environment's
    (default :func:`environment_fingerprint` with no thread settings). The calibration
    workload is timed now (``calibration_s`` overrides) and its ratio to the recorded one
    is reported as ``calibration_ratio``.

    Without ``self_check``: if the fingerprints match, the verdict comes from
    :func:`independent_ratio_estimate` and :func:`decide` against ``1 + stored_max_drift``
    (measuring once more with twice the budget, pooled, on inconclusive); if not, the stored
    samples are scaled by the calibration ratio and the verdict is ``"advisory"``.

    With ``self_check`` (golden's model, candidate), the two are also timed side by side in
    ABBA rounds (:func:`gate_side_by_side` against ``1 + stored_max_drift``), so load that
    differs between the record session and this one divides out:

    * ``machine_factor`` = median call of the golden's model in those rounds / median stored
      sample: "the machine is this many times what it was at record";
    * the baseline becomes the stored samples times ``machine_factor``, and the verdict,
      ratio, interval and p-value are those of the rounds: median over rounds of candidate /
      golden's model, i.e. the candidate against the golden's model as the machine is now;
    * ``uncorrected_ratio`` / ``uncorrected_verdict`` keep the plain stored comparison of
      the ``candidate`` measurement, made first.
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
    base = recorded * cal_ratio if not same and cal_ratio is not None else recorded

    cand: IntArray = candidate(1.0).samples_ns
    est = independent_ratio_estimate(base, cand, seed=seed, limit=limit)
    verdict = decide(est, stored_max_drift, alpha) if same else "advisory"
    if verdict == "inconclusive":
        cand = np.concatenate([cand, candidate(2.0).samples_ns])
        est = independent_ratio_estimate(base, cand, seed=seed, limit=limit)
        verdict = decide(est, stored_max_drift, alpha)
    uncorrected = float(np.median(cand) / np.median(recorded))
    plain = LatencyCheck(
        batch_size=batch_size, mode="stored",
        verdict="advisory" if verdict == "advisory" else _as_verdict(verdict),
        baseline=summarize(base), candidate=summarize(cand), ratio=est.ratio,
        ci_low=est.ci_low, ci_high=est.ci_high, p_value=est.p_value, limit=limit,
        rounds=int(cand.size), calibration_ratio=cal_ratio, uncorrected_ratio=uncorrected,
        baseline_samples_ns=kept_samples(base), candidate_samples_ns=kept_samples(cand))
    plain = replace(plain, uncorrected_verdict=plain.verdict)

    if self_check is None:
        machine = _machine_note(cal_ratio, None)
        if not same:
            return replace(plain, note=_advisory_note(why, machine, est.ratio, cal_ratio))
        described = _describe(est, verdict, key="stored_max_drift",
                              rounds_word=f"{cand.size} calls")
        # A plain pass stays quiet unless the machine itself moved enough to matter.
        moved = cal_ratio is not None and abs(cal_ratio - 1.0) > _CALIBRATION_NOTABLE
        shown = machine if verdict != "pass" or moved else ""
        if moved:
            shown += "; compare --self-check re-times the golden's own model to correct for it"
        return replace(plain, note="; ".join(x for x in (described, shown) if x))

    golden_fn, candidate_fn = self_check
    sbs = gate_side_by_side(golden_fn, candidate_fn, batch_size, stored_max_drift,
                            rounds=self_check_rounds, seed=seed, progress=progress,
                            alpha=alpha)
    factor = float(sbs.baseline.p50 / np.median(recorded))
    machine = _machine_note(cal_ratio, factor)
    if not same:
        note = _advisory_note(why, machine, sbs.ratio, None)
        corrected_verdict: Verdict = "advisory"
    else:
        corrected_verdict = sbs.verdict
        described = _describe(
            RatioEstimate(sbs.ratio, sbs.ci_low, sbs.ci_high, sbs.p_value, limit),
            corrected_verdict, key="stored_max_drift",
            rounds_word=f"{sbs.rounds} ABBA rounds against the golden's own model")
        note = "; ".join(x for x in (
            described, f"{machine}; candidate vs the golden's model side by side "
            f"{sbs.ratio:.3f}x, vs the stored samples as recorded {uncorrected:.3f}x "
            f"(uncorrected verdict: {plain.verdict})") if x)
    return replace(
        plain, verdict=corrected_verdict, baseline=summarize(recorded * factor),
        candidate=sbs.candidate, ratio=sbs.ratio, ci_low=sbs.ci_low, ci_high=sbs.ci_high,
        p_value=sbs.p_value, rounds=sbs.rounds, machine_factor=factor, note=note,
        baseline_samples_ns=kept_samples(recorded * factor),
        candidate_samples_ns=sbs.candidate_samples_ns)


def _advisory_note(why: str, machine: str, ratio: float, cal_ratio: float | None) -> str:
    scaled = ("stored samples scaled by the calibration workload" if cal_ratio is not None
              else "the golden's own model timed side by side (self-check)" if machine
              else "stored samples not scaled (no calibration recorded)")
    return (
        f"{why}; {scaled}; {machine + '; ' if machine else ''}candidate is ~{ratio:.2f}x "
        f"the golden's latency (advisory only, never fails: timings from different machines "
        f"are not comparable). For a gating check, record the golden on this machine type or "
        f"use --baseline-model for a side-by-side run."
    )
