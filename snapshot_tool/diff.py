"""Per-tensor comparison of a candidate output with its golden. Pure numpy, no TensorFlow.

An element fails when ``|c - g| > atol + rtol * |g|`` (NaN equals NaN when ``nan_equal``;
infinities equal only the same infinity). Structural differences (missing, extra, dtype,
shape) are decided first and reported as such, because a numeric diff of arrays that do not
line up would be noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from snapshot_tool.dtypes import common_float, dtype_label, precision_change
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
    # A bounded picture of the errors for the HTML report (numeric outputs only).
    summary: ErrorSummary | None = None

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
    return missing_stored(name, dtype_label(golden), tuple(golden.shape), signature)


def missing_stored(name: str, label: str, shape: tuple[int, ...], signature: str = ""
                   ) -> TensorDiff:
    """:func:`missing` of a golden output known by its dtype label and shape only."""
    return TensorDiff(name=name, status="missing", signature=signature, golden_dtype=label,
                      golden_shape=shape,
                      message="output is in the golden but the candidate does not produce it")


def extra(name: str, candidate: np.ndarray, signature: str = "") -> TensorDiff:
    return extra_stored(name, dtype_label(candidate), tuple(candidate.shape), signature)


def extra_stored(name: str, label: str, shape: tuple[int, ...], signature: str = ""
                 ) -> TensorDiff:
    return TensorDiff(name=name, status="extra", signature=signature, candidate_dtype=label,
                      candidate_shape=shape,
                      message="candidate produces an output the golden does not have")


def base_fields(name: str, golden: tuple[str, tuple[int, ...]],
                candidate: tuple[str, tuple[int, ...]], tol: Tolerance, signature: str = "",
                spread: float | None = None) -> dict[str, Any]:
    """The fields every diff of a golden and a candidate (dtype label, shape) shares."""
    return dict(
        name=name, signature=signature, golden_dtype=golden[0], candidate_dtype=candidate[0],
        golden_shape=golden[1], candidate_shape=candidate[1],
        size=int(np.prod(golden[1], dtype=np.int64)), atol=tol.atol, rtol=tol.rtol,
        max_mismatch_fraction=tol.max_mismatch_fraction, nan_equal=tol.nan_equal,
        exact=tol.exact, tolerance_source=tol.source, spread=spread)


def structural(base: dict[str, Any]) -> TensorDiff | None:
    """A dtype or shape change, decided before any value is looked at; None when golden
    and candidate line up."""
    if base["golden_dtype"] != base["candidate_dtype"]:
        return TensorDiff(status="dtype_changed", **base,
                          message=f"dtype {base['golden_dtype']} -> {base['candidate_dtype']}")
    if base["golden_shape"] != base["candidate_shape"]:
        return TensorDiff(status="shape_changed", **base,
                          message=f"shape {base['golden_shape']} -> {base['candidate_shape']}")
    return None


def uneven_changed(base: dict[str, Any], change: str) -> TensorDiff:
    """A candidate output whose shape changes from batch to batch (``change``: "(2, 2) then
    (1, 2)"), so its batches do not join into an array to line up with the golden's: a
    shape change of that output, values aside. ``base`` from :func:`base_fields`."""
    return TensorDiff(status="shape_changed", **base,
                      message=f"the candidate's shape changes between batches: {change} "
                              f"(the golden holds {base['golden_shape']})")


def compare_tensor(name: str, golden: np.ndarray, candidate: np.ndarray, tol: Tolerance,
                   signature: str = "", spread: float | None = None,
                   summary: bool | None = None, allow_dtype_change: bool = False) -> TensorDiff:
    """``summary``: attach an :class:`ErrorSummary` to a numeric diff; ``None`` (default)
    only when the output fails, because it costs a second pass over the tensors.

    A change of float precision (float32 -> float16, a mixed-precision candidate) is
    compared in the wider dtype, so the report says how far the values moved. It stays a
    ``dtype_changed`` failure unless ``allow_dtype_change``; then the values decide.
    """
    base = base_fields(name, (dtype_label(golden), tuple(golden.shape)),
                       (dtype_label(candidate), tuple(candidate.shape)), tol, signature, spread)
    if base["golden_dtype"] != base["candidate_dtype"]:
        return _dtype_change(golden, candidate, tol, base, summary, allow_dtype_change)
    if golden.shape != candidate.shape:
        return TensorDiff(status="shape_changed", **base,
                          message=f"shape {golden.shape} -> {candidate.shape}")
    if golden.size == 0:
        return TensorDiff(status="ok", **base)
    if golden.dtype.kind in ("O", "S", "U", "b"):
        return _exact_diff(golden, candidate, base)
    return _numeric_diff(golden, candidate, tol, base, summary)


def _dtype_change(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance,
                  base: dict[str, Any], summary: bool | None, allowed: bool) -> TensorDiff:
    was, now = base["golden_dtype"], base["candidate_dtype"]
    comparable = (precision_change(was, now) and golden.shape == candidate.shape
                  and golden.size > 0)
    wide = common_float(was, now) if comparable else None
    return dtype_change_verdict(
        base, None if wide is None else str(wide), allowed, summary,
        lambda s: _numeric_diff(golden.astype(wide), candidate.astype(wide), tol, base, s))


def dtype_change_verdict(base: dict[str, Any], widened: str | None, allowed: bool,
                         summary: bool | None,
                         diff_in_wide: Callable[[bool | None], TensorDiff]) -> TensorDiff:
    """The verdict on a dtype change, for the in-memory diff and the merged one alike. A
    float precision change of same-shaped, non-empty tensors (``widened``: the dtype both
    are diffed in) is judged on its values by ``diff_in_wide(summary)``, and stays a
    failure unless ``allowed`` (``allow_dtype_change``); any other change fails without
    numbers."""
    was, now = base["golden_dtype"], base["candidate_dtype"]
    change = f"dtype {was} -> {now}"
    if widened is None:
        why = "" if precision_change(was, now) or not allowed else \
            " (allow_dtype_change covers float precisions only)"
        return TensorDiff(status="dtype_changed", **base, message=change + why)
    # Not allowed, it fails whatever the values, so it gets the failing outputs' summary.
    d = diff_in_wide(True if summary is None and not allowed else summary)
    if allowed:
        return replace(d, message=f"{change}, allowed; compared in {widened}")
    moved = "within tolerance" if d.passed else f"{d.mismatch_count} element(s) beyond tolerance"
    return replace(d, status="dtype_changed",
                   message=f"{change}; compared in {widened}: {moved}; accept the precision "
                           "change with allow_dtype_change = true for this output")


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


def absolute_differences(golden: np.ndarray, candidate: np.ndarray, nan_equal: bool
                         ) -> np.ndarray:
    """|candidate - golden| element by element, as float64, by the rules every figure of a
    tensor's diff (and ``accept``'s largest change) rests on: integers by their exact
    difference, not their float64 images; equal values by 0 (equal infinities too, which
    subtract to NaN); NaN on one side only, or infinities of opposite signs, by infinity;
    NaN on both sides by 0 when ``nan_equal``, else by infinity. Never NaN."""
    if golden.dtype.kind in "iu" and candidate.dtype.kind in "iu":
        return _int_absdiff(golden, candidate)
    wide = np.complex128 if golden.dtype.kind == "c" else np.float64
    g = golden.astype(wide)
    c = candidate.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        absdiff: np.ndarray = np.abs(c - g)
    absdiff[g == c] = 0.0
    g_nan, c_nan = np.isnan(g), np.isnan(c)
    absdiff[g_nan & c_nan] = 0.0 if nan_equal else np.inf
    absdiff[g_nan ^ c_nan] = np.inf
    absdiff[np.isnan(absdiff)] = np.inf  # inf vs -inf and the like
    return absdiff


def _chunk_figures(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> _Chunk:
    if golden.dtype.kind == "f" and candidate.dtype.kind == "f" \
            and np.isfinite(golden).all() and np.isfinite(candidate).all():
        return _finite_figures(golden, candidate, tol)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        absdiff = absolute_differences(golden, candidate, tol.nan_equal)
        mag = np.abs(golden.astype(np.complex128 if golden.dtype.kind == "c" else np.float64))
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


def _finite_figures(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> _Chunk:
    """:func:`_chunk_figures` of finite floats (the usual case), with the same values: no
    NaN or infinity needs its rule, equal values already subtract to 0, and no |g| is
    infinite; float64 arithmetic as there, with fewer temporaries. Finite values can still
    overflow (-1e308 vs 1e308) or divide by a subnormal: inf, as there, without a warning."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _finite_chunk(golden, candidate, tol)


def _finite_chunk(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance) -> _Chunk:
    absdiff = np.subtract(candidate, golden, dtype=np.float64)
    np.abs(absdiff, out=absdiff)
    mag = np.abs(golden, dtype=np.float64)
    scaled = tol.rtol * mag
    allowed = tol.atol + scaled
    bad = absdiff > allowed
    need = np.subtract(absdiff, scaled, out=scaled)
    if mag.min(initial=np.inf) > 0:
        rel = np.divide(absdiff, mag, out=mag)
    else:
        rel = np.where(mag > 0, absdiff / np.where(mag > 0, mag, 1.0),
                       np.where(absdiff > 0, np.inf, 0.0))
    return _Chunk(absdiff, allowed, bad, rel, need)


def _numeric_diff(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance,
                  base: dict[str, Any], summary: bool | None = None) -> TensorDiff:
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
        worst_candidate=_scalar(candidate[worst]), required_atol=required,
        summary=summarize_errors(golden, candidate, tol) if summary or (summary is None
                                                                        and not ok) else None)


# --- error summary (for the HTML report) -----------------------------------------------------
#
# A failing output can hold millions of elements; the report must not. Each numeric diff
# carries a fixed-size picture instead: a histogram of |c - g| over fixed log-spaced bins (so
# histograms of different outputs and runs line up), a deterministic sample of
# (golden, candidate) pairs for a scatter plot, and the rows (samples along axis 0) with the
# largest errors. Its size depends on nothing but the constants below.

HIST_DECADE_LOW = -12  # 1e-12: below float64 rounding of values near 1; smaller is "tiny"
HIST_DECADE_HIGH = 4  # 1e4: anything larger is reported in the overflow bin
HIST_BINS_PER_DECADE = 4
SAMPLE_PAIRS = 2000
WORST_ROWS = 10


def hist_edges() -> np.ndarray:
    """The fixed bin edges of :attr:`ErrorSummary.counts` (len(counts) + 1 values)."""
    decades = HIST_DECADE_HIGH - HIST_DECADE_LOW
    return np.logspace(HIST_DECADE_LOW, HIST_DECADE_HIGH, decades * HIST_BINS_PER_DECADE + 1)


@dataclass(frozen=True)
class WorstRow:
    """One row (index along axis 0) of an output, ranked by how far it is outside tolerance."""

    row: int
    mismatched: int  # elements of the row outside tolerance
    size: int  # elements per row
    max_abs_diff: float
    worst_index: tuple[int, ...]  # full index of the row's worst element
    golden: float
    candidate: float


@dataclass(frozen=True)
class ErrorSummary:
    """Bounded statistics of ``|c - g|`` for one numeric output (see :func:`hist_edges`).

    ``counts[i]`` is the number of elements with ``edges[i] <= |c-g| < edges[i+1]``;
    ``bad_counts`` the same for elements outside tolerance only. Exact zeros, values below
    the first edge, above the last one and non-finite ones (NaN on one side, inf vs -inf)
    have their own counters so that the histogram accounts for every element.
    """

    counts: tuple[int, ...]
    bad_counts: tuple[int, ...]
    zero: int
    underflow: int
    overflow: int
    nonfinite: int
    bad_zero_or_underflow: int
    max_abs_golden: float  # largest finite |g|: with rtol it bounds the tolerance band
    sample_index: tuple[int, ...]  # flat indices of the sampled pairs
    sample_golden: tuple[float, ...]
    sample_candidate: tuple[float, ...]
    worst_rows: tuple[WorstRow, ...] = ()


def _real(a: np.ndarray) -> np.ndarray:
    # Scatter and histogram axes are real: complex outputs are pictured by their real part
    # (the diff itself, above, uses the complex modulus).
    a = a.astype(np.complex128) if a.dtype.kind == "c" else a.astype(np.float64)
    return np.real(a) if a.dtype.kind == "c" else a


def summarize_errors(golden: np.ndarray, candidate: np.ndarray, tol: Tolerance
                     ) -> ErrorSummary:
    """The :class:`ErrorSummary` of two numeric tensors of one shape, chunk by chunk."""
    flat_g = np.ascontiguousarray(golden).reshape(-1)
    flat_c = np.ascontiguousarray(candidate).reshape(-1)
    acc = _SummaryAccumulator(golden.shape, flat_g, flat_c)
    for start in range(0, flat_g.size, CHUNK):
        acc.add(start, _chunk_figures(flat_g[start:start + CHUNK],
                                      flat_c[start:start + CHUNK], tol))
    return acc.finish(tol)


class _SummaryAccumulator:
    """Builds an :class:`ErrorSummary` chunk by chunk in memory bounded by the constants
    above: per chunk only its :data:`WORST_ROWS` worst rows are kept as candidates."""

    def __init__(self, shape: tuple[int, ...], flat_g: np.ndarray, flat_c: np.ndarray) -> None:
        self.shape = shape
        self.flat_g, self.flat_c = flat_g, flat_c
        n = flat_g.size
        self.row_size = max(1, n // shape[0]) if len(shape) > 1 and shape[0] else 1
        self.nbins = (HIST_DECADE_HIGH - HIST_DECADE_LOW) * HIST_BINS_PER_DECADE
        self.counts = np.zeros(self.nbins, dtype=np.int64)
        self.bad_counts = np.zeros(self.nbins, dtype=np.int64)
        self.zero = self.underflow = self.overflow = self.nonfinite = self.bad_low = 0
        self.max_abs_g = 0.0
        self.cand_rows: list[np.ndarray] = []  # (row, excess, max |c-g|) of candidate rows
        if n <= SAMPLE_PAIRS:
            self.sample = np.arange(n)
        else:
            # Fixed seed: the same tensors always show the same points.
            rng = np.random.default_rng(0)
            self.sample = np.sort(rng.choice(n, SAMPLE_PAIRS, replace=False))

    def add(self, start: int, ch: _Chunk) -> None:
        a = ch.absdiff
        zero = int(np.count_nonzero(a == 0))
        inf = int(np.count_nonzero(np.isinf(a)))  # absdiff is never NaN, see _chunk_figures
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(a)
        v -= HIST_DECADE_LOW
        v *= HIST_BINS_PER_DECADE
        # -inf (exact zeros) and underflow land in bin -1, overflow and inf in bin nbins.
        np.clip(v, -1, self.nbins, out=v)
        idx = np.floor(v, out=v).astype(np.int64) + 1
        both = np.bincount(idx, minlength=self.nbins + 2)
        bad = np.bincount(idx[ch.bad], minlength=self.nbins + 2)
        self.counts += both[1:-1]
        self.bad_counts += bad[1:-1]
        self.zero += zero
        self.underflow += int(both[0]) - zero
        self.overflow += int(both[-1]) - inf
        self.nonfinite += inf
        self.bad_low += int(bad[0])
        g = self.flat_g[start:start + a.size]
        mag = np.abs(g if g.dtype.kind == "c" else g.astype(np.float64))
        self.max_abs_g = max(self.max_abs_g,
                             float(np.max(mag, where=np.isfinite(mag), initial=0.0)))
        self._add_rows(start, ch)

    def _add_rows(self, start: int, ch: _Chunk) -> None:
        # absdiff is never NaN and allowed is finite, so neither is their difference.
        excess = ch.absdiff - ch.allowed
        absdiff = ch.absdiff
        if self.row_size == 1:
            ids = start + np.arange(excess.size)
        else:
            # Row starts inside this chunk, found arithmetically (no per-element index array).
            first = (-start) % self.row_size
            heads = np.arange(first, excess.size, self.row_size)
            if first:
                heads = np.concatenate(([0], heads))
            ids = (start + heads) // self.row_size
            excess = np.maximum.reduceat(excess, heads)
            absdiff = np.maximum.reduceat(absdiff, heads)
        if excess.size > WORST_ROWS:
            keep = np.argpartition(-excess, WORST_ROWS)[:WORST_ROWS]
        else:
            keep = np.arange(excess.size)
        self.cand_rows.append(np.stack([ids[keep].astype(np.float64), excess[keep],
                                        absdiff[keep]], axis=1))

    def finish(self, tol: Tolerance) -> ErrorSummary:
        g = _real(self.flat_g[self.sample])
        c = _real(self.flat_c[self.sample])
        return ErrorSummary(
            counts=tuple(int(x) for x in self.counts),
            bad_counts=tuple(int(x) for x in self.bad_counts),
            zero=self.zero, underflow=self.underflow, overflow=self.overflow,
            nonfinite=self.nonfinite, bad_zero_or_underflow=self.bad_low,
            max_abs_golden=self.max_abs_g,
            sample_index=tuple(int(i) for i in self.sample),
            sample_golden=tuple(float(x) for x in g),
            sample_candidate=tuple(float(x) for x in c),
            worst_rows=self._worst_rows(tol))

    def _worst_rows(self, tol: Tolerance) -> tuple[WorstRow, ...]:
        if not self.cand_rows:
            return ()
        cand = np.concatenate(self.cand_rows)
        # Rank by excess over tolerance (rows that fail worst first), then by |c-g|; a row
        # split across two chunks appears twice, and its first (best-ranked) entry counts.
        cand = cand[np.lexsort((-cand[:, 2], -cand[:, 1]))]
        seen: list[int] = []
        for r in cand[:, 0].astype(np.int64):
            if int(r) not in seen:
                seen.append(int(r))
            if len(seen) == WORST_ROWS:
                break
        return tuple(self._row(r, tol) for r in seen)

    def _row(self, r: int, tol: Tolerance) -> WorstRow:
        # Exact figures of one row, recomputed from the tensors: cheap for ten rows, and
        # exact even where the row straddled chunks.
        lo = r * self.row_size
        g = self.flat_g[lo:lo + self.row_size]
        c = self.flat_c[lo:lo + self.row_size]
        ch = _chunk_figures(g, c, tol)
        with np.errstate(invalid="ignore"):
            excess = ch.absdiff - ch.allowed
        j = int(np.argmax(np.where(np.isnan(excess), np.inf, excess)))
        return WorstRow(
            row=r, mismatched=int(ch.bad.sum()), size=int(g.size),
            max_abs_diff=float(ch.absdiff.max()),
            worst_index=tuple(int(i) for i in np.unravel_index(lo + j, self.shape)),
            golden=float(_real(g[j:j + 1])[0]), candidate=float(_real(c[j:j + 1])[0]))
