"""Agreement metrics: how closely a candidate's outputs follow the golden's, without labels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from snapshot_tool.config import TASKS
from snapshot_tool.errors import ConfigError
from snapshot_tool.metrics.tasks import (
    Array,
    MetricValue,
    argmax_decisions,
    as_rows,
    binary_decisions,
    in_unit_interval,
    is_float,
    is_text,
    metric_value,
    per_row,
    sigmoid,
    text_values,
)

if TYPE_CHECKING:
    pass


AGREEMENT_METRICS = frozenset({"top1_agreement", "cosine_mean", "cosine_min", "correlation"})
# The lowest value each can take: a share of rows, or a cosine / correlation (a sign flip).
AGREEMENT_LOWEST = {"top1_agreement": 0.0, "cosine_mean": -1.0, "cosine_min": -1.0,
                    "correlation": -1.0}


def _cosines(g: Array, c: Array, identical: bool | None = None) -> Array:
    """Per-row cosine similarity of (N, D) rows; never NaN.

    Two all-zero rows are identical (1.0); a zero row against a non-zero one shares no direction
    (0.0). Rows with NaN/inf count as 1.0 only if both rows are exactly equal, NaN for NaN.
    ``identical``: whether ``g`` and ``c`` are equal (NaN equal to NaN), when the caller
    knows already.
    """
    if g.shape[1] == 0:
        return np.ones(g.shape[0], dtype=np.float64)  # empty rows are equal "zero" rows
    if identical if identical is not None else np.array_equal(g, c, equal_nan=True):
        # Identical outputs, a passing gate's usual case: every row is exactly 1.0 by the
        # rules below, and one comparison costs far less than the per-row arithmetic.
        return np.ones(g.shape[0], dtype=np.float64)
    gfin, cfin = np.isfinite(g), np.isfinite(c)
    if gfin.all() and cfin.all():
        # The usual case: no row needs the non-finite rules, nor a copy of the finite rows.
        return _finite_cosines(g, c)
    finite = np.all(gfin, axis=1) & np.all(cfin, axis=1)
    out = np.zeros(g.shape[0], dtype=np.float64)
    for i in np.flatnonzero(~finite):
        out[i] = 1.0 if np.array_equal(g[i], c[i], equal_nan=True) else 0.0
    out[finite] = _finite_cosines(g[finite], c[finite])
    return out


# Rows at most this wide are reduced column by column: numpy's reductions along a short last
# axis pay a per-row overhead that costs more than the arithmetic (a 4-class head: ~3x).
# numpy adds fewer than 8 values left to right (wider rows pairwise), so up to 7 columns
# the column-by-column sums are the very values of np.sum(axis=1).
_NARROW = 7


def _row_max_abs(x: Array) -> Array:
    a = np.abs(x)
    if x.shape[1] > _NARROW:
        widest: Array = np.max(a, axis=1)
        return widest
    m: Array = a[:, 0].copy()
    for j in range(1, x.shape[1]):
        np.maximum(m, a[:, j], out=m)
    return m


def _row_dots(x: Array, y: Array) -> Array:
    if x.shape[1] > _NARROW:
        summed: Array = np.sum(x * y, axis=1)
        return summed
    # Added left to right, as numpy sums a short row: the very values of np.sum(axis=1),
    # which starts from +0.0 (so a row of -0.0 products sums to +0.0 here too).
    out: Array = x[:, 0] * y[:, 0] + 0.0
    for j in range(1, x.shape[1]):
        out += x[:, j] * y[:, j]
    return out


def _finite_cosines(gf: Array, cf: Array) -> Array:
    """The per-row cosines of finite rows."""
    # Scale each row by its largest magnitude first: cosine is scale-free, and squaring values
    # near the float64 maximum would overflow the norms.
    gs = _row_max_abs(gf)
    cs = _row_max_abs(cf)
    gz, cz = gs == 0, cs == 0
    gn = gf / np.where(gz, 1.0, gs)[:, None]
    cn = cf / np.where(cz, 1.0, cs)[:, None]
    denom = np.sqrt(_row_dots(gn, gn)) * np.sqrt(_row_dots(cn, cn))
    cos = _row_dots(gn, cn) / np.where(denom == 0, 1.0, denom)
    cos = np.where(gz & cz, 1.0, np.where(gz | cz, 0.0, cos))
    # Rounding can leave identical rows at 0.9999999999999998; a `min = 1.0` gate must hold.
    cos[_rows_equal(gf, cf)] = 1.0
    clipped: Array = np.clip(cos, -1.0, 1.0, out=cos)
    return clipped


def _rows_equal(g: Array, c: Array) -> Array:
    eq = g == c
    if g.shape[1] > _NARROW:
        every: Array = np.all(eq, axis=1)
        return every
    out: Array = eq[:, 0].copy()
    for j in range(1, g.shape[1]):
        out &= eq[:, j]
    return out


def _correlation(g: Array, c: Array) -> float:
    """Pearson correlation of all values; never NaN.

    Both constant and equal -> 1.0; one constant, or both constant but different -> 0.0 (there is
    no co-variation to measure, and a shifted constant is not the golden's output). Non-finite
    values must sit at the same positions with the same values, else 0.0.
    """
    gv, cv = g.ravel(), c.ravel()
    gfin, cfin = np.isfinite(gv), np.isfinite(cv)
    if not (np.array_equal(gfin, cfin) and np.array_equal(gv[~gfin], cv[~cfin], equal_nan=True)):
        return 0.0
    gv, cv = gv[gfin], cv[cfin]
    if gv.size == 0 or np.array_equal(gv, cv):
        return 1.0  # exactly, not whatever rounding makes of it
    g_const = bool(np.ptp(gv) == 0)
    c_const = bool(np.ptp(cv) == 0)
    if g_const or c_const:
        return 1.0 if g_const and c_const and gv[0] == cv[0] else 0.0
    # Centre and scale before multiplying so huge or tiny values neither overflow nor underflow.
    with np.errstate(all="ignore"):  # a degenerate result is caught as non-finite below
        gv = gv / np.max(np.abs(gv))
        cv = cv / np.max(np.abs(cv))
        gd = gv - gv.mean()
        cd = cv - cv.mean()
        gd = gd / np.max(np.abs(gd))
        cd = cd / np.max(np.abs(cd))
        r = float(np.sum(gd * cd) / (np.linalg.norm(gd) * np.linalg.norm(cd)))
    return min(1.0, max(-1.0, r)) if math.isfinite(r) else 0.0


def agreement_metrics(
    golden: Array, candidate: Array, task: str, threshold: float = 0.5
) -> dict[str, MetricValue]:
    """How closely ``candidate`` follows ``golden`` (same shape); every value is "higher".

    * classification: ``top1_agreement`` (rows whose argmax matches), ``cosine_mean`` and
      ``cosine_min`` of per-row cosines.
    * binary: ``top1_agreement`` on thresholded decisions (a logit output is thresholded at
      logit(threshold), i.e. sigmoid first); cosines of the rows as (1 - p, p) probability pairs,
      because the cosine of two single positive numbers is always 1 and would gate nothing.
    * regression: ``correlation`` (Pearson over all values) and the cosines; when each row holds a
      single value the whole output is one vector, since a one-value cosine is only a sign test
      that a near-zero value flips.
    * outputs holding predicted labels (non-float, one per row): ``top1_agreement`` only.
    * none: nothing.

    Returns ``{}`` when the shapes differ or there are no rows: agreement is undefined, and the
    tensor diff already fails a shape change.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    g, c = np.asarray(golden), np.asarray(candidate)
    if task == "none" or g.shape != c.shape or (g.ndim and g.shape[0] == 0):
        return {}
    text = is_text(g.dtype) or is_text(c.dtype)
    labels_only = not is_float(g.dtype) and not is_float(c.dtype) and g.ndim <= 2 \
        and per_row(g.shape) == 1
    if task in ("classification", "binary") and (text or labels_only):
        same = text_values(g) == text_values(c) if text else g.ravel() == c.ravel()
        return {"top1_agreement": metric_value("top1_agreement", float(np.mean(same)))}
    if text:
        return {}
    gr, cr = as_rows(g), as_rows(c)
    result: dict[str, MetricValue] = {}
    if task == "classification":
        agree = argmax_decisions(gr) == argmax_decisions(cr)
        result["top1_agreement"] = metric_value("top1_agreement", float(np.mean(agree)))
        cos = _cosines(gr, cr)
    elif task == "binary":
        golden_probs = in_unit_interval(gr.astype(np.float64))
        gd = binary_decisions(gr, threshold, golden_probs).reshape(gr.shape)
        cd = binary_decisions(cr, threshold, golden_probs).reshape(cr.shape)
        result["top1_agreement"] = metric_value(
            "top1_agreement", float(np.mean(np.all(gd == cd, axis=1))))
        cos = _cosines(_as_pairs(gr), _as_pairs(cr))
    else:
        result["correlation"] = metric_value("correlation", _correlation(gr, cr))
        cos = _cosines(gr.reshape(1, -1), cr.reshape(1, -1)) if gr.shape[1] == 1 \
            else _cosines(gr, cr)
    result["cosine_mean"] = metric_value("cosine_mean", float(np.mean(cos)))
    result["cosine_min"] = metric_value("cosine_min", float(np.min(cos)))
    return result


def _as_pairs(scores: Array) -> Array:
    """(N, D) binary scores -> (N, 2D) rows of (1 - p, p); logits go through the sigmoid."""
    p = scores if in_unit_interval(scores) else sigmoid(scores)
    return np.concatenate([1.0 - p, p], axis=1)

