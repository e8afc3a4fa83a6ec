"""Merged per-range diff statistics equal the whole-tensor diff (snapshot_tool.diff_merge)."""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest

from snapshot_tool import diff_merge
from snapshot_tool.diff import WorstRow, compare_tensor
from snapshot_tool.tolerance import Tolerance


def _merged(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance, cuts: list[int],
            shuffle: bool = True) -> object:
    bounds = [0, *cuts, golden.shape[0]]
    parts = [diff_merge.partial_diff("y", golden[a:b], candidate[a:b], tol, row_start=a,
                                     total_rows=golden.shape[0])
             for a, b in itertools.pairwise(bounds)]
    if shuffle:  # a combiner folds partials in whatever order the workers finish
        random.Random(len(cuts)).shuffle(parts)
    acc = parts[0]
    for p in parts[1:]:
        acc = diff_merge.merge(acc, p)
    return diff_merge.finish(acc)


def _same(a: object, b: object) -> bool:
    """Field-by-field equality where NaN equals NaN (a worst element may be one, and so may
    a sampled pair of the error summary). The summary's worst rows compare by rank (rows
    outside tolerance and their largest error): among rows that tie, which ones make the
    list is arbitrary in-process too (a partition of each chunk)."""
    def norm(v: object) -> object:
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, WorstRow):
            return (v.mismatched, v.max_abs_diff)
        if isinstance(v, tuple):
            return tuple(norm(x) for x in v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {k: norm(x) for k, x in vars(v).items()}
        return v
    return norm(a) == norm(b)


def _tol(atol: float = 1e-5, rtol: float = 1e-6, frac: float = 0.0, exact: bool = False
         ) -> Tolerance:
    return Tolerance(atol, rtol, frac, True, exact, "test")


CASES = {
    "float_pass": (lambda g, r: g + r.normal(0, 1e-7, g.shape).astype(g.dtype), _tol()),
    "float_fail": (lambda g, r: g + r.normal(0, 1e-3, g.shape).astype(g.dtype), _tol()),
    "allowance": (lambda g, r: g + (r.random(g.shape) < 0.02) * 1.0, _tol(frac=0.05)),
    "nan": (lambda g, r: np.where(r.random(g.shape) < 0.01, np.nan, g), _tol()),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("cuts", [[], [7], [3, 50, 51], [100]])
def test_merged_float_diff_equals_whole(case: str, cuts: list[int]) -> None:
    rng = np.random.default_rng(1)
    golden = rng.normal(size=(120, 3, 5)).astype(np.float32)
    make, tol = CASES[case]
    candidate = make(golden, rng).astype(np.float32)
    whole = compare_tensor("y", golden, candidate, tol)
    merged = _merged(golden, candidate, tol, cuts)
    assert (merged.summary is None) == (whole.summary is None)
    # Ranges inside one diff chunk are summed in pieces, so the mean may move in its last
    # bits (see diff_merge's docstring); every other field is the same computation.
    assert merged.mean_abs_diff == pytest.approx(whole.mean_abs_diff, rel=1e-12, nan_ok=True)
    assert _same(dataclasses.replace(merged, mean_abs_diff=None),  # type: ignore[arg-type]
                 dataclasses.replace(whole, mean_abs_diff=None))


def test_merged_diff_over_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diff_merge, "CHUNK", 64)
    monkeypatch.setattr("snapshot_tool.diff.CHUNK", 64)
    rng = np.random.default_rng(2)
    golden = rng.normal(size=(400, 8)).astype(np.float64)
    candidate = golden + rng.normal(0, 1e-4, golden.shape)
    tol = _tol(frac=0.3)
    whole = compare_tensor("y", golden, candidate, tol)
    # Cuts on chunk boundaries (multiples of 8 rows of 8): the very same additions.
    assert _same(_merged(golden, candidate, tol, [8, 64, 200]), whole)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_])
def test_merged_exact_diff_equals_whole(dtype: type) -> None:
    rng = np.random.default_rng(3)
    golden = rng.integers(0, 2 if dtype is np.bool_ else 200, size=(90, 4)).astype(dtype)
    candidate = golden.copy()
    candidate[40, 1] = not candidate[40, 1] if dtype is np.bool_ else candidate[40, 1] + 1
    candidate[77, 3] = not candidate[77, 3] if dtype is np.bool_ else 0
    exact = dtype is not np.int64
    tol = _tol(0.0, 0.0, exact=exact) if exact else _tol(atol=0.5, rtol=0.0)
    assert _same(_merged(golden, candidate, tol, [41, 60]),
                 compare_tensor("y", golden, candidate, tol))


def test_merged_string_diff_and_shape_change() -> None:
    golden = np.array([b"a", b"b", b"c", b"d"], dtype=object)
    candidate = np.array([b"a", b"x", b"c", b"y"], dtype=object)
    tol = _tol(0.0, 0.0, exact=True)
    assert _same(_merged(golden, candidate, tol, [2]), compare_tensor("y", golden, candidate, tol))
    wide = np.zeros((6, 3), np.float32)
    assert _merged(wide, np.zeros((6, 4), np.float32), _tol(), [3]).status == "shape_changed"


@pytest.mark.parametrize("allow", [False, True])
def test_merged_precision_change_equals_whole(allow: bool) -> None:
    rng = np.random.default_rng(4)
    golden = rng.normal(size=(50, 3)).astype(np.float32)
    candidate = golden.astype(np.float16)
    tol = _tol(atol=1e-3, rtol=1e-3)
    bounds = [0, 20, 33, 50]
    parts = [diff_merge.partial_diff("y", golden[a:b], candidate[a:b], tol, row_start=a,
                                     total_rows=50, allow_dtype_change=allow)
             for a, b in itertools.pairwise(bounds)]
    acc = parts[2]
    for p in (parts[0], parts[1]):
        acc = diff_merge.merge(acc, p)
    whole = compare_tensor("y", golden, candidate, tol, allow_dtype_change=allow)
    assert whole.status == ("ok" if allow else "dtype_changed")
    merged = diff_merge.finish(acc)
    assert merged.mean_abs_diff == pytest.approx(whole.mean_abs_diff, rel=1e-12)
    assert _same(dataclasses.replace(merged, mean_abs_diff=None),
                 dataclasses.replace(whole, mean_abs_diff=None))


@pytest.mark.parametrize("allow", [False, True])
def test_merged_non_float_dtype_change_says_what_in_memory_says(allow: bool) -> None:
    """An int -> float change has no numbers either way, and an allow_dtype_change that
    cannot cover it is named: one verdict (diff.dtype_change_verdict) for both paths."""
    golden = np.arange(12, dtype=np.int32).reshape(6, 2)
    candidate = golden.astype(np.float32)
    tol = _tol()
    whole = compare_tensor("y", golden, candidate, tol, allow_dtype_change=allow)
    parts = [diff_merge.partial_diff("y", golden[a:b], candidate[a:b], tol, row_start=a,
                                     total_rows=6, allow_dtype_change=allow)
             for a, b in ((0, 3), (3, 6))]
    merged = diff_merge.finish(diff_merge.merge(parts[0], parts[1]))
    assert whole.status == merged.status == "dtype_changed"
    assert merged.message == whole.message
    assert ("float precisions only" in whole.message) == allow


def test_precision_change_is_a_change_between_float_formats() -> None:
    from snapshot_tool.dtypes import precision_change

    assert precision_change("float32", "float16") and precision_change("bfloat16", "float64")
    assert not precision_change("float32", "float32")
    assert not precision_change("int32", "float32") and not precision_change("float32", "int8")
