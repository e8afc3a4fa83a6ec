"""Latency statistics and gates on synthetic, seeded samples (fast; no TensorFlow)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from snapshot_tool.latency.fingerprint import (
    TIMING_FIELDS,
    calibrate,
    calibrate_times,
    environment_fingerprint,
    fingerprint_matches,
)
from snapshot_tool.latency.gate import LatencyCheck, gate_side_by_side, gate_stored
from snapshot_tool.latency.measure import Measurement, Timer, measure, timed_call
from snapshot_tool.latency.stats import (
    RatioEstimate,
    decide,
    independent_ratio_estimate,
    paired_ratio_estimate,
    summarize,
)

N_ROUNDS = 30


def _rounds(rng: np.random.Generator, n: int = N_ROUNDS, *, sigma: float = 0.05) -> np.ndarray:
    """Per-round baseline times with slow drift and multiplicative noise, ~1 ms."""
    drift = np.linspace(1.0, 1.3, n)  # the machine gets slower during the run
    return 1e6 * drift * rng.lognormal(0.0, sigma, n)


# --------------------------------------------------------------------------- summarize


def test_summarize_percentiles_of_known_samples() -> None:
    s = summarize(np.arange(1, 101, dtype=np.int64))
    assert s.n == 100
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p99 == pytest.approx(99.01)
    assert s.mean == pytest.approx(50.5)
    assert s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))


def test_summarize_single_and_empty() -> None:
    one = summarize(np.array([7], dtype=np.int64))
    assert (one.n, one.p50, one.p99, one.std) == (1, 7.0, 7.0, 0.0)
    empty = summarize(np.array([], dtype=np.int64))
    assert empty.n == 0 and math.isnan(empty.p50)


# --------------------------------------------------------------------------- paired


def test_paired_identical_distributions_pass_for_many_seeds() -> None:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        base = _rounds(rng)
        cand = base * rng.lognormal(0.0, 0.05, N_ROUNDS)
        est = paired_ratio_estimate(base, cand, seed=seed, limit=1.10)
        assert est.ci_low < 1.0 < est.ci_high or abs(est.ratio - 1.0) < 0.03
        assert decide(est, 0.10) == "pass", est


def test_paired_1_5x_slowdown_fails() -> None:
    rng = np.random.default_rng(1)
    base = _rounds(rng)
    cand = 1.5 * base * rng.lognormal(0.0, 0.05, N_ROUNDS)
    est = paired_ratio_estimate(base, cand, limit=1.10)
    assert est.ratio == pytest.approx(1.5, rel=0.05)
    assert est.ci_low > 1.10 and est.p_value < 0.01
    assert decide(est, 0.10) == "fail"


def test_paired_1_12x_with_huge_noise_is_inconclusive_not_fail() -> None:
    # Ratios with median exactly 1.12 and a wide symmetric spread (sigma 0.3 in log space):
    # above the 1.10 limit, but nowhere near enough evidence to fail a build.
    n = 31  # odd, so the median is one of the ratios: exactly 1.12
    z = stats.norm.ppf((np.arange(n) + 0.5) / n)
    ratios = 1.12 * np.exp(0.3 * np.random.default_rng(3).permutation(z))
    base = _rounds(np.random.default_rng(4), n)
    est = paired_ratio_estimate(base, base * ratios, limit=1.10)
    assert est.ratio == pytest.approx(1.12, rel=1e-9)
    assert est.ci_low < 1.10 < est.ci_high
    assert decide(est, 0.10) == "inconclusive"
    # ... and random draws of the same situation never fail either.
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        b = _rounds(rng)
        c = 1.12 * b * rng.lognormal(0.0, 0.3, N_ROUNDS)
        assert decide(paired_ratio_estimate(b, c, seed=seed, limit=1.10), 0.10) != "fail"


def test_paired_heavy_tailed_identical_pass() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        base = _rounds(rng)
        # Interrupt-sized outliers (Pareto) land on either side at random.
        spikes_b = 1.0 + (rng.random(N_ROUNDS) < 0.15) * rng.pareto(1.5, N_ROUNDS) * 3
        spikes_c = 1.0 + (rng.random(N_ROUNDS) < 0.15) * rng.pareto(1.5, N_ROUNDS) * 3
        est = paired_ratio_estimate(base * spikes_b, base * spikes_c, seed=seed, limit=1.10)
        assert decide(est, 0.10) == "pass", est


def test_paired_estimate_is_reproducible_and_validates() -> None:
    rng = np.random.default_rng(0)
    base = _rounds(rng)
    cand = base * rng.lognormal(0.05, 0.1, N_ROUNDS)
    assert paired_ratio_estimate(base, cand, seed=7) == paired_ratio_estimate(
        base, cand, seed=7
    )
    with pytest.raises(ValueError, match="equal lengths"):
        paired_ratio_estimate(base, cand[:-1])
    with pytest.raises(ValueError, match="empty"):
        paired_ratio_estimate([], [])


# --------------------------------------------------------------------------- independent


def test_independent_identical_heavy_tailed_pass() -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        base = 1e6 * rng.lognormal(0.0, 0.2, 400) + (rng.random(400) < 0.05) * 2e7
        cand = 1e6 * rng.lognormal(0.0, 0.2, 400) + (rng.random(400) < 0.05) * 2e7
        est = independent_ratio_estimate(base, cand, seed=seed, limit=1.25)
        assert decide(est, 0.25) == "pass", est


def test_independent_1_5x_fails_and_1_3x_with_noise_does_not_fail() -> None:
    rng = np.random.default_rng(5)
    base = 1e6 * rng.lognormal(0.0, 0.1, 300)
    slow = 1.5e6 * rng.lognormal(0.0, 0.1, 300)
    est = independent_ratio_estimate(base, slow, limit=1.25)
    assert est.ratio == pytest.approx(1.5, rel=0.05)
    assert decide(est, 0.25) == "fail"
    noisy = 1.3e6 * rng.lognormal(0.0, 0.8, 20)
    assert decide(independent_ratio_estimate(base, noisy, limit=1.25), 0.25) != "fail"


def test_independent_bootstrap_handles_large_samples() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(900_000, 1_100_000, 20_000)
    est = independent_ratio_estimate(base, base[::-1].copy(), n_boot=500)
    assert est.ci_low <= 1.0 <= est.ci_high


# --------------------------------------------------------------------------- decide


def _est(ratio: float, lo: float, hi: float, p: float) -> RatioEstimate:
    return RatioEstimate(ratio=ratio, ci_low=lo, ci_high=hi, p_value=p, limit=1.10)


@pytest.mark.parametrize(
    ("est", "verdict"),
    [
        (_est(1.10, 1.05, 1.20, 1e-6), "pass"),  # estimate exactly at the limit passes
        (_est(1.30, 1.00, 1.10, 1e-6), "pass"),  # whole CI within the limit
        (_est(1.20, 1.11, 1.30, 0.001), "fail"),
        (_est(1.20, 1.10, 1.30, 0.001), "inconclusive"),  # ci_low == limit is not above it
        (_est(1.20, 1.11, 1.30, 0.01), "inconclusive"),  # p == alpha is not significant
        (_est(1.20, 1.11, 1.30, 0.2), "inconclusive"),  # CI above, test not significant
        (_est(1.20, 1.05, 1.30, 1e-6), "inconclusive"),  # test significant, CI straddles
        (_est(float("nan"), 1.0, 2.0, 0.5), "inconclusive"),
    ],
)
def test_decide_boundaries(est: RatioEstimate, verdict: str) -> None:
    assert decide(est, 0.10) == verdict


def test_decide_alpha_is_configurable() -> None:
    assert decide(_est(1.2, 1.11, 1.3, 0.03), 0.10, alpha=0.05) == "fail"


# --------------------------------------------------------------------------- fingerprint


def test_environment_fingerprint_fields_and_no_tensorflow_import() -> None:
    had_tf = "tensorflow" in sys.modules
    fp = environment_fingerprint({"intra_op": 1, "inter_op": 2})
    assert ("tensorflow" in sys.modules) == had_tf
    for key in (*TIMING_FIELDS, "python", "platform"):
        assert key in fp
    assert fp["threads"] == {"inter_op": 2, "intra_op": 1}
    assert isinstance(fp["logical_cpus"], int) and fp["logical_cpus"] >= 1
    assert fp["cpu_quota"] is None or isinstance(fp["cpu_quota"], float)
    assert fingerprint_matches(fp, dict(fp)) == (True, "")


def test_fingerprint_matches_names_differing_timing_fields_only() -> None:
    a: dict[str, object] = {
        "cpu_model": "Intel Xeon", "logical_cpus": 2, "usable_cpus": 2, "cpu_quota": None,
        "tensorflow": "2.16.1", "threads": {"intra_op": 1, "inter_op": 1},
        "python": "3.11.7", "platform": "Linux-a",
    }
    b = dict(a, python="3.12.0", platform="Linux-b", threads={"inter_op": 1, "intra_op": 1})
    assert fingerprint_matches(a, b) == (True, "")
    c = dict(a, cpu_model="AMD EPYC", cpu_quota=1.5, threads={"intra_op": 2, "inter_op": 1})
    ok, why = fingerprint_matches(a, c)
    assert not ok
    assert "cpu_model" in why and "cpu_quota" in why and "threads" in why
    assert "logical_cpus" not in why and "python" not in why
    d = {k: v for k, v in a.items() if k != "tensorflow"}
    ok, why = fingerprint_matches(a, d)
    assert not ok and "tensorflow" in why


def test_fingerprint_survives_json_round_trip() -> None:
    import json

    fp = environment_fingerprint({"intra_op": 1})
    assert fingerprint_matches(fp, json.loads(json.dumps(fp)))[0]


def test_calibrate_is_positive_and_validates() -> None:
    # How quick the workload is, is the machine's business (a loaded box stretches it
    # many times); this checks that it returns a usable figure and refuses bad repeats.
    t = calibrate(repeats=3)
    assert 0.0 < t and math.isfinite(t)
    with pytest.raises(ValueError, match="repeats"):
        calibrate(repeats=0)
    wall, cpu = calibrate_times(repeats=3)
    assert 0.0 < wall and 0.0 < cpu and math.isfinite(cpu)


# --------------------------------------------------------------------------- measure


def test_measure_trivial_callable() -> None:
    calls: list[int] = []
    seen: list[tuple[int, int]] = []
    # Real clock, generous caps: 50 trivial calls end the timing at once on any machine,
    # and a loaded one that stretches them cannot reach max_time_s (which would stop the
    # timed calls short of min_samples) before they are done.
    m = measure(
        lambda: calls.append(1), 4, min_samples=50, min_time_s=0.01, max_time_s=60.0,
        warmup_max_time_s=0.5, cold_load_s=1.25, progress=lambda d, t: seen.append((d, t)),
    )
    assert m.samples_ns.dtype == np.int64
    assert m.samples_ns.size >= 50
    assert m.warmup_calls >= 10
    assert len(calls) == m.warmup_calls + m.samples_ns.size
    assert m.batch_size == 4 and m.cold_load_s == 1.25 and m.first_call_s > 0
    assert m.stats.n == m.samples_ns.size and m.stats.p50 > 0
    assert seen and seen[-1][0] == seen[-1][1] == m.samples_ns.size
    assert all(d <= t for d, t in seen)
    with pytest.raises(ValueError):
        m.samples_ns[0] = 0  # frozen means frozen


def test_measure_respects_max_time_for_slow_callables(clock: _Clock) -> None:
    # A 5 ms call on the fake clock: 1000 calls would take 5 s, so max_time_s (0.1 s) must
    # stop the timed calls after ~20. Timed by the fake clock, not the machine: with real
    # sleeps a loaded box stretched each 5 ms sleep (and the garbage collection before the
    # warm-up) until the wall-clock bound of this test failed.
    calls: list[int] = []
    step = clock.call(0.005)

    def slow() -> None:
        calls.append(1)
        step()

    m = measure(slow, 1, min_samples=1000, min_time_s=0.05, max_time_s=0.1,
                warmup_max_time_s=0.05)
    assert 20 <= m.samples_ns.size <= 21  # 0.1 s / 5 ms, plus the call that crossed it
    assert len(calls) == m.warmup_calls + m.samples_ns.size
    assert m.warmup_calls < 20  # warm-up stopped at its own 0.05 s bound as well
    # Everything, warm-up included, took under 0.2 s of the clock instead of 5 s.
    assert clock.ns < 0.2e9
    assert m.stats.p50 == pytest.approx(5e6)
    # CPU time per call beside the wall time, one per timed call (this clock's CPU time is
    # its wall time).
    assert m.cpu_ns is not None and m.cpu_ns.size == m.samples_ns.size
    assert np.all(m.cpu_ns == 5_000_000)


def test_timed_call_counts_the_cpu_time_of_other_threads() -> None:
    """Process CPU time, not the calling thread's: a call that waits for a worker thread
    burning ~60 ms of CPU is charged for it (thread_time would charge almost nothing).
    The bound is loose: the worker's CPU time is what it is, only its wall time stretches
    on a loaded box, so CPU >= half the burn holds on any machine."""
    import threading

    def burn() -> None:
        end = time.thread_time_ns() + 60_000_000
        while time.thread_time_ns() < end:
            pass

    def call() -> None:
        t = threading.Thread(target=burn)
        t.start()
        t.join()

    wall, cpu = timed_call(call)
    assert cpu >= 30_000_000 and wall > 0


# --------------------------------------------------------------------------- gates


class _Clock:
    """A fake perf_counter_ns that only the "model calls" advance: the gate's mechanics
    without the machine's timing (a 1 ms sleep takes 5 ms on a loaded 2-core box)."""

    def __init__(self) -> None:
        self.ns = 0

    def perf_counter_ns(self) -> int:
        return self.ns

    # The calls' CPU time is their wall time on this clock (a process alone on a core).
    process_time_ns = perf_counter_ns

    def call(self, seconds: float) -> Callable[[], None]:
        def fn() -> None:
            self.ns += int(seconds * 1e9)

        return fn


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from snapshot_tool.latency import measure as measure_mod

    fake = _Clock()
    monkeypatch.setattr(measure_mod, "time", fake)
    return fake


def test_gate_side_by_side_detects_2x_slowdown(clock: _Clock) -> None:
    check = gate_side_by_side(clock.call(0.001), clock.call(0.002), 1, 0.10, rounds=12,
                                warmup_min_time_s=0.02)
    assert check.verdict == "fail", check
    assert not check.passed
    assert check.mode == "side_by_side" and check.limit == pytest.approx(1.10)
    assert check.ratio > 1.5 and check.ci_low > 1.10
    assert check.rounds == 12
    assert check.baseline.n == check.candidate.n == 2 * check.rounds
    assert "max_drift" in check.note


def test_gate_side_by_side_identical_does_not_fail(clock: _Clock) -> None:
    fn = clock.call(0.001)
    done: list[tuple[int, int]] = []
    check = gate_side_by_side(fn, clock.call(0.001), 1, 0.10, rounds=12,
                                warmup_min_time_s=0.02, progress=lambda d, t: done.append((d, t)))
    assert check.verdict != "fail", check
    assert check.passed
    assert done[-1][0] == done[-1][1] == check.rounds


def _stored(samples: np.ndarray, batch: int = 1, cpu: np.ndarray | None = None
            ) -> Measurement:
    """A golden's stored measurement; ``cpu=None`` is one recorded before CPU time was."""
    arr = np.asarray(samples, dtype=np.int64)
    return Measurement(batch_size=batch, samples_ns=arr, warmup_calls=10, first_call_s=0.1,
                       cold_load_s=0.0, stats=summarize(arr),
                       cpu_ns=None if cpu is None else np.asarray(cpu, dtype=np.int64))


def _fixed(samples_ns: np.ndarray, seen: list[str] | None = None, name: str = "",
           cpu: np.ndarray | None = None, calibration_cpu_s: float | None = None) -> Timer:
    """A Timer returning fixed samples (no timing at all), logging its calls. Its CPU
    samples are ``cpu``, or the wall samples (a call alone on a core) when not given;
    ``calibration_cpu_s`` is the CPU time of calibration runs interleaved with them."""
    arr = np.asarray(samples_ns, dtype=np.int64)
    cpu_arr = arr if cpu is None else np.asarray(cpu, dtype=np.int64)
    probes = None if calibration_cpu_s is None else \
        np.full(11, round(calibration_cpu_s * 1e9), dtype=np.int64)

    def timer(scale: float) -> Measurement:
        if seen is not None:
            seen.append(name)
        return Measurement(batch_size=1, samples_ns=arr, warmup_calls=10, first_call_s=0.0,
                           cold_load_s=0.0, stats=summarize(arr), cpu_ns=cpu_arr,
                           calibration_cpu_ns=probes)

    return timer


def test_gate_stored_same_environment_uses_statistics() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    # Timers are fakes (fixed samples): a slept call takes 4x longer on a loaded box.
    rng = np.random.default_rng(2)
    one_ms = rng.integers(990_000, 1_010_000, 40)
    # Stored run was 2 ms per call; the candidate takes 1 ms: clearly not slower.
    fast = gate_stored(_stored(np.full(40, 2_000_000)), fp, 0.01, _fixed(one_ms), 1,
                       0.25, fingerprint=fp, calibration_s=0.01)
    assert fast.verdict == "pass" and fast.mode == "stored" and fast.basis == "wall"
    # This golden has no CPU samples: judged on wall time as before, and it says so.
    assert "no CPU-time samples" in fast.note and "wall time" in fast.note
    assert fast.cpu_ratio is None and fast.baseline_cpu is None
    assert fast.calibration_ratio == pytest.approx(1.0) and fast.machine_factor is None
    # Stored run was 1 ms; the candidate takes 3 ms: a regression.
    slow = gate_stored(_stored(np.full(40, 1_050_000) + np.arange(40) * 1000), fp, 0.01,
                       _fixed(one_ms * 3), 1, 0.25, fingerprint=fp, calibration_s=0.01)
    assert slow.verdict == "fail" and not slow.passed and "stored_max_drift" in slow.note
    assert slow.uncorrected_ratio == pytest.approx(slow.ratio)


def test_gate_stored_judges_cpu_time_when_the_golden_has_it() -> None:
    """Load stretched the candidate's wall time 3x since record (the machine's queue, not
    the model: its CPU time per call is unchanged). A golden with CPU samples is judged on
    CPU time and passes; both ratios are reported."""
    fp = environment_fingerprint({"intra_op": 1})
    rng = np.random.default_rng(3)
    cpu = rng.integers(990_000, 1_010_000, 40)
    wall = cpu + 50_000  # recorded on a quiet machine: wall ~ CPU
    check = gate_stored(_stored(wall, cpu=cpu), fp, 0.01, _fixed(wall * 3, cpu=cpu), 1, 0.25,
                        fingerprint=fp, calibration_s=0.01, calibration_cpu_s=0.01,
                        stored_calibration_cpu_s=0.01)
    assert check.verdict == "pass" and check.basis == "cpu" and check.note == ""
    assert check.ratio == pytest.approx(1.0) and check.cpu_ratio == pytest.approx(1.0)
    assert check.wall_ratio == pytest.approx(3.0)
    assert check.uncorrected_ratio == pytest.approx(1.0)
    assert check.calibration_cpu_ratio == pytest.approx(1.0)
    assert check.baseline_cpu is not None and check.candidate_cpu is not None
    assert check.baseline_cpu.p50 == pytest.approx(np.median(cpu))
    assert check.baseline.p50 == pytest.approx(np.median(wall))  # wall stats stay wall
    # The same wall samples against a golden without CPU samples: the old wall verdict.
    old = gate_stored(_stored(wall), fp, 0.01, _fixed(wall * 3, cpu=cpu), 1, 0.25,
                      fingerprint=fp, calibration_s=0.01)
    assert old.verdict == "fail" and old.basis == "wall" and old.ratio == pytest.approx(3.0)
    assert "no CPU-time samples" in old.note and old.cpu_ratio is None


def test_gate_stored_cpu_time_catches_a_slowdown() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    rng = np.random.default_rng(4)
    cpu = rng.integers(990_000, 1_010_000, 40)
    # The candidate does 1.5x the work; the machine happens to be quieter now, so its wall
    # time per call is about what the record session measured.
    check = gate_stored(_stored(cpu * 2, cpu=cpu), fp, 0.01,
                        _fixed(cpu * 2, cpu=(cpu * 1.5).astype(np.int64)), 1, 0.25,
                        fingerprint=fp, calibration_s=0.01)
    assert check.verdict == "fail" and check.basis == "cpu"
    assert check.ratio == pytest.approx(1.5, rel=0.01) and check.wall_ratio == pytest.approx(1)
    assert "CPU time per call" in check.note and "stored_max_drift" in check.note
    assert "wall-time ratio 1.000x" in check.note


def test_gate_stored_scales_cpu_time_by_the_interleaved_calibration() -> None:
    """A CPU second buys 1.25x the work it did at record (the calibration workload run
    between the timed calls takes 0.8x its recorded CPU time): an unchanged model's CPU
    time is 0.8x too, and is judged 1.0x; a 1.5x slower model shows only 1.2x as recorded,
    under the 1.25 limit, and is judged 1.5x."""
    fp = environment_fingerprint({"intra_op": 1})
    rng = np.random.default_rng(5)
    cpu = rng.integers(990_000, 1_010_000, 40)
    stored = _stored(cpu, cpu=cpu)

    def gate(factor: float) -> LatencyCheck:
        now = (cpu * factor).astype(np.int64)
        return gate_stored(stored, fp, 0.01, _fixed(now, calibration_cpu_s=0.008), 1, 0.25,
                           fingerprint=fp, calibration_s=0.01, calibration_cpu_s=0.01,
                           stored_calibration_cpu_s=0.010)

    same = gate(0.8)
    assert same.verdict == "pass" and same.basis == "cpu"
    assert same.calibration_cpu_ratio == pytest.approx(0.8)  # the interleaved runs, not 1.0
    assert same.cpu_ratio == pytest.approx(0.8, rel=0.01)  # as recorded
    assert same.ratio == pytest.approx(1.0, rel=0.01)
    assert same.baseline_cpu is not None
    assert same.baseline_cpu.p50 == pytest.approx(0.8 * np.median(cpu), rel=0.01)
    # Judged 1.5x, but the machine moved 1.25x since record, and a model can move about
    # that much further than the workload: not a failure (see drift_limit), and it says so.
    slow = gate(0.8 * 1.5)
    assert slow.cpu_ratio == pytest.approx(1.2, rel=0.01)
    assert slow.verdict == "inconclusive" and slow.ratio == pytest.approx(1.5, rel=0.01)
    assert "scaled by the calibration workload's CPU time 0.800x" in slow.note
    assert "not a failure" in slow.note and "above 1.56x" in slow.note
    # 2x is beyond that too: a failure.
    slower = gate(0.8 * 2.0)
    assert slower.verdict == "fail" and slower.ratio == pytest.approx(2.0, rel=0.01)
    assert "not a failure" not in slower.note


def test_drift_limit_widens_a_failure_by_the_machines_movement_either_way() -> None:
    from snapshot_tool.latency.gate import drift_limit

    assert drift_limit(1.25, None) == 1.25  # no CPU calibration: the limit as configured
    assert drift_limit(1.25, 1.0) == 1.25
    assert drift_limit(1.25, 1.196) == pytest.approx(1.495)
    assert drift_limit(1.25, 0.8) == pytest.approx(1.5625)
    assert drift_limit(1.25, float("nan")) == 1.25


def test_gate_stored_without_candidate_cpu_falls_back_to_wall() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    wall = np.full(40, 1_000_000)
    no_cpu = _stored(wall)
    cand = _fixed(wall)

    def timer(scale: float) -> Measurement:
        return replace(cand(scale), cpu_ns=None)

    check = gate_stored(_stored(wall, cpu=wall), fp, 0.01, timer, 1, 0.25, fingerprint=fp,
                        calibration_s=0.01)
    assert check.basis == "wall" and check.cpu_ratio is None and check.verdict == "pass"
    assert no_cpu.cpu_ns is None


def test_gate_stored_rejects_cpu_samples_of_another_length() -> None:
    with pytest.raises(ValueError, match="CPU samples"):
        gate_stored(_stored(np.full(5, 1000), cpu=np.full(4, 1000)), {}, 0.01,
                    _fixed(np.full(5, 1)), 1, 0.25)


def test_gate_stored_reports_a_moved_calibration_even_on_pass() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    rng = np.random.default_rng(0)
    same = rng.integers(990_000, 1_010_000, 40)
    check = gate_stored(_stored(same), fp, 0.010, _fixed(same), 1, 0.25, fingerprint=fp,
                        calibration_s=0.013)
    assert check.verdict == "pass"
    assert check.calibration_ratio == pytest.approx(1.3)
    assert "calibration workload 1.300x" in check.note and "--self-check" in check.note


def _fake_side_by_side(golden_ns: np.ndarray, candidate_ns: np.ndarray,
                       seen: list[tuple[object, object]]) -> Callable[..., LatencyCheck]:
    """Stands in for gate_side_by_side: the rounds' numbers are given, nothing is timed."""

    def gate(golden_fn: object, candidate_fn: object, batch_size: int, max_drift: float,
             **kw: object) -> LatencyCheck:
        seen.append((golden_fn, candidate_fn))
        ratios = candidate_ns / golden_ns
        est = paired_ratio_estimate(golden_ns, candidate_ns, limit=1 + max_drift)
        return LatencyCheck(batch_size, "side_by_side", decide(est, max_drift),  # type: ignore[arg-type]
                            summarize(golden_ns), summarize(candidate_ns), float(np.median(ratios)),
                            est.ci_low, est.ci_high, est.p_value, 1 + max_drift, golden_ns.size)

    return gate


def test_gate_stored_self_check_corrects_for_the_machine(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The machine got 1.4x slower since record; the candidate is unchanged. Against the
    stored samples that is a 1.4x "regression"; side by side with the golden's own model it
    is ~1, and the golden's model says the machine moved by 1.4x. Fakes throughout: this
    checks the arithmetic and plumbing, not timing."""
    from snapshot_tool.latency import gate as gate_mod

    fp = environment_fingerprint({"intra_op": 1})
    rng = np.random.default_rng(1)
    recorded = rng.integers(990_000, 1_010_000, 60)
    now = (recorded * 1.4).astype(np.int64)
    seen: list[tuple[object, object]] = []
    monkeypatch.setattr(gate_mod, "gate_side_by_side",
                        _fake_side_by_side(now[:30], now[30:], seen))
    pair = (lambda: "golden", lambda: "candidate")
    check = gate_stored(_stored(recorded), fp, 0.01, _fixed(now), 1, 0.25, fingerprint=fp,
                        calibration_s=0.01, self_check=pair)
    assert seen == [pair]
    assert check.machine_factor == pytest.approx(1.4, rel=0.01)
    assert check.uncorrected_ratio == pytest.approx(1.4, rel=0.01)
    assert check.uncorrected_verdict == "fail"  # what the plain stored gate says
    assert check.ratio == pytest.approx(1.0, abs=0.02) and check.verdict == "pass"
    assert check.rounds == 30 and check.baseline.p50 == pytest.approx(np.median(now), rel=0.01)
    assert "self-check" in check.note and "vs the stored samples 1.4" in check.note
    # The correction cannot hide a real slowdown: candidate 1.5x the golden's model now.
    monkeypatch.setattr(gate_mod, "gate_side_by_side", _fake_side_by_side(
        now[:30], (now[30:] * 1.5).astype(np.int64), seen))
    slow = gate_stored(_stored(recorded), fp, 0.01, _fixed((now * 1.5).astype(np.int64)), 1,
                       0.25, fingerprint=fp, calibration_s=0.01, self_check=pair)
    assert slow.verdict == "fail" and slow.ratio == pytest.approx(1.5, rel=0.02)


def test_gate_stored_other_machine_is_advisory_and_scaled() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    other = dict(fp, cpu_model="Some Other CPU")
    check = gate_stored(
        _stored(np.full(40, 1_000_000)), other, 0.010, _fixed(np.full(40, 3_000_000)),
        1, 0.25, fingerprint=fp, calibration_s=0.020,
    )
    assert check.verdict == "advisory" and check.passed
    assert "cpu_model" in check.note and "calibration workload 2.000x" in check.note
    # Stored 1 ms scaled x2 = 2 ms; candidate 3 ms -> 1.5x, not 3x.
    assert check.ratio == pytest.approx(1.5)
    assert check.baseline.p50 == pytest.approx(2_000_000)


def test_gate_stored_other_machine_scales_cpu_samples_by_the_cpu_calibration() -> None:
    fp = environment_fingerprint({"intra_op": 1})
    other = dict(fp, cpu_model="Some Other CPU")
    stored = _stored(np.full(40, 1_000_000), cpu=np.full(40, 1_000_000))
    check = gate_stored(stored, other, 0.010, _fixed(np.full(40, 3_000_000)), 1, 0.25,
                        fingerprint=fp, calibration_s=0.030, stored_calibration_cpu_s=0.010,
                        calibration_cpu_s=0.020)
    assert check.verdict == "advisory" and check.basis == "cpu"
    # CPU: stored 1 ms scaled by the CPU calibration (x2) = 2 ms; candidate 3 ms -> 1.5x.
    assert check.ratio == pytest.approx(1.5) and check.calibration_cpu_ratio == 2.0
    assert check.baseline_cpu is not None and check.baseline_cpu.p50 == pytest.approx(2e6)
    # Wall stats shown scaled by the wall calibration (x3); the raw ratios are unscaled.
    assert check.baseline.p50 == pytest.approx(3e6) and check.cpu_ratio == pytest.approx(3)


def test_gate_stored_rejects_wrong_batch() -> None:
    with pytest.raises(ValueError, match="batch"):
        gate_stored(_stored(np.full(5, 1000), batch=8), {}, 0.01, _fixed(np.full(5, 1)), 1,
                    0.25)


def test_latency_check_passed_property() -> None:
    s = summarize([1, 2, 3])
    base = LatencyCheck(1, "stored", "pass", s, s, 1.0, 0.9, 1.1, 0.5, 1.25, 30)
    assert base.passed
    assert replace(base, verdict="inconclusive").passed
    assert replace(base, verdict="advisory").passed
    assert not replace(base, verdict="fail").passed


def test_gate_side_by_side_alternates_abba_and_baab() -> None:
    log: list[str] = []
    check = gate_side_by_side(lambda: log.append("A"), lambda: log.append("B"), 1, 0.10,
                                rounds=6, warmup_min_time_s=0.0)
    played = check.rounds + 2  # two discarded settling rounds come first
    tail = "".join(log[-4 * played:])
    assert tail == "ABBABAAB" * (played // 2) + "ABBA" * (played % 2)


def test_gate_side_by_side_mean_per_round_option(clock: _Clock) -> None:
    check = gate_side_by_side(clock.call(0.001), clock.call(0.002), 1, 0.10, rounds=12,
                                warmup_min_time_s=0.02, per_round="mean")
    assert check.verdict == "fail" and check.ratio > 1.5


# --------------------------------------------------------------------------- one routine


class _FakeRunner:
    """A model stand-in that logs the batch size of every call (no TensorFlow)."""

    load_seconds = 0.5

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gc_enabled: set[bool] = set()

    def run(self, signature: str, feeds: dict[str, np.ndarray]) -> object:
        import gc

        self.calls.append((signature, len(feeds["x"])))
        self.gc_enabled.add(gc.isenabled())
        return None


def test_measure_pauses_the_garbage_collector_and_restores_it() -> None:
    import gc

    runner = _FakeRunner()
    assert gc.isenabled()
    measure(lambda: runner.run("s", {"x": np.zeros(1)}), 1, min_samples=5, min_time_s=0.0,
            max_time_s=0.1, warmup_min_time_s=0.0)
    assert runner.gc_enabled == {False}
    assert gc.isenabled()


def test_time_model_times_sizes_ascending_on_the_copy_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from snapshot_tool.latency import measure as measure_mod

    monkeypatch.setattr(measure_mod, "MIN_TIME_S", 0.01)
    monkeypatch.setattr(measure_mod, "MIN_SAMPLES", 5)
    runner = _FakeRunner()
    inputs = {"x": np.zeros((8, 2), dtype=np.float32)}
    got, notes = measure_mod.time_model(runner, "serving_default", inputs, [8, 1, 16, 8])
    assert sorted(got) == [1, 8] and list(got) == [1, 8]
    assert notes and "16" in notes[0]
    sizes = [bs for _, bs in runner.calls]
    # Every call at batch 1 comes before the first at batch 8: the shapes a tracing model
    # meets first are the same in record and compare.
    assert sizes.index(8) > max(i for i, bs in enumerate(sizes) if bs == 1)
    assert got[1].cold_load_s == 0.5 and got[8].cold_load_s == 0.0
    # A signature without inputs is timed once, whatever the sizes.
    assert measure_mod.timing_sizes([4, 1], {}) == [1]


def test_timed_batches_slice_only_batched_inputs() -> None:
    from snapshot_tool.latency.measure import batches_to_time

    feeds = {"x": np.zeros((6, 4), np.float32), "keep_prob": np.float32(1.0)}
    timed, notes = batches_to_time([1, 4, 8], feeds)
    assert [bs for bs, _ in timed] == [1, 4]
    assert notes == ["latency at batch size 8 skipped: the inputs hold only 6 samples"]
    for bs, (batch,) in timed:
        assert batch["x"].shape == (bs, 4) and batch["keep_prob"].shape == ()
    # Only scalars: no rows, the same call at any batch size, so timed once.
    timed, notes = batches_to_time([1, 4], {"temperature": np.float32(2.0)})
    assert [bs for bs, _ in timed] == [1] and not notes
