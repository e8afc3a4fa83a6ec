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
sample. They apply to **process CPU time per call** when the golden holds it: wall time
between two sessions on a shared machine measures the other sessions' load as much as the
model (the same model's wall time moved 2-3x within seconds here while its CPU time moved
far less), and CPU time, summed over every thread of the process so TensorFlow's pool is
counted, does not grow while a thread waits for a core. What a CPU second buys still moves
(clock frequency, cache and memory contention), so the calibration workload also runs
between the timed calls and the stored CPU samples are scaled by its CPU time now over at
record. Older goldens without CPU samples are judged on wall time, with a note. That
narrows, but does not close, the gap between sessions: the calibration workload tracks the
machine but not one-for-one (a memory-hungry neighbour slows a model's calls more than the
fixed workload), and a golden's single record session leaves its few percent of error in
every later ratio (see the README's measurements). The self-check closes it, so ``compare``
runs one by default whenever the golden's own model is still on disk
(:func:`~snapshot_tool.latency.gate.self_check_stored`, after every plain measurement).
If the fingerprints differ, timings from two machines are not
comparable: we scale the stored samples by a calibration workload (a fixed numpy job timed
on both machines) to give a rough, *advisory* ratio that never fails, and say which fields
differ. A different machine's speed is not a regression in the model.

This module never prints; progress goes through an optional ``progress(done, total)``
callback. TensorFlow is never imported here, and scipy only inside the functions that test.
"""
