"""Running a model over stored or synthesized inputs: what record and compare share.

Batching and joining outputs, the run-to-run spread margin, TensorFlow's thread pinning,
latency batch slicing and the progress callback type. Nothing here prints.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from snapshot_tool.errors import (
    InputsError,
    SignatureError,
)
from snapshot_tool.inputs import batches, num_rows
from snapshot_tool.model import Model, SignatureInfo

# progress(stage, done, total): the CLI draws bars from it; the library never prints.
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def environment(thread_settings: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Where a golden was recorded: enough to explain a difference, not to reproduce one.

    The latency fingerprint (CPU model, CPUs, quota, TensorFlow, threads, python, numpy,
    platform) explains differences in outputs as well as in timings, so every golden carries
    it, plus the two versions only the golden itself depends on.
    """
    import h5py

    from snapshot_tool.latency import environment_fingerprint

    env: dict[str, Any] = environment_fingerprint(dict(thread_settings or {}))
    env["h5py"] = h5py.__version__
    env["machine"] = platform.machine()
    return env


def _combine(name: str, parts: list[np.ndarray], rows: list[int]) -> tuple[np.ndarray, bool]:
    """Join per-batch outputs. Outputs with a batch dimension are concatenated; outputs
    without one (scalars, per-batch summaries) are stacked, one entry per batch."""
    batched = all(p.ndim >= 1 and p.shape[0] == r for p, r in zip(parts, rows, strict=True))
    if batched:
        try:
            return np.concatenate(parts, axis=0), True
        except ValueError:
            shapes = sorted({p.shape[1:] for p in parts})
            raise SignatureError(
                f"output {name!r} changes its per-sample shape between batches ({shapes}); "
                "record with one batch (--batch-size equal to --num-samples)") from None
    try:
        return np.stack(parts, axis=0), False
    except ValueError:
        raise SignatureError(
            f"output {name!r} has no batch dimension and changes shape between batches; "
            "record with one batch (--batch-size equal to --num-samples)") from None


def run_signature(model: Model, sig: SignatureInfo, inputs: Mapping[str, np.ndarray],
                  batch_size: int, progress: Progress = no_progress,
                  stage: str = "running") -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Run ``sig`` over ``inputs`` batch by batch; returns outputs and whether each is batched."""
    parts: dict[str, list[np.ndarray]] = {}
    rows: list[int] = []
    total = num_rows(inputs)
    done = 0
    progress(stage, 0, total)
    for batch in batches(inputs, batch_size):
        out = model.run(sig.name, batch)
        n = num_rows(batch)
        rows.append(n)
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
        done += n
        progress(stage, done, total)
    combined: dict[str, np.ndarray] = {}
    batched: dict[str, bool] = {}
    for k, ps in parts.items():
        combined[k], batched[k] = _combine(k, ps, rows)
    return combined, batched


def fix_threads() -> dict[str, int]:
    """Pin TensorFlow's thread pools before the runtime starts, and return the settings.

    TensorFlow sizes its pools from the machine when its context first starts; pinning them
    makes timings comparable between record and compare on the same machine, and the values
    are recorded so a different setting shows up in the fingerprint. SNAPSHOT_TOOL_THREADS
    overrides the intra-op count (e.g. 1 for the least noisy latency figures).
    """
    import os

    from snapshot_tool.model import import_tf, tensorflow_thread_settings

    tf = import_tf()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    env = os.environ.get("SNAPSHOT_TOOL_THREADS", "").strip()
    if env and not (env.isdigit() and int(env) > 0):
        raise InputsError(f"SNAPSHOT_TOOL_THREADS={env!r}: expected a positive integer")
    intra = int(env) if env else cpus
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:
        pass  # the runtime already started in this process; report what is in effect
    return tensorflow_thread_settings()


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


def stage_progress(progress: Progress, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(stage, done, total)


# The spread is a range seen over a handful of runs, and golden and candidate are two more
# independent draws; twice the observed range keeps a bounded noise from tripping the gate
# while a real change of the same order as the noise still fails.
SPREAD_MARGIN = 2.0
