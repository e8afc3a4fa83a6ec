"""Rows and batches of a set of input arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from snapshot_tool.errors import InputsError


def num_rows(arrays: Mapping[str, np.ndarray]) -> int:
    """Samples in ``arrays`` (the leading dimension). A signature without inputs has no
    samples: ``num_rows({}) == 0``, although :func:`batches` still runs it once."""
    for v in arrays.values():
        return int(v.shape[0])
    return 0


def batches(arrays: Mapping[str, np.ndarray], batch_size: int
            ) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of ``batch_size`` rows (the last one may be shorter).

    An empty mapping (a signature without inputs: a counter, a constant table) yields
    exactly one empty batch, so the signature is still called, once, and its outputs are
    recorded; with no sample dimension to split there is nothing to call it more times for.
    """
    if batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {batch_size}")
    if not arrays:
        yield {}
        return
    n = num_rows(arrays)
    for start in range(0, n, batch_size):
        yield {k: v[start:start + batch_size] for k, v in arrays.items()}

