"""Timing one callable: warm-up until stable, then timed calls; and which batch sizes are
timed on which slice of the inputs.

:func:`time_model` / :func:`model_timer` are the one routine ``record`` (the stored
baseline) and ``compare`` (the candidate in stored mode) measure with, so a stored ratio
compares like with like. Each measurement runs on a copy of
the model loaded for timing only, after the outputs run has finished and before anything is
written, one signature at a time, batch sizes in ascending order, with the same warm-up and
with the garbage collector collected then paused (see :func:`measure`). Before this, ``record``
timed a fresh copy while ``compare`` timed the instance that had just run the outputs, in a
different order of first calls per shape: a ``.keras`` model then traced a batch-1-specific
graph in one and a generic one in the other, and the two sessions timed different programs.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.golden.schema import LatencyRecord
from snapshot_tool.inputs.batching import has_rows, num_rows, row_slice
from snapshot_tool.latency.stats import IntArray, LatencyStats, summarize

Progress = Callable[[int, int], None]
#: Warm-up is over when the medians of the two halves of the last window agree this well.
WARMUP_TOLERANCE = 0.10
#: Calls in the warm-up stability window (two halves of 10).
WARMUP_WINDOW = 20
# Below this many timed calls, percentiles and tests mean nothing; max_time_s yields to it.
_MIN_TIMED_CALLS = 5
_PROGRESS_EVERY_NS = 50_000_000


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
    #: Process CPU time (all threads, ns) of each timed call, beside ``samples_ns``; ``None``
    #: for a golden recorded before CPU time was stored. See :func:`timed_call`.
    cpu_ns: IntArray | None = field(default=None, compare=False)
    #: CPU time (ns) of each run of :func:`calibration_workload` interleaved with the timed
    #: calls (``measure(probe=...)``): how fast this machine turned CPU time into work
    #: while the model was timed. ``None`` when no probe ran.
    calibration_cpu_ns: IntArray | None = field(default=None, compare=False)

    @property
    def calibration_cpu_s(self) -> float | None:
        """Median CPU seconds of the interleaved calibration runs, if any ran."""
        if self.calibration_cpu_ns is None or self.calibration_cpu_ns.size == 0:
            return None
        return float(np.median(self.calibration_cpu_ns)) / 1e9


class Runner(Protocol):
    """What timing needs of a loaded model (``models.Model`` is one)."""

    load_seconds: float

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> object: ...


#: Measures once more with ``scale`` times the budget (samples, time) of a default run.
Timer = Callable[[float], Measurement]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then keep the cyclic garbage collector off until the block ends.

    A full collection in a process holding TensorFlow and a loaded model walks ~400k
    objects (1.5 s measured on a loaded 2-core box); whether one lands inside the timed
    calls depends on what else the process allocated before (a golden, a second model),
    which differs between record and compare. Model calls create almost no cyclic garbage
    (no collection in 100 steady-state calls of a MobileNetV2 export), so pausing costs
    nothing and takes that difference out of the samples.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def calibration_workload() -> float:
    """A fixed numpy job (256x256 float32 matmuls + tanh, ~5-20 ms): the same floating-point
    work on every machine and run (fixed seed, fixed shapes). Run with BLAS on one thread
    (:func:`single_threaded_blas`)."""
    rng = np.random.default_rng(20240601)
    n = 256
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = (rng.standard_normal((n, n), dtype=np.float32) / np.float32(math.sqrt(n)))
    half = np.float32(0.5)
    x = a
    for _ in range(32):
        x = np.tanh(x @ b) + a * half
    return float(x.sum())


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS held to one thread, where threadpoolctl is available: the calibration
    workload then measures per-core speed, not how many idle cores there were. TensorFlow
    does not use numpy's BLAS, so a model timed meanwhile is unaffected."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def call_ns(fn: Callable[[], object]) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def timed_call(fn: Callable[[], object]) -> tuple[int, int]:
    """Wall time and process CPU time (ns) of one call of ``fn``.

    Process CPU time sums every thread of the process, so it includes TensorFlow's
    intra-op pool (thread CPU time would see only the calling thread, which mostly waits
    for the pool: 0.2 of 0.55 ms of a call measured here). Unlike wall time it does not grow
    while the process waits for a core: on this 2-core box shared with other test runs, one
    model's wall time per call moved ~3x within seconds while its CPU time moved <30%. What
    it still feels of other load is cache and memory-bandwidth contention, and pool threads
    spinning while a peer is descheduled. The CPU clock is read outside the wall interval,
    so the wall figure pays nothing for it.
    """
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    fn()
    t1 = time.perf_counter_ns()
    c1 = time.process_time_ns()
    return t1 - t0, c1 - c0


def _halves_agree(durations: Sequence[int]) -> bool:
    if len(durations) < 4:
        return False
    half = len(durations) // 2
    m1 = float(np.median(durations[-2 * half:-half]))
    m2 = float(np.median(durations[-half:]))
    lo = min(m1, m2)
    return lo > 0 and abs(m2 - m1) / lo <= WARMUP_TOLERANCE


def warm_up(
    fn: Callable[[], object], *, min_calls: int, min_time_s: float, max_time_s: float
) -> tuple[int, bool, list[int]]:
    """Call ``fn`` until steady; returns (calls made, stable?, their durations in ns)."""
    start = time.perf_counter_ns()
    durations: list[int] = []
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    while True:
        durations.append(call_ns(fn))
        elapsed = time.perf_counter_ns() - start
        if len(durations) >= min_calls and elapsed >= min_ns:
            # The window never includes the very first call: tracing is not steady state.
            window = durations[1:][-WARMUP_WINDOW:]
            if _halves_agree(window):
                return len(durations), True, durations
        if elapsed >= max_ns and len(durations) >= min_calls:
            return len(durations), False, durations


@dataclass(frozen=True)
class _Budget:
    """When the timed calls of one batch size stop: enough samples over enough time, or the
    sample cap, or the time cap once a minimum of calls is in."""

    min_samples: int
    max_samples: int
    min_ns: int
    max_ns: int

    def expected_calls(self, typical_ns: float) -> int:
        """The calls the budget will allow at ``typical_ns`` a call (for progress only)."""
        total = int(min(
            max(self.min_samples, math.ceil(self.min_ns / typical_ns)),
            max(_MIN_TIMED_CALLS, math.floor(self.max_ns / typical_ns)),
            self.max_samples,
        ))
        return max(total, min(self.min_samples, self.max_samples), 1)

    def done(self, calls: int, elapsed_ns: int) -> bool:
        if (calls >= self.min_samples and elapsed_ns >= self.min_ns) or calls >= self.max_samples:
            return True
        return elapsed_ns >= self.max_ns and calls >= _MIN_TIMED_CALLS


def _timed_calls(fn: Callable[[], object], probe: Callable[[], object] | None, budget: _Budget,
                 progress: Progress | None, total: int) -> tuple[list[int], list[int], list[int]]:
    """Wall and CPU ns of each call of ``fn`` until ``budget`` is done, and the CPU ns of
    ``probe`` (the calibration workload) run every PROBE_EVERY_S between them and once
    after the last call."""
    samples: list[int] = []
    cpu: list[int] = []
    probes: list[int] = []
    start = last_report = time.perf_counter_ns()
    next_probe = start
    while True:
        if probe is not None and time.perf_counter_ns() >= next_probe:
            probes.append(timed_call(probe)[1])
            next_probe = time.perf_counter_ns() + int(PROBE_EVERY_S * 1e9)
        wall_ns, cpu_ns = timed_call(fn)
        samples.append(wall_ns)
        cpu.append(cpu_ns)
        t1 = time.perf_counter_ns()
        if budget.done(len(samples), t1 - start):
            break
        if progress is not None and t1 - last_report >= _PROGRESS_EVERY_NS:
            total = max(total, len(samples) + 1)
            progress(len(samples), total)
            last_report = t1
    if probe is not None:
        probes.append(timed_call(probe)[1])
    if progress is not None:
        progress(len(samples), len(samples))
    return samples, cpu, probes


# The default budget of one batch size, for record and compare alike.
MIN_SAMPLES = 30
MIN_TIME_S = 1.0
MAX_TIME_S = 10.0


@gc_paused()
def measure(
    fn: Callable[[], object],
    batch_size: int,
    *,
    min_samples: int = MIN_SAMPLES,
    min_time_s: float = MIN_TIME_S,
    max_time_s: float = MAX_TIME_S,
    cold_load_s: float = 0.0,
    progress: Progress | None = None,
    warmup_min_calls: int = 10,
    warmup_min_time_s: float | None = None,
    warmup_max_time_s: float | None = None,
    max_samples: int = 20_000,
    probe: Callable[[], object] | None = None,
) -> Measurement:
    """Time ``fn`` (which must already materialize its outputs) after warming it up.

    The very first call is timed alone (``first_call_s``). Warm-up then runs at least
    ``warmup_min_calls`` calls (the first included) and ``warmup_min_time_s`` (default
    ``min(0.25, min_time_s)``) until the two halves of the last 20 calls have medians
    within 10%, or ``warmup_max_time_s`` (default ``max_time_s / 2``) runs out.
    Timed calls continue until there are ``min_samples`` of them and ``min_time_s`` has
    passed; ``max_time_s`` or ``max_samples`` stop them earlier (never below 5 calls).
    ``progress(done, total)`` reports timed calls against an estimate of the total.
    The garbage collector is paused throughout (:func:`gc_paused`).

    ``probe`` (normally :func:`calibration_workload`) is run before the first timed call,
    then between timed calls every :data:`PROBE_EVERY_S` of the clock, and after the last;
    its CPU times are ``calibration_cpu_ns``. The CPU time a fixed job takes moves between
    sessions on a shared machine (clock frequency, cache and memory contention from the
    neighbours), and probing while the model is timed measures that at the same moments.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if min_samples < 1 or min_time_s < 0 or max_time_s < min_time_s:
        raise ValueError("need min_samples >= 1 and 0 <= min_time_s <= max_time_s")
    wmin = min(0.25, min_time_s) if warmup_min_time_s is None else warmup_min_time_s
    wmax = max_time_s / 2 if warmup_max_time_s is None else warmup_max_time_s

    first_ns = call_ns(fn)
    calls, stable, warm = warm_up(
        fn,
        min_calls=max(1, warmup_min_calls - 1),
        min_time_s=wmin,
        max_time_s=max(wmin, wmax),
    )
    typical_ns = max(1.0, float(np.median(warm[-WARMUP_WINDOW:])))
    budget = _Budget(min_samples, max_samples, int(min_time_s * 1e9), int(max_time_s * 1e9))
    # gc_paused collected before the warm-up; a second full collection here would cost
    # another second or more in a process holding TensorFlow, for the few cycles warm-up
    # calls leave.
    samples, cpu, probes = _timed_calls(fn, probe, budget, progress,
                                        budget.expected_calls(typical_ns))
    arr = frozen_samples(samples)
    return Measurement(
        batch_size=batch_size,
        samples_ns=arr,
        warmup_calls=1 + calls,
        first_call_s=first_ns / 1e9,
        cold_load_s=float(cold_load_s),
        stats=summarize(arr),
        warmup_stable=stable,
        cpu_ns=frozen_samples(cpu),
        calibration_cpu_ns=frozen_samples(probes) if probe is not None else None,
    )


def frozen_samples(values: Sequence[int] | np.ndarray) -> IntArray:
    """Per-call times as a read-only int64 array (a Measurement is a value)."""
    arr = np.array(values, dtype=np.int64)
    arr.setflags(write=False)
    return arr


def latency_sizes(sizes: Sequence[int] | None, batch_size: int) -> list[int]:
    chosen = list(sizes) if sizes else [1, batch_size]
    if any(b < 1 for b in chosen):
        raise InputsError(f"--latency-batch-sizes must be positive, got {chosen}")
    return sorted(set(chosen))


def slice_batch(inputs: Mapping[str, np.ndarray], bs: int) -> dict[str, np.ndarray] | None:
    """The first ``bs`` rows of the batched inputs, scalar inputs whole; None when there
    are fewer rows. Inputs without rows (none, or only scalars) are the same call at any
    batch size."""
    if not has_rows(inputs):
        return dict(inputs)
    if num_rows(inputs) < bs:
        return None
    return row_slice(inputs, 0, bs)



#: Clock time between two runs of the calibration workload among the timed calls (~10 ms of
#: work each, so about a tenth of the budget).
PROBE_EVERY_S = 0.1
#: The minimum time of one stored-mode measurement (record and compare alike): 3x the
#: default. A stored ratio compares two sessions, each judged on the median of its calls
#: and of the calibration runs between them; one second holds ~10 calibration runs and one
#: state of the machine's load. Over six processes under a load average of ~7 on the 2-core
#: box, the scaled CPU time per call of one model spread 5.2% (sd) at batch 16 over its
#: first second of calls and 2.8% over four seconds (batch 1: 2.5% and 3.1%, no gain).
STORED_MIN_TIME_S = 3.0


def model_timer(runner: Runner, signature: str, batch: Mapping[str, np.ndarray],
                batch_size: int, *, cold_load_s: float = 0.0,
                progress: Progress | None = None) -> Timer:
    """A :data:`Timer` of one signature of ``runner`` at one batch size: ``timer(scale)``
    measures with ``scale`` times the stored-mode budget (:data:`STORED_MIN_TIME_S`), the
    calibration workload interleaved (``measure(probe=...)``). ``cold_load_s`` is reported
    by the first measurement only (the copy was loaded once)."""
    taken: list[int] = []

    def timer(scale: float = 1.0) -> Measurement:
        with single_threaded_blas():
            m = measure(lambda: runner.run(signature, batch), batch_size,
                        min_samples=max(1, round(MIN_SAMPLES * scale)),
                        min_time_s=STORED_MIN_TIME_S * scale,
                        max_time_s=max(MAX_TIME_S, STORED_MIN_TIME_S) * scale,
                        cold_load_s=0.0 if taken else cold_load_s, progress=progress,
                        probe=calibration_workload)
        taken.append(1)
        return m

    return timer


def time_model(runner: Runner, signature: str, inputs: Mapping[str, np.ndarray],
               sizes: Sequence[int], *,
               progress: Callable[[int], Progress | None] = lambda bs: None,
               ) -> tuple[dict[int, Measurement], list[str]]:
    """Measure ``signature`` of ``runner`` (a copy loaded for timing only) at each batch size
    in ascending order; the copy's load time is reported with the first (smallest) one.

    Returns the measurements and notes on sizes skipped for lack of samples. ``record``
    stores exactly this; ``compare`` measures its candidate through :func:`model_timer` in the
    same order with the same budget.
    """
    result: dict[int, Measurement] = {}
    batches, notes = batches_to_time(sizes, inputs)
    for bs, (batch,) in batches:
        timer = model_timer(runner, signature, batch, bs,
                            cold_load_s=0.0 if result else runner.load_seconds,
                            progress=progress(bs))
        result[bs] = timer(1.0)
    return result, notes


Batch = dict[str, np.ndarray]


def batches_to_time(sizes: Sequence[int], feeds: Mapping[str, np.ndarray],
                    *others: Mapping[str, np.ndarray]
                    ) -> tuple[list[tuple[int, tuple[Batch, ...]]], list[str]]:
    """The batch sizes to time, in :func:`timing_sizes` order, each with the first ``bs``
    rows of ``feeds`` and of each of ``others`` (another model's feeds of the same inputs),
    and a note for each size skipped because some of them hold fewer rows: the one place
    record, the stored gate and the side-by-side gate choose what they time."""
    timed: list[tuple[int, tuple[Batch, ...]]] = []
    notes: list[str] = []
    for bs in timing_sizes(sizes, feeds):
        batches = [slice_batch(f, bs) for f in (feeds, *others)]
        fitting = [b for b in batches if b is not None]
        if len(fitting) < len(batches):
            rows = min(num_rows(f) for f in (feeds, *others) if has_rows(f))
            notes.append(f"latency at batch size {bs} skipped: the inputs hold only {rows} "
                         "samples")
            continue
        timed.append((bs, tuple(fitting)))
    return timed, notes


def timing_sizes(sizes: Sequence[int], inputs: Mapping[str, np.ndarray]) -> list[int]:
    """The batch sizes timed, in the order they are timed: ascending, so every copy sees its
    first call of each shape in the same order (a tracing model specializes on the shapes
    it meets first). A signature without batched inputs (none, or only scalars) is the
    same call at any "batch size"."""
    ordered = sorted(set(sizes))
    return ordered if has_rows(inputs) else ordered[:1]


def to_record(m: Measurement, calibration: float,
              calibration_cpu: float | None = None) -> LatencyRecord:
    """What the golden keeps of a measurement: its wall and CPU times per call, the
    calibration workload's wall seconds before timing and its CPU seconds while timing (the
    interleaved runs' median; ``calibration_cpu`` when none ran)."""
    during = m.calibration_cpu_s
    calibration_cpu = during if during is not None else calibration_cpu
    return LatencyRecord.of(
        m.batch_size, m.samples_ns, p50=m.stats.p50, p90=m.stats.p90, p99=m.stats.p99,
        mean=m.stats.mean, std=m.stats.std, warmup_calls=m.warmup_calls,
        cold_load_s=m.cold_load_s, first_call_s=m.first_call_s, calibration=calibration,
        warmup_stable=m.warmup_stable, cpu_ns=m.cpu_ns, calibration_cpu=calibration_cpu)


def from_record(rec: LatencyRecord) -> Measurement:
    """A stored baseline as a measurement (its statistics recomputed from the samples)."""
    return Measurement(batch_size=rec.batch_size, samples_ns=rec.samples_ns,
                       warmup_calls=rec.warmup_calls, first_call_s=rec.first_call_s,
                       cold_load_s=rec.cold_load_s, stats=summarize(rec.samples_ns),
                       cpu_ns=rec.cpu_ns)
