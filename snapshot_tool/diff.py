"""Per-tensor comparison of a candidate output with its golden. Pure numpy, no TensorFlow.

An element fails when ``|c - g| > atol + rtol * |g|`` (NaN equals NaN when ``nan_equal``;
infinities equal only the same infinity). Structural differences (missing, extra, dtype,
shape) are decided first and reported as such, because a numeric diff of arrays that do not
line up would be noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from snapshot_tool.dtypes import dtype_label
from snapshot_tool.tolerance import Tolerance

Status = Literal["ok", "mismatch", "missing", "extra", "dtype_changed", "shape_changed"]


@dataclass(frozen=True)
class TensorDiff:
    name: str
    status: Status
    signature: str = ""
    golden_dtype: str = ""
    candidate_dtype: str = ""
    golden_shape: tuple[int, ...] | None = None
    candidate_shape: tuple[int, ...] | None = None
    size: int = 0
    mismatch_count: int = 0
    mismatch_fraction: float = 0.0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    max_rel_diff: float | None = None
    worst_index: tuple[int, ...] | None = None
    worst_golden: Any = None
    worst_candidate: Any = None
    atol: float = 0.0
    rtol: float = 0.0
    max_mismatch_fraction: float = 0.0
    nan_equal: bool = True
    exact: bool = False
    tolerance_source: str = ""
    required_atol: float | None = None
    spread: float | None = None  # run-to-run spread observed at record time
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def _scalar(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    return v


def missing(name: str, golden: np.ndarray, signature: str = "") -> TensorDiff:
    return TensorDiff(name=name, status="missing", signature=signature,
                      golden_dtype=dtype_label(golden), golden_shape=tuple(golden.shape),
                      message="output is in the golden but the candidate does not produce it")


def extra(name: str, candidate: np.ndarray, signature: str = "") -> TensorDiff:
    return TensorDiff(name=name, status="extra", signature=signature,
                      candidate_dtype=dtype_label(candidate),
                      candidate_shape=tuple(candidate.shape),
                      message="candidate produces an output the golden does not have")


def compare_tensor(name: str, golden: np.ndarray, candidate: np.ndarray, tol: Tolerance,
                   signature: str = "", spread: float | None = None) -> TensorDiff:
    base: dict[str, Any] = dict(
        name=name, signature=signature, golden_dtype=dtype_label(golden),
        candidate_dtype=dtype_label(candidate), golden_shape=tuple(golden.shape),
        candidate_shape=tuple(candidate.shape), size=int(golden.size), atol=tol.atol,
        rtol=tol.rtol, max_mismatch_fraction=tol.max_mismatch_fraction,
        nan_equal=tol.nan_equal, exact=tol.exact, tolerance_source=tol.source, spread=spread)
    if base["golden_dtype"] != base["candidate_dtype"]:
        return TensorDiff(status="dtype_changed", **base,
                          message=f"dtype {base['golden_dtype']} -> {base['candidate_dtype']}")
    if golden.shape != candidate.shape:
        return TensorDiff(status="shape_changed", **base,
                          message=f"shape {golden.shape} -> {candidate.shape}")
    if golden.size == 0:
        return TensorDiff(status="ok", **base)
    if golden.dtype.kind in ("O", "S", "U", "b"):
        return _exact_diff(golden, candidate, base)
    return _numeric_diff(golden, candidate, tol, base)


def _allowed(size: int, fraction: float) -> int:
    # Tiny epsilon so that e.g. 0.1 * 30 counts as 3, not 2.9999.
    return math.floor(fraction * size + 1e-9)


def _exact_diff(golden: np.ndarray, candidate: np.ndarray, base: dict[str, Any]) -> TensorDiff:
    bad = np.asarray(golden != candidate, dtype=bool).reshape(golden.shape)
    count = int(bad.sum())
    worst: tuple[int, ...] | None = None
    wg = wc = None
    if count:
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), golden.shape))
        wg, wc = _scalar(golden[worst]), _scalar(candidate[worst])
    ok = count <= _allowed(golden.size, base["max_mismatch_fraction"])
    return TensorDiff(status="ok" if ok else "mismatch", **base, mismatch_count=count,
                      mismatch_fraction=count / golden.size, worst_index=worst,
                      worst_golden=wg, worst_candidate=wc)


def _int_absdiff(golden: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """|c - g| for integer tensors without wrap-around (uint8 0 - 255) or int64 overflow,
    returned as float64 for the statistics; at least 1 wherever the values differ."""
    if golden.dtype.itemsize < 8:
        exact = np.abs(candidate.astype(np.int64) - golden.astype(np.int64))
        return exact.astype(np.float64)
    # 64-bit: Python integers cannot overflow; only the differing elements pay for it.
    out = np.zeros(golden.shape, dtype=np.float64)
    differ = np.asarray(golden != candidate)
    if differ.any():
        g_obj = golden[differ].astype(object)
        c_obj = candidate[differ].astype(object)
        out[differ] = [max(1.0, float(abs(int(c) - int(g)))) for g, c in zip(g_obj, c_obj,
                                                                         strict=True)]
    return out


# Elements per chunk: large outputs are diffed piece by piece so the float64 temporaries
# stay a few MB instead of a dozen copies of the whole tensor (benchmarks/overhead.py).
CHUNK = 1 << 18


@dataclass
class _Chunk:
    """Per-element figures for one flat slice of the tensors."""

    absdiff: np.ndarray
    allowed: np.ndarray
    bad: np.ndarray
    rel: np.ndarray
    need: np.ndarray  # |c-g| - rtol*|g|: the atol this element would need


def _chunk_figures(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> _Chunk:
    wide = np.complex128 if golden.dtype.kind == "c" else np.float64
    g = golden.astype(wide)
    c = candidate.astype(wide)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        absdiff = _int_absdiff(golden, candidate) if golden.dtype.kind in "iu" else np.abs(c - g)
        g_nan, c_nan = np.isnan(g), np.isnan(c)
        # Equal infinities subtract to NaN, so equality is decided on its own; integers on
        # their exact values, not their float64 images.
        same = np.asarray(golden == candidate) if golden.dtype.kind in "iu" else (g == c)
        absdiff[same] = 0.0
        # One NaN side, or both NaN when NaN is not equal to NaN: infinitely wrong.
        both_nan = g_nan & c_nan
        absdiff[both_nan] = 0.0 if tol.nan_equal else np.inf
        absdiff[g_nan ^ c_nan] = np.inf
        absdiff[np.isnan(absdiff)] = np.inf  # inf vs -inf and the like
        mag = np.abs(g)
        mag[~np.isfinite(mag)] = 0.0
        allowed = tol.atol + tol.rtol * mag
        bad = absdiff > allowed
        if golden.dtype.kind in "iu" and tol.exact:
            # float64 holds integers exactly only up to 2**53; an exact comparison must not
            # round 2**53 + 1 onto 2**53.
            bad = np.asarray(golden != candidate)
        rel = np.where(mag > 0, absdiff / np.where(mag > 0, mag, 1.0),
                       np.where(absdiff > 0, np.inf, 0.0))
        need = absdiff - tol.rtol * mag
    return _Chunk(absdiff, allowed, bad, rel, need)


def _numeric_diff(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance,
                  base: dict[str, Any]) -> TensorDiff:
    n = golden.size
    k = _allowed(n, tol.max_mismatch_fraction)
    flat_g = np.ascontiguousarray(golden).reshape(-1)
    flat_c = np.ascontiguousarray(candidate).reshape(-1)
    count = 0
    sum_abs = 0.0
    max_abs = max_rel = -np.inf
    worst_excess, worst_excess_at = -np.inf, 0
    worst_abs, worst_abs_at = -np.inf, 0
    tops: list[np.ndarray] = []  # the k+1 largest `need` values of each chunk
    for start in range(0, n, CHUNK):
        ch = _chunk_figures(flat_g[start:start + CHUNK], flat_c[start:start + CHUNK], tol)
        count += int(ch.bad.sum())
        sum_abs += float(ch.absdiff.sum())
        max_abs = max(max_abs, float(ch.absdiff.max()))
        max_rel = max(max_rel, float(ch.rel.max()))
        with np.errstate(invalid="ignore"):
            excess = ch.absdiff - ch.allowed
        i = int(np.argmax(excess))
        if excess[i] > worst_excess:
            worst_excess, worst_excess_at = float(excess[i]), start + i
        j = int(np.argmax(ch.absdiff))
        if ch.absdiff[j] > worst_abs:
            worst_abs, worst_abs_at = float(ch.absdiff[j]), start + j
        if k < n:
            keep = min(k + 1, ch.need.size)
            tops.append(np.partition(ch.need, ch.need.size - keep)[ch.need.size - keep:])
    flat_worst = worst_excess_at if count else worst_abs_at
    worst = tuple(int(i) for i in np.unravel_index(flat_worst, golden.shape))
    # Smallest atol that passes with the same rtol and mismatch allowance: the (k+1)-th
    # largest |c-g| - rtol*|g| over the whole tensor. That is the number to paste into the
    # config if the change is accepted.
    if k >= n:
        required = 0.0
    else:
        top = np.concatenate(tops)
        required = max(0.0, float(np.partition(top, top.size - 1 - k)[top.size - 1 - k]))
    if tol.exact and golden.dtype.kind in ("i", "u"):
        required = max(0.0, float(np.ceil(required)))
    ok = count <= k
    return TensorDiff(
        status="ok" if ok else "mismatch", **base, mismatch_count=count,
        mismatch_fraction=count / n, max_abs_diff=max_abs, mean_abs_diff=sum_abs / n,
        max_rel_diff=max_rel, worst_index=worst, worst_golden=_scalar(golden[worst]),
        worst_candidate=_scalar(candidate[worst]), required_atol=required)
