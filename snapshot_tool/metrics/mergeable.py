"""Task and agreement metrics from accumulators that merge across row ranges: the sharded
form of :func:`snapshot_tool.metrics.tasks.task_metrics` and
:func:`snapshot_tool.metrics.agreement.agreement_metrics`.

A worker turns the rows it holds into a :class:`MetricsPartial`; partials of disjoint row
ranges merge in any order, and :func:`finish` gives the same metric names, and values equal
up to floating-point summation order, that the in-process functions give on the whole
output. What each metric keeps:

- accuracy, balanced accuracy, precision/recall/F1 (macro), F1 (weighted): a confusion
  table of (label, prediction) counts; the averages over classes follow scikit-learn's
  definitions (labels or predictions present, zero_division=0);
- top-k accuracy: hit counts; log-loss: the sum of per-row losses (scikit-learn's, with its
  clipping); mae, mse, rmse, r2, max error: per-column sums, Chan's parallel update of
  means and squared deviations, and a maximum;
- agreement: agreeing-row counts, the sum and minimum of per-row cosines, and for
  correlation (and the cosine of a one-value-per-row output, taken over the whole output as
  one vector) the co-moments of golden and candidate;
- ROC AUC and the median absolute error have no constant-size exact form: the partial keeps
  each row's score (or absolute error) and label, 8 bytes per row and class, and computes
  them once at the end. Every other metric is constant-size per output.

Choices the in-process code makes on the whole output (probabilities vs logits, whether
rows form a distribution, whether all values are finite, which classes occur) are facts
merged with "and"/"or"; where a row's value depends on such a choice, the partial keeps
both variants and :func:`finish` picks the one the merged fact selects.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.metrics.agreement import _cosines
from snapshot_tool.metrics.tasks import (
    _DIST_TOL,
    _DIST_TOL_HALF,
    _TOP_K,
    MetricValue,
    _check_rows,
    _class_labels,
    _label_kind,
)
from snapshot_tool.metrics.tasks import argmax_decisions as _argmax_decisions
from snapshot_tool.metrics.tasks import as_rows as _rows
from snapshot_tool.metrics.tasks import binary_decisions as _binary_decisions
from snapshot_tool.metrics.tasks import in_unit_interval as _in_unit_interval
from snapshot_tool.metrics.tasks import is_float as _is_float
from snapshot_tool.metrics.tasks import is_text as _is_text
from snapshot_tool.metrics.tasks import metric_value as _mv
from snapshot_tool.metrics.tasks import per_row as _per_row
from snapshot_tool.metrics.tasks import sigmoid as _sigmoid
from snapshot_tool.metrics.tasks import text_values as _text_values


@dataclass
class Moments:
    """Count, means and co-moments of (x, y) pairs, merged with Chan et al.'s update."""

    n: int = 0
    mx: float = 0.0
    my: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    @staticmethod
    def of(x: np.ndarray, y: np.ndarray) -> Moments:
        if x.size == 0:
            return Moments()
        mx, my = float(x.mean()), float(y.mean())
        dx, dy = x - mx, y - my
        return Moments(int(x.size), mx, my, float(dx @ dx), float(dy @ dy), float(dx @ dy))

    def merge(self, o: Moments) -> Moments:
        if o.n == 0:
            return self
        if self.n == 0:
            return o
        n = self.n + o.n
        dx, dy = o.mx - self.mx, o.my - self.my
        f = self.n * o.n / n
        return Moments(n, self.mx + dx * o.n / n, self.my + dy * o.n / n,
                       self.sxx + o.sxx + dx * dx * f, self.syy + o.syy + dy * dy * f,
                       self.sxy + o.sxy + dx * dy * f)


@dataclass
class Cosines:
    """Sum, minimum and count of per-row cosines."""

    total: float = 0.0
    low: float = math.inf
    n: int = 0

    @staticmethod
    def of(cos: np.ndarray) -> Cosines:
        return Cosines(float(cos.sum()), float(cos.min()) if cos.size else math.inf,
                       int(cos.size))

    def merge(self, o: Cosines) -> Cosines:
        return Cosines(self.total + o.total, min(self.low, o.low), self.n + o.n)


@dataclass
class Vector:
    """The cosine of two whole outputs seen as one vector each, kept as exact-rule facts
    plus dot products (see :func:`snapshot_tool.metrics.agreement._cosines` for the rules)."""

    finite: bool = True
    equal_nan: bool = True  # equal everywhere, NaN equal to NaN
    g_zero: bool = True
    c_zero: bool = True
    gg: float = 0.0
    cc: float = 0.0
    gc: float = 0.0

    @staticmethod
    def of(g: np.ndarray, c: np.ndarray) -> Vector:
        finite = bool(np.all(np.isfinite(g)) and np.all(np.isfinite(c)))
        eq = bool(np.array_equal(g, c, equal_nan=True))
        if not finite:
            return Vector(False, eq)
        return Vector(True, eq, bool(np.all(g == 0)), bool(np.all(c == 0)),
                      float(g @ g), float(c @ c), float(g @ c))

    def merge(self, o: Vector) -> Vector:
        return Vector(self.finite and o.finite, self.equal_nan and o.equal_nan,
                      self.g_zero and o.g_zero, self.c_zero and o.c_zero,
                      self.gg + o.gg, self.cc + o.cc, self.gc + o.gc)

    def value(self) -> float:
        if not self.finite or self.equal_nan:
            return 1.0 if self.equal_nan else 0.0
        if self.g_zero or self.c_zero:
            return 1.0 if self.g_zero and self.c_zero else 0.0
        denom = math.sqrt(self.gg) * math.sqrt(self.cc)
        return min(1.0, max(-1.0, self.gc / denom))


@dataclass
class Correlation:
    """Pearson correlation of all values with the in-process rules for non-finite values
    and constants (see :func:`snapshot_tool.metrics.agreement._correlation`)."""

    nonfinite_match: bool = True
    equal: bool = True
    g_lo: float = math.inf
    g_hi: float = -math.inf
    c_lo: float = math.inf
    c_hi: float = -math.inf
    m: Moments = field(default_factory=Moments)

    @staticmethod
    def of(g: np.ndarray, c: np.ndarray) -> Correlation:
        gfin, cfin = np.isfinite(g), np.isfinite(c)
        if gfin.all() and cfin.all():
            gv, cv = g, c  # the usual case: no masks, no copies of the finite values
        else:
            if not (np.array_equal(gfin, cfin)
                    and np.array_equal(g[~gfin], c[~cfin], equal_nan=True)):
                return Correlation(False)
            gv, cv = g[gfin], c[cfin]
        return Correlation(True, bool(np.array_equal(gv, cv)),
                           float(gv.min()) if gv.size else math.inf,
                           float(gv.max()) if gv.size else -math.inf,
                           float(cv.min()) if cv.size else math.inf,
                           float(cv.max()) if cv.size else -math.inf, Moments.of(gv, cv))

    def merge(self, o: Correlation) -> Correlation:
        return Correlation(self.nonfinite_match and o.nonfinite_match, self.equal and o.equal,
                           min(self.g_lo, o.g_lo), max(self.g_hi, o.g_hi),
                           min(self.c_lo, o.c_lo), max(self.c_hi, o.c_hi), self.m.merge(o.m))

    def value(self) -> float:
        if not self.nonfinite_match:
            return 0.0
        if self.m.n == 0 or self.equal:
            return 1.0
        g_const, c_const = self.g_lo == self.g_hi, self.c_lo == self.c_hi
        if g_const or c_const:
            return 1.0 if g_const and c_const and self.g_lo == self.c_lo else 0.0
        denom = math.sqrt(self.m.sxx) * math.sqrt(self.m.syy)
        r = self.m.sxy / denom if denom > 0 else math.nan
        return min(1.0, max(-1.0, r)) if math.isfinite(r) else 0.0


# --- agreement -----------------------------------------------------------------------------


@dataclass
class Agreement:
    """Agreement statistics of one output for one task, over some rows."""

    task: str
    threshold: float
    kind: str = "none"  # none | labels | classification | binary | regression
    void: bool = False  # shapes differ somewhere: agreement is undefined for the whole
    rows: int = 0
    same: int = 0  # labels-only outputs, classification: agreeing rows
    cos: Cosines = field(default_factory=Cosines)
    # binary: agreeing rows and cosines under each reading of golden (g) and candidate (c)
    # values as probabilities (p) or logits (l); the whole golden decides (g_unit, c_unit).
    same_p: int = 0
    same_l: int = 0
    cos_pairs: dict[str, Cosines] = field(default_factory=dict)
    g_unit: bool = True
    c_unit: bool = True
    corr: Correlation = field(default_factory=Correlation)
    vector: Vector | None = None


def agreement_partial(golden: np.ndarray, candidate: np.ndarray, task: str,
                      threshold: float) -> Agreement:
    a = Agreement(task, threshold)
    g, c = np.asarray(golden), np.asarray(candidate)
    if task == "none" or g.shape != c.shape or (g.ndim and g.shape[0] == 0):
        a.void = True
        return a
    text = _is_text(g.dtype) or _is_text(c.dtype)
    labels_only = not _is_float(g.dtype) and not _is_float(c.dtype) and g.ndim <= 2 \
        and _per_row(g.shape) == 1
    a.rows = int(g.shape[0]) if g.ndim else 1
    if task in ("classification", "binary") and (text or labels_only):
        same = _text_values(g) == _text_values(c) if text else g.ravel() == c.ravel()
        a.kind, a.same, a.rows = "labels", int(np.sum(same)), int(same.size)
        return a
    if text:
        return a
    # Equal in their own dtype is equal as float64 rows (the cast is exact): decided once,
    # on the smaller arrays, for the decisions and the cosines alike.
    identical = task != "binary" and bool(np.array_equal(g, c, equal_nan=True))
    if task == "classification" and identical:
        # Identical rows agree whatever their argmax (NaN rows decide -1 on both sides), and
        # every cosine is exactly 1.0 (see _cosines).
        a.kind, a.same = "classification", a.rows
        a.cos = Cosines.of(np.ones(a.rows, dtype=np.float64))
        return a
    gr, cr = _rows(g), _rows(c)
    if task == "classification":
        a.kind = "classification"
        a.same = int(np.sum(_argmax_decisions(gr) == _argmax_decisions(cr)))
        a.cos = Cosines.of(_cosines(gr, cr, identical))
    elif task == "binary":
        a.kind = "binary"
        a.g_unit, a.c_unit = _in_unit_interval(gr), _in_unit_interval(cr)
        for probs in (True, False):
            gd = _binary_decisions(gr, threshold, probs).reshape(gr.shape)
            cd = _binary_decisions(cr, threshold, probs).reshape(cr.shape)
            agree = int(np.sum(np.all(gd == cd, axis=1)))
            a.same_p, a.same_l = (agree, a.same_l) if probs else (a.same_p, agree)
        pairs = {"p": (gr, cr), "l": (_sigmoid(gr), _sigmoid(cr))}
        for gk, gv in (("p", pairs["p"][0]), ("l", pairs["l"][0])):
            for ck, cv in (("p", pairs["p"][1]), ("l", pairs["l"][1])):
                a.cos_pairs[gk + ck] = Cosines.of(_cosines(
                    np.concatenate([1.0 - gv, gv], axis=1), np.concatenate([1.0 - cv, cv],
                                                                          axis=1)))
    else:
        a.kind = "regression"
        a.corr = Correlation.of(gr.ravel(), cr.ravel())
        if gr.shape[1] == 1:
            a.vector = Vector.of(gr.ravel(), cr.ravel())
        else:
            a.cos = Cosines.of(_cosines(gr, cr, identical))
    return a


def merge_agreement(a: Agreement, b: Agreement) -> Agreement:
    """Fold ``b`` (other rows of the same output) into ``a`` and return ``a``."""
    if a.void or b.void or a.kind != b.kind:
        a.void = True
        return a
    a.rows += b.rows
    a.same += b.same
    a.same_p += b.same_p
    a.same_l += b.same_l
    a.cos = a.cos.merge(b.cos)
    for k, v in b.cos_pairs.items():
        a.cos_pairs[k] = a.cos_pairs[k].merge(v) if k in a.cos_pairs else v
    a.g_unit, a.c_unit = a.g_unit and b.g_unit, a.c_unit and b.c_unit
    a.corr = a.corr.merge(b.corr)
    if a.vector is not None and b.vector is not None:
        a.vector = a.vector.merge(b.vector)
    return a


def finish_agreement(a: Agreement) -> dict[str, MetricValue]:
    if a.void or a.kind == "none" or a.rows == 0:
        return {}
    if a.kind == "labels":
        return {"top1_agreement": _mv("top1_agreement", a.same / a.rows)}
    result: dict[str, MetricValue] = {}
    cos = a.cos
    if a.kind == "classification":
        result["top1_agreement"] = _mv("top1_agreement", a.same / a.rows)
    elif a.kind == "binary":
        same = a.same_p if a.g_unit else a.same_l
        result["top1_agreement"] = _mv("top1_agreement", same / a.rows)
        # _as_pairs reads each side on its own: probabilities if all of it is in [0, 1].
        cos = a.cos_pairs[("p" if a.g_unit else "l") + ("p" if a.c_unit else "l")]
    else:
        result["correlation"] = _mv("correlation", a.corr.value())
        if a.vector is not None:
            v = a.vector.value()
            cos = Cosines(v, v, 1)
    result["cosine_mean"] = _mv("cosine_mean", cos.total / cos.n)
    result["cosine_min"] = _mv("cosine_min", cos.low)
    return result


# --- task metrics --------------------------------------------------------------------------


@dataclass
class Decisions:
    """(label, prediction) counts; ``sentinel`` says -1 predictions mean "not finite" and
    do not count as a class (float outputs), as in the in-process decision metrics."""

    pairs: Counter[tuple[Any, Any]] = field(default_factory=Counter)
    sentinel: bool = True

    @staticmethod
    def of(y_true: np.ndarray, y_pred: np.ndarray, sentinel: bool) -> Decisions:
        return Decisions(Counter(zip(y_true.tolist(), y_pred.tolist(), strict=True)), sentinel)

    def merge(self, o: Decisions) -> Decisions:
        self.pairs.update(o.pairs)
        return self

    def metrics(self) -> dict[str, MetricValue]:
        n = sum(self.pairs.values())
        support: Counter[Any] = Counter()
        predicted: Counter[Any] = Counter()
        hits: Counter[Any] = Counter()
        for (t, p), k in self.pairs.items():
            support[t] += k
            predicted[p] += k
            if t == p:
                hits[t] += k
        classes = sorted(set(support) | {p for p in predicted
                                         if not (self.sentinel and p == -1)}, key=_order)

        def ratio(a: float, b: float) -> float:
            return a / b if b else 0.0

        prec = [ratio(hits[c], predicted[c]) for c in classes]
        rec = [ratio(hits[c], support[c]) for c in classes]
        f1 = [ratio(2 * hits[c], support[c] + predicted[c]) for c in classes]
        sup = [support[c] for c in classes]
        true_classes = sorted(support, key=_order)
        return {
            "accuracy": _mv("accuracy", sum(hits.values()) / n),
            "balanced_accuracy": _mv("balanced_accuracy", float(np.mean(
                [ratio(hits[c], support[c]) for c in true_classes]))),
            "f1_macro": _mv("f1_macro", float(np.mean(f1))),
            "f1_weighted": _mv("f1_weighted", ratio(float(np.dot(f1, sup)), sum(sup))),
            "precision_macro": _mv("precision_macro", float(np.mean(prec))),
            "recall_macro": _mv("recall_macro", float(np.mean(rec))),
        }


def _order(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v)


@dataclass
class Task:
    """Task-metric statistics of one output against its labels, over some rows."""

    task: str
    threshold: float
    error: str = ""  # an InputsError in any range: the in-process call raises it too
    kind: str = "none"  # none | regression | binary | classification | labels
    rows: int = 0
    finite: bool = True
    decisions: Decisions = field(default_factory=Decisions)
    decisions_l: Decisions = field(default_factory=Decisions)  # binary, scores as logits
    unit: bool = True  # binary: every finite score in [0, 1]
    distribution: bool = True  # classification: finite rows non-negative and summing to 1
    finite_rows: int = 0
    classes: int = 0
    labels_seen: set[Any] = field(default_factory=set)
    topk: dict[int, int] = field(default_factory=dict)
    loss: float = 0.0
    auc_y: list[np.ndarray] = field(default_factory=list)
    auc_scores: list[np.ndarray] = field(default_factory=list)
    # regression, per column
    abs_sum: np.ndarray | None = None
    sq_sum: np.ndarray | None = None
    label_m: list[Moments] = field(default_factory=list)
    max_err: float = 0.0
    abs_errors: list[np.ndarray] = field(default_factory=list)


def task_partial(output: np.ndarray, labels: np.ndarray, task: str,
                 threshold: float = 0.5) -> Task:
    t = Task(task, threshold)
    try:
        _fill_task(t, np.asarray(output), np.asarray(labels))
    except InputsError as exc:
        t.error = str(exc)
    return t


def _fill_task(t: Task, out: np.ndarray, lab: np.ndarray) -> None:
    if t.task == "none":
        return
    _check_rows(out, lab)
    t.rows = int(out.shape[0])
    if t.task == "regression":
        _fill_regression(t, out, lab)
    elif _is_float(out.dtype) and t.task == "binary":
        _fill_binary(t, out, lab)
    elif _is_float(out.dtype):
        _fill_classification(t, out, lab)
    else:
        if out.ndim > 2 or _per_row(out.shape) != 1:
            raise InputsError(f"a {out.dtype} output of shape {out.shape} cannot be scored as "
                              f"{t.task}: non-float outputs must hold one predicted label per "
                              "row")
        _fill_labels(t, out, lab)


def _fill_regression(t: Task, out: np.ndarray, lab: np.ndarray) -> None:
    t.kind = "regression"
    if _is_text(out.dtype) or _is_text(lab.dtype):
        raise InputsError("regression needs numeric outputs and labels, got text")
    pred, y = _rows(out), _rows(lab)
    if pred.shape[1] != y.shape[1]:
        raise InputsError(f"labels have {y.shape[1]} value(s) per row (shape {lab.shape}) but "
                          f"the output has {pred.shape[1]} (shape {out.shape}); they must "
                          "match for regression")
    if not np.all(np.isfinite(y)):
        raise InputsError("labels contain NaN or infinity")
    t.finite = bool(np.all(np.isfinite(pred)))
    err = pred - y
    t.abs_sum = np.abs(err).sum(axis=0)
    t.sq_sum = (err * err).sum(axis=0)
    t.label_m = [Moments.of(y[:, j], y[:, j]) for j in range(y.shape[1])]
    t.max_err = float(np.max(np.abs(err))) if err.size and t.finite else 0.0
    t.abs_errors = [np.abs(err)]


def _fill_binary(t: Task, out: np.ndarray, lab: np.ndarray) -> None:
    from snapshot_tool.metrics.tasks import _binary_metrics

    t.kind = "binary"
    if out.ndim > 2 or _per_row(out.shape) != 1 or lab.ndim > 2 or _per_row(lab.shape) != 1 \
            or _label_kind(lab) != "int" \
            or not np.all(np.isin(lab.astype(np.float64), (0.0, 1.0))):
        _binary_metrics(out, lab, t.threshold)  # raises the in-process error message
    y = lab.astype(np.int64).ravel()
    scores = out.astype(np.float64).ravel()
    t.decisions = Decisions.of(y, _binary_decisions(scores, t.threshold, True), True)
    t.decisions_l = Decisions.of(y, _binary_decisions(scores, t.threshold, False), True)
    t.unit = _in_unit_interval(scores)
    t.finite = bool(np.all(np.isfinite(scores)))
    t.labels_seen = set(np.unique(y).tolist())
    if t.unit and t.finite:
        from sklearn import metrics as skm

        t.loss = float(skm.log_loss(y, scores, labels=[0, 1], normalize=False))
        t.auc_y, t.auc_scores = [y.astype(np.int8)], [scores]


def _fill_classification(t: Task, out: np.ndarray, lab: np.ndarray) -> None:
    from sklearn import metrics as skm

    t.kind = "classification"
    if out.ndim != 2 or out.shape[1] < 2:
        raise InputsError(f"classification needs a (samples, classes) output with at least 2 "
                          f"classes, got shape {out.shape}; for one score per row set task = "
                          "\"binary\"")
    t.classes = out.shape[1]
    scores = out.astype(np.float64)
    y = _class_labels(lab, t.classes)
    finite_rows = np.all(np.isfinite(scores), axis=1)
    t.finite = bool(finite_rows.all())
    pred = _argmax_decisions(scores)
    t.decisions = Decisions.of(y, pred, True)
    t.labels_seen = set(np.unique(y).tolist())
    ids = np.arange(t.classes)
    if t.finite:
        t.topk = {k: int(skm.top_k_accuracy_score(y, scores, k=k, labels=ids, normalize=False))
                  for k in _TOP_K if k < t.classes}
    finite = scores[finite_rows]
    tol = _DIST_TOL if out.dtype.itemsize >= 4 else _DIST_TOL_HALF
    t.finite_rows = int(finite.shape[0])
    t.distribution = bool(np.all(finite >= 0.0)
                          and np.all(np.abs(finite.sum(axis=1) - 1.0) <= tol))
    if t.distribution and t.finite:
        proba = scores / scores.sum(axis=1, keepdims=True)
        t.loss = float(skm.log_loss(y, proba, labels=ids, normalize=False))
        t.auc_y, t.auc_scores = [y], [proba]


def _fill_labels(t: Task, out: np.ndarray, lab: np.ndarray) -> None:
    t.kind = "labels"
    if lab.ndim > 2 or _per_row(lab.shape) != 1:
        raise InputsError(f"labels must have shape (N,) or (N, 1), got {lab.shape}")
    text_out, text_lab = _is_text(out.dtype), _is_text(lab.dtype)
    if text_out != text_lab:
        raise InputsError(f"cannot compare {out.dtype} predictions with {lab.dtype} labels: "
                          "one holds text, the other numbers")
    if text_out:
        y_true, y_pred = _text_values(lab), _text_values(out)
    else:
        y_true = _class_labels(lab, None)
        y_pred = out.astype(np.int64).ravel()
        if t.task == "binary" and not np.all(np.isin(y_true, (0, 1))):
            raise InputsError("binary labels must be 0/1 (or true/false)")
    t.decisions = Decisions.of(y_true, y_pred, False)


def merge_task(a: Task, b: Task) -> Task:
    """Fold ``b`` (other rows of the same output) into ``a`` and return ``a``."""
    a.error = a.error or b.error
    if a.error or b.kind == "none":
        return a
    if a.kind == "none":
        b.error = a.error
        return b
    a.rows += b.rows
    a.finite = a.finite and b.finite
    a.decisions = a.decisions.merge(b.decisions)
    a.decisions_l = a.decisions_l.merge(b.decisions_l)
    a.unit = a.unit and b.unit
    a.distribution = a.distribution and b.distribution
    a.finite_rows += b.finite_rows
    a.labels_seen |= b.labels_seen
    a.topk = {k: a.topk.get(k, 0) + b.topk.get(k, 0) for k in a.topk.keys() | b.topk.keys()}
    a.loss += b.loss
    a.auc_y += b.auc_y
    a.auc_scores += b.auc_scores
    if a.abs_sum is not None and b.abs_sum is not None and b.sq_sum is not None \
            and a.sq_sum is not None:
        a.abs_sum = a.abs_sum + b.abs_sum
        a.sq_sum = a.sq_sum + b.sq_sum
        a.label_m = [x.merge(y) for x, y in zip(a.label_m, b.label_m, strict=True)]
    a.max_err = max(a.max_err, b.max_err)
    a.abs_errors += b.abs_errors
    return a


def finish_task(t: Task) -> dict[str, MetricValue]:
    """The task metrics of the merged rows; raises the InputsError a range hit."""
    if t.error:
        raise InputsError(t.error)
    if t.kind == "none" or t.rows == 0:
        return {}
    if t.kind == "regression":
        return _finish_regression(t)
    if t.kind == "labels":
        return t.decisions.metrics()
    if t.kind == "binary":
        return _finish_binary(t)
    return _finish_classification(t)


def _finish_regression(t: Task) -> dict[str, MetricValue]:
    assert t.abs_sum is not None and t.sq_sum is not None
    names = ["mae", "mse", "rmse", "r2", "max_error", "median_absolute_error"]
    if t.rows < 2:
        names.remove("r2")
    if not t.finite:
        return {n: _mv(n, math.nan) for n in names}
    mse = float(np.mean(t.sq_sum / t.rows))
    r2 = []
    for ss_res, m in zip(t.sq_sum, t.label_m, strict=True):
        # scikit-learn's r2 with force_finite: a constant column scores 1 if predicted
        # exactly, else 0.
        r2.append((1.0 if ss_res == 0 else 0.0) if m.sxx == 0 else 1.0 - ss_res / m.sxx)
    values = {
        "mae": float(np.mean(t.abs_sum / t.rows)),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": float(np.mean(r2)),
        "max_error": t.max_err,
        "median_absolute_error": float(np.mean(np.median(np.concatenate(t.abs_errors),
                                                         axis=0))),
    }
    return {n: _mv(n, values[n]) for n in names}


def _finish_binary(t: Task) -> dict[str, MetricValue]:
    result = (t.decisions if t.unit else t.decisions_l).metrics()
    if t.unit:
        both = len(t.labels_seen) == 2
        if t.finite:
            result["log_loss"] = _mv("log_loss", t.loss / t.rows)
            if both:
                from sklearn import metrics as skm

                result["roc_auc"] = _mv("roc_auc", skm.roc_auc_score(
                    np.concatenate(t.auc_y) == 1, np.concatenate(t.auc_scores)))
        else:
            result["log_loss"] = _mv("log_loss", math.nan)
            if both:
                result["roc_auc"] = _mv("roc_auc", math.nan)
    return result


def _finish_classification(t: Task) -> dict[str, MetricValue]:
    from snapshot_tool.metrics.tasks import _ovr_roc_auc

    result = t.decisions.metrics()
    for k in _TOP_K:
        if k < t.classes:
            name = f"top{k}_accuracy"
            result[name] = _mv(name, t.topk[k] / t.rows if t.finite else math.nan)
    if t.finite_rows > 0 and t.distribution:
        if t.finite:
            result["log_loss"] = _mv("log_loss", t.loss / t.rows)
            auc = _ovr_roc_auc(np.concatenate(t.auc_y), np.concatenate(t.auc_scores))
        else:
            result["log_loss"] = _mv("log_loss", math.nan)
            auc = math.nan if len(t.labels_seen) >= 2 else None
        if auc is not None:
            result["roc_auc"] = _mv("roc_auc", auc)
    return result

