"""Rows and batches of a set of input arrays.

The one rule for which inputs have a sample dimension: every array but a 0-d one. A 0-d
array is a scalar input, a setting rather than data (a TF1 ``keep_prob`` or
``is_training``, a temperature); it has no rows to split, so it is fed unchanged with every
batch and row range. Everything that slices inputs into batches or rows goes through
:func:`row_slice` (or :func:`batches`), and counts rows with :func:`num_rows`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import numpy as np

from snapshot_tool.errors import InputsError


class Shaped(Protocol):
    """An array, or a tensor still in a golden (a ``golden.stream.StoredTensor``)."""

    @property
    def shape(self) -> tuple[int, ...]: ...


def is_scalar(arr: Shaped) -> bool:
    """Whether an input is a scalar setting fed whole with every batch (no sample axis)."""
    return len(arr.shape) == 0


def scalar_names(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The inputs of ``arrays`` that are scalars, sorted."""
    return sorted(k for k, v in arrays.items() if is_scalar(v))


def has_rows(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether any input of ``arrays`` has a sample dimension to split."""
    return any(not is_scalar(v) for v in arrays.values())


def num_rows(arrays: Mapping[str, np.ndarray]) -> int:
    """Samples in ``arrays`` (the leading dimension of the batched ones). Without a batched
    input (no inputs, or only scalar ones) there are no samples: ``num_rows({}) == 0``,
    although :func:`batches` still runs such a signature once."""
    for v in arrays.values():
        if not is_scalar(v):
            return int(v.shape[0])
    return 0


def row_slice(arrays: Mapping[str, np.ndarray], start: int, stop: int
              ) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of every batched input, and every scalar input unchanged."""
    return {k: v if is_scalar(v) else v[start:stop] for k, v in arrays.items()}


def batches(arrays: Mapping[str, np.ndarray], batch_size: int
            ) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of ``batch_size`` rows (the last one may be shorter), each with
    the scalar inputs whole.

    Inputs without a batched array (none at all: a counter, a constant table; or only
    scalars) yield exactly one batch, so the signature is still called, once, and its
    outputs are recorded; with no sample dimension to split there is nothing to call it
    more times for.
    """
    if batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {batch_size}")
    if not has_rows(arrays):
        yield dict(arrays)
        return
    n = num_rows(arrays)
    for start in range(0, n, batch_size):
        yield row_slice(arrays, start, start + batch_size)
