"""Per-output diff statistics that merge across row ranges: the sharded form of
:func:`snapshot_tool.diff.compare_tensor`. Pure numpy, no TensorFlow.

A worker diffs the rows it holds into a :class:`DiffPartial`; partials of disjoint row
ranges merge in any order (``merge`` is associative and commutative), and :func:`finish`
turns the merged partial into the same :class:`TensorDiff` an in-process diff of the whole
tensor gives. What is kept, and why it merges exactly:

- mismatch count, element count: sums of integers;
- max abs and max rel error: maxima;
- the worst element (largest excess over the tolerance when something fails, else the
  largest abs error), with both values: a maximum whose ties go to the lowest global flat
  index, which is what a front-to-back scan of the whole tensor picks;
- the smallest passing atol: the (k+1)-th largest ``|c-g| - rtol*|g|`` over the tensor, where
  k is the mismatch allowance; each partial keeps its own k+1 largest, and the k+1 largest of
  a union are among the union of each part's k+1 largest;
- the sum of abs errors, for the mean: one float per diff chunk, keyed by the chunk's global
  position and added in that order at the end. Chunks are laid on the whole tensor's flat
  index (:data:`snapshot_tool.diff.CHUNK`), so when a row range starts on a chunk boundary
  the additions are the very ones the in-process diff makes; otherwise a chunk split
  between two ranges is summed in two pieces, which can differ from the in-process mean in
  the last bits (never in a verdict: the mean gates nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snapshot_tool.diff import (
    CHUNK,
    WORST_ROWS,
    ErrorSummary,
    TensorDiff,
    WorstRow,
    _allowed,
    _chunk_figures,
    _real,
    _scalar,
    _SummaryAccumulator,
    base_fields,
    dtype_change_verdict,
)
from snapshot_tool.dtypes import common_float, dtype_label, precision_change
from snapshot_tool.tolerance import Tolerance

# (value, global flat index, golden value, candidate value); index -1 when nothing seen.
Worst = tuple[float, int, Any, Any]
_NONE: Worst = (-math.inf, -1, None, None)


@dataclass
class SummaryPartial:
    """The error summary (the HTML report's histogram, scatter sample and worst rows) of
    some rows: histogram counts add up; the scatter sample is the in-process one (a seeded
    choice of flat indices of the whole tensor), each range contributing the pairs it holds;
    worst rows are whole rows (ranges hold whole rows), the best-ranked of each range kept."""

    counts: np.ndarray
    bad_counts: np.ndarray
    zero: int
    underflow: int
    overflow: int
    nonfinite: int
    bad_low: int
    max_abs_golden: float
    sample: list[tuple[int, float, float]]
    # (excess, max |c-g|, (range start, rank in the range), row), best first
    rows: list[tuple[float, float, tuple[int, int], WorstRow]]

    def merge(self, o: SummaryPartial) -> SummaryPartial:
        return SummaryPartial(
            self.counts + o.counts, self.bad_counts + o.bad_counts, self.zero + o.zero,
            self.underflow + o.underflow, self.overflow + o.overflow,
            self.nonfinite + o.nonfinite, self.bad_low + o.bad_low,
            max(self.max_abs_golden, o.max_abs_golden), self.sample + o.sample,
            _best_rows(self.rows + o.rows))

    def finish(self) -> ErrorSummary:
        sample = sorted(self.sample)
        return ErrorSummary(
            counts=tuple(int(x) for x in self.counts),
            bad_counts=tuple(int(x) for x in self.bad_counts), zero=self.zero,
            underflow=self.underflow, overflow=self.overflow, nonfinite=self.nonfinite,
            bad_zero_or_underflow=self.bad_low, max_abs_golden=self.max_abs_golden,
            sample_index=tuple(i for i, _, _ in sample),
            sample_golden=tuple(g for _, g, _ in sample),
            sample_candidate=tuple(c for _, _, c in sample),
            worst_rows=tuple(r for _, _, _, r in self.rows))


Ranked = tuple[float, float, tuple[int, int], WorstRow]


def _best_rows(rows: list[Ranked]) -> list[Ranked]:
    # Ranked as in-process: by excess over tolerance, then by |c-g|; ties keep the order of
    # a front-to-back scan (range by range, then the in-process order within a range).
    return sorted(rows, key=lambda t: (-t[0], -t[1], t[2]))[:WORST_ROWS]


class _Offset:
    """A range's flat values addressed by the whole tensor's flat indices, so the in-process
    summary accumulator can run on one range as if it held the whole tensor."""

    def __init__(self, values: np.ndarray, offset: int, size: int) -> None:
        self.values, self.offset, self.size = values, offset, size

    def __getitem__(self, key: slice) -> np.ndarray:
        return self.values[key.start - self.offset:key.stop - self.offset]


@dataclass
class DiffPartial:
    """Diff statistics of one output over some rows of the golden (mutable: merged in place
    by a combiner, which saves a copy per element it folds in)."""

    name: str
    signature: str
    golden_dtype: str
    candidate_dtype: str
    golden_tail: tuple[int, ...]
    candidate_tail: tuple[int, ...]
    golden_rows: int = 0
    candidate_rows: int = 0
    total_rows: int = 0  # the whole golden's axis-0 length, so k is known in every worker
    tol: Tolerance | None = None
    spread: float | None = None
    exact_kind: bool = False  # strings and bools: equality only
    allow_dtype_change: bool = False
    widened: str = ""  # a float precision change, diffed in this dtype (as in-process)
    shape_ok: bool = True
    count: int = 0
    sums: list[tuple[int, float]] = field(default_factory=list)
    max_abs: float = -math.inf
    max_rel: float = -math.inf
    worst_excess: Worst = _NONE
    worst_abs: Worst = _NONE
    first_bad: Worst = _NONE
    need_top: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    summary: SummaryPartial | None = None


def _better(a: Worst, b: Worst) -> Worst:
    """The larger value; on a tie, the lower global index (a front-to-back scan's pick)."""
    if a[1] < 0:
        return b
    if b[1] < 0:
        return a
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if a[1] < b[1] else b


def _size(tail: tuple[int, ...]) -> int:
    return int(np.prod(tail, dtype=np.int64)) if tail else 1


def _k(p: DiffPartial) -> int:
    n = p.total_rows * _size(p.golden_tail)
    return _allowed(n, p.tol.max_mismatch_fraction if p.tol else 0.0)


def partial_diff(name: str, golden: np.ndarray, candidate: np.ndarray, tol: Tolerance, *,
                 row_start: int, total_rows: int, signature: str = "",
                 spread: float | None = None, allow_dtype_change: bool = False,
                 summarize: bool = True) -> DiffPartial:
    """Diff rows ``[row_start, row_start + len(golden))`` of a tensor with ``total_rows``.

    ``summarize=False`` skips the error summary (about half the work of a numeric block),
    for a caller that never reports it."""
    p = DiffPartial(name, signature, dtype_label(golden), dtype_label(candidate),
                    tuple(golden.shape[1:]), tuple(candidate.shape[1:]),
                    golden_rows=int(golden.shape[0]), candidate_rows=int(candidate.shape[0]),
                    total_rows=total_rows, tol=tol, spread=spread,
                    exact_kind=golden.dtype.kind in ("O", "S", "U", "b"),
                    allow_dtype_change=allow_dtype_change)
    p.shape_ok = golden.shape == candidate.shape
    if p.golden_dtype != p.candidate_dtype:
        if not (precision_change(p.golden_dtype, p.candidate_dtype) and p.shape_ok
                and golden.size):
            return p
        # A float precision change is diffed in a dtype holding both, as in-process.
        wide = common_float(p.golden_dtype, p.candidate_dtype)
        p.widened = str(wide)
        golden, candidate = golden.astype(wide), candidate.astype(wide)
    if not p.shape_ok or not golden.size:
        return p
    offset = row_start * _size(p.golden_tail)
    flat_g = np.ascontiguousarray(golden).reshape(-1)
    flat_c = np.ascontiguousarray(candidate).reshape(-1)
    if p.exact_kind:
        _exact_into(p, flat_g, flat_c, offset)
    else:
        _numeric_into(p, flat_g, flat_c, offset, tol, summarize)
    return p


def _exact_into(p: DiffPartial, g: np.ndarray, c: np.ndarray, offset: int) -> None:
    bad = np.asarray(g != c, dtype=bool).reshape(-1)
    p.count = int(bad.sum())
    if p.count:
        i = int(np.argmax(bad))
        p.first_bad = (0.0, offset + i, _scalar(g[i]), _scalar(c[i]))


def _numeric_into(p: DiffPartial, g: np.ndarray, c: np.ndarray, offset: int,
                  tol: Tolerance, summarize: bool = True) -> None:
    keep_k = _k(p) + 1
    tops: list[np.ndarray] = []
    n = p.total_rows * _size(p.golden_tail)
    summary: _SummaryAccumulator | None = None
    if summarize:
        # The accumulator only slices its arrays at flat indices of the whole tensor.
        whole_g: Any = _Offset(g, offset, n)
        whole_c: Any = _Offset(c, offset, n)
        summary = _SummaryAccumulator((p.total_rows, *p.golden_tail), whole_g, whole_c)
    # Cut at the whole tensor's chunk boundaries so per-chunk sums line up with in-process.
    cuts = list(range(offset - offset % CHUNK + CHUNK, offset + g.size, CHUNK))
    for lo, hi in zip([offset, *cuts], [*cuts, offset + g.size], strict=True):
        a, b = lo - offset, hi - offset
        ch = _chunk_figures(g[a:b], c[a:b], tol)
        if summary is not None:
            summary.add(lo, ch)
        bad = int(np.count_nonzero(ch.bad))
        p.count += bad
        p.sums.append((lo, float(ch.absdiff.sum())))
        p.max_abs = max(p.max_abs, float(ch.absdiff.max()))
        p.max_rel = max(p.max_rel, float(ch.rel.max()))
        if bad:
            # The worst excess only names the worst element when something fails, and then
            # it lies in a chunk with a failing element (excess > 0 exactly there).
            with np.errstate(invalid="ignore"):
                excess = ch.absdiff - ch.allowed
            i = int(np.argmax(excess))
            p.worst_excess = _better(p.worst_excess, (float(excess[i]), lo + i,
                                                      _scalar(g[a + i]), _scalar(c[a + i])))
        j = int(np.argmax(ch.absdiff))
        p.worst_abs = _better(p.worst_abs, (float(ch.absdiff[j]), lo + j,
                                            _scalar(g[a + j]), _scalar(c[a + j])))
        tops.append(_largest(ch.need, keep_k))
    p.need_top = _largest(np.concatenate(tops), keep_k)
    if summary is not None:
        p.summary = _summary_of(summary, g, c, offset, tol)


def _summary_of(acc: _SummaryAccumulator, g: np.ndarray, c: np.ndarray, offset: int,
                tol: Tolerance) -> SummaryPartial:
    mine = acc.sample[(acc.sample >= offset) & (acc.sample < offset + g.size)]
    gs = _real(g[mine - offset])
    cs = _real(c[mine - offset])
    rows: list[Ranked] = []
    if acc.cand_rows:
        cand = np.concatenate(acc.cand_rows)
        cand = cand[np.lexsort((-cand[:, 2], -cand[:, 1]))]
        seen: set[int] = set()
        for row, excess, absdiff in cand:
            if int(row) not in seen and len(seen) < WORST_ROWS:
                seen.add(int(row))
                rows.append((float(excess), float(absdiff), (offset, len(rows)),
                             acc._row(int(row), tol)))
    return SummaryPartial(acc.counts, acc.bad_counts, acc.zero, acc.underflow, acc.overflow,
                          acc.nonfinite, acc.bad_low, acc.max_abs_g,
                          [(int(i), float(x), float(y)) for i, x, y in zip(mine, gs, cs,
                                                                           strict=True)],
                          _best_rows(rows))


def _largest(values: np.ndarray, keep: int) -> np.ndarray:
    if values.size <= keep:
        return values
    if keep == 1:  # no mismatch allowed, the usual case: the maximum, without a partition
        top: np.ndarray = values[np.argmax(values)][None]
        return top
    return np.partition(values, values.size - keep)[values.size - keep:]


def merge(a: DiffPartial, b: DiffPartial) -> DiffPartial:
    """Fold ``b`` (another row range of the same output) into ``a`` and return ``a``."""
    if a.golden_tail != b.golden_tail or a.candidate_tail != b.candidate_tail \
            or a.candidate_dtype != b.candidate_dtype:
        a.shape_ok = False
    a.shape_ok = a.shape_ok and b.shape_ok
    a.widened = a.widened if a.widened == b.widened else ""
    a.golden_rows += b.golden_rows
    a.candidate_rows += b.candidate_rows
    a.count += b.count
    a.sums.extend(b.sums)
    a.max_abs = max(a.max_abs, b.max_abs)
    a.max_rel = max(a.max_rel, b.max_rel)
    a.worst_excess = _better(a.worst_excess, b.worst_excess)
    a.worst_abs = _better(a.worst_abs, b.worst_abs)
    first = [w for w in (a.first_bad, b.first_bad) if w[1] >= 0]
    a.first_bad = min(first, key=lambda w: w[1]) if first else _NONE
    a.need_top = _largest(np.concatenate([a.need_top, b.need_top]), _k(a) + 1)
    if a.summary is not None and b.summary is not None:
        a.summary = a.summary.merge(b.summary)
    else:
        a.summary = a.summary or b.summary
    return a


def finish(p: DiffPartial, summary: bool | None = None) -> TensorDiff:
    """The merged statistics as the :class:`TensorDiff` of the whole tensor; ``summary`` as
    in :func:`snapshot_tool.diff.compare_tensor` (None: for a failing output only)."""
    tol = p.tol or Tolerance(0.0, 0.0, 0.0, True, True, "")
    golden_shape = (p.golden_rows, *p.golden_tail)
    candidate_shape = (p.candidate_rows, *p.candidate_tail)
    n = p.golden_rows * _size(p.golden_tail)
    base = base_fields(p.name, (p.golden_dtype, golden_shape),
                       (p.candidate_dtype, candidate_shape), tol, p.signature, p.spread)
    if p.golden_dtype != p.candidate_dtype:
        return _dtype_change(p, base, golden_shape, candidate_shape, summary)
    if golden_shape != candidate_shape or not p.shape_ok:
        return TensorDiff(status="shape_changed", **base,
                          message=f"shape {golden_shape} -> {candidate_shape}")
    if n == 0:
        return TensorDiff(status="ok", **base)
    return _stats(p, base, tol, n, golden_shape, summary)


def _dtype_change(p: DiffPartial, base: dict[str, Any], golden_shape: tuple[int, ...],
                  candidate_shape: tuple[int, ...], summary: bool | None) -> TensorDiff:
    """What :func:`snapshot_tool.diff.compare_tensor` says of a dtype change
    (:func:`~snapshot_tool.diff.dtype_change_verdict`), from the merged statistics."""
    n = base["size"]
    same = bool(p.widened and p.shape_ok and golden_shape == candidate_shape and n)
    tol = p.tol or Tolerance(0.0, 0.0, 0.0, True, True, "")
    return dtype_change_verdict(base, p.widened if same else None, p.allow_dtype_change,
                                summary, lambda s: _stats(p, base, tol, n, golden_shape, s))


def _stats(p: DiffPartial, base: dict[str, Any], tol: Tolerance, n: int,
           golden_shape: tuple[int, ...], summary: bool | None) -> TensorDiff:
    """The merged statistics of same-shaped tensors."""
    k = _allowed(n, tol.max_mismatch_fraction)
    ok = p.count <= k
    if p.exact_kind:
        worst = _unravel(p.first_bad[1], golden_shape) if p.count else None
        return TensorDiff(status="ok" if ok else "mismatch", **base, mismatch_count=p.count,
                          mismatch_fraction=p.count / n, worst_index=worst,
                          worst_golden=p.first_bad[2] if p.count else None,
                          worst_candidate=p.first_bad[3] if p.count else None)
    sum_abs = 0.0
    for _, s in sorted(p.sums, key=lambda piece: piece[0]):
        sum_abs += s
    w = p.worst_excess if p.count else p.worst_abs
    required = _required(p.need_top, k, n, tol, p.golden_dtype)
    return TensorDiff(
        status="ok" if ok else "mismatch", **base, mismatch_count=p.count,
        mismatch_fraction=p.count / n, max_abs_diff=p.max_abs, mean_abs_diff=sum_abs / n,
        max_rel_diff=p.max_rel, worst_index=_unravel(w[1], golden_shape), worst_golden=w[2],
        worst_candidate=w[3], required_atol=required,
        summary=p.summary.finish() if p.summary is not None and (
            summary or (summary is None and not ok)) else None)


def _required(top: np.ndarray, k: int, n: int, tol: Tolerance, dtype: str) -> float:
    if k >= n:
        required = 0.0
    else:
        required = max(0.0, float(np.partition(top, top.size - 1 - k)[top.size - 1 - k]))
    if tol.exact and dtype.startswith(("int", "uint")):
        required = max(0.0, float(np.ceil(required)))
    return required


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape))

