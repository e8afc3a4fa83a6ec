"""The all-finite fast paths give the figures the general paths give.

The tensor diff and the agreement cosines skip NaN/inf handling when every value is finite;
a gate must not judge differently, nor show -0.0 where it showed 0.0, because of that. Edge
values: signed zeros, subnormals, values whose difference overflows, float16's extremes.
"""

from __future__ import annotations

import numpy as np
import pytest

from snapshot_tool import diff
from snapshot_tool.metrics import agreement
from snapshot_tool.tolerance import Tolerance

EDGES = np.array([0.0, -0.0, 5e-324, -5e-324, 1e-310, 1.7e308, -1.7e308, 1.0, -1.0,
                  65504.0, 6e-8, 1e-30, 0.1, -2.5])
TOLERANCES = (Tolerance(1e-5, 1e-5, 0.0, True, False, "default"),
              Tolerance(0.0, 0.0, 0.0, True, True, "exact"),
              Tolerance(1e-3, 0.5, 0.0, False, False, "config"))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal values, NaN for NaN, and the same sign bits (a -0.0 would be shown)."""
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a, b, equal_nan=True)
                and np.array_equal(np.signbit(a), np.signbit(b)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("tol", TOLERANCES, ids=lambda t: t.source)
def test_finite_diff_figures_equal_the_general_ones(dtype: type, tol: Tolerance,
                                                    recwarn: pytest.WarningsRecorder) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        with np.errstate(over="ignore"):  # float16 cannot hold 1.7e308: it becomes inf
            g = rng.choice(EDGES, n).astype(dtype)
            c = g.copy() if rng.random() < 0.3 else rng.choice(EDGES, n).astype(dtype)
        if not (np.isfinite(g).all() and np.isfinite(c).all()):
            continue
        fast = diff._finite_figures(g, c, tol)
        # A NaN appended sends the same values down the general path.
        nan = np.array([np.nan], dtype)
        with np.errstate(all="ignore"):
            general = diff._chunk_figures(np.append(g, nan), np.append(c, nan), tol)
        for field in ("absdiff", "allowed", "bad", "rel", "need"):
            assert _same(getattr(fast, field), getattr(general, field)[:n]), (field, g, c)
    # Overflowing or subnormal-divided finite values are inf, as there, without a warning.
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_narrow_row_cosines_match_the_wide_rows_arithmetic() -> None:
    """Rows up to _NARROW columns are reduced column by column; the values must be those of
    np.sum over the row (rtol: the same additions in the same order, which a vectorized
    sum on another CPU may group differently), with the same sign bits."""
    rng = np.random.default_rng(3)
    edges = np.array([0.0, -0.0, 1.0, -1.0, 2.5, 1e-300, 1e300, -3.0, 0.1, 0.7])
    for _ in range(3000):
        n, d = int(rng.integers(1, 5)), int(rng.integers(1, agreement._NARROW + 1))
        x, y = rng.choice(edges, (n, d)), rng.choice(edges, (n, d))
        with np.errstate(over="ignore"):  # raw 1e300 products (cosines scale rows first)
            got, want = agreement._row_dots(x, y), np.sum(x * y, axis=1)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
        assert np.array_equal(np.signbit(got), np.signbit(want)), (x, y, got, want)
