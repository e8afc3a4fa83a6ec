"""Timing one callable: warm-up until stable, then timed calls; and which batch sizes are
timed on which slice of the inputs.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.batching import num_rows
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


def call_ns(fn: Callable[[], object]) -> int:
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

    first_ns = call_ns(fn)
    calls, stable, warm = warm_up(
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


def latency_sizes(sizes: Sequence[int] | None, batch_size: int) -> list[int]:
    chosen = list(sizes) if sizes else [1, batch_size]
    if any(b < 1 for b in chosen):
        raise InputsError(f"--latency-batch-sizes must be positive, got {chosen}")
    return sorted(set(chosen))


def slice_batch(inputs: Mapping[str, np.ndarray], bs: int) -> dict[str, np.ndarray] | None:
    if not inputs:
        return {}
    if num_rows(inputs) < bs:
        return None
    return {k: v[:bs] for k, v in inputs.items()}

