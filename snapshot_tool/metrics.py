"""Task metrics (scikit-learn) recorded beside a golden's outputs, and the thresholds that gate
a candidate on them.

Two families of metrics:

* **Task metrics** need ground-truth labels. ``record`` computes them from the golden model's
  outputs and stores them under ``/metrics/<output>/<metric>``; ``compare`` computes them again
  from the candidate's outputs and the golden's stored labels, and checks the change.
* **Agreement metrics** need no labels: at compare time they measure how closely the candidate's
  outputs follow the golden's (``top1_agreement``, ``cosine_mean``, ``cosine_min``,
  ``correlation``). There is no golden value, so only absolute ``min``/``max`` limits apply.

The task of an output (``classification``, ``binary``, ``regression`` or ``none``) is inferred
from dtypes and shapes (see :func:`infer_task`) and can be overridden with
``[outputs.NAME] task = ...``. scikit-learn is imported inside the functions that use it, never
at module import, so ``snapshot-tool --help`` stays fast.

Threshold rules (all limits that are set must hold):

* ``max_drop`` is absolute and measured in the metric's *bad* direction: for a metric where higher
  is better the drop is ``golden - candidate``, for one where lower is better it is
  ``candidate - golden``. A negative drop is an improvement and always passes.
* ``max_relative_drop`` is ``drop / |golden|``. A relative change from a zero baseline is
  undefined (the reason TFMA's relative check breaks there), yet zero baselines are real: a
  ``max_error`` of 0 on a tiny label set, a ``balanced_accuracy`` of 0 on a broken golden. So at
  ``golden == 0`` the limit is applied as an absolute drop limit and the check's note says so,
  rather than silently passing or failing.
* ``min`` / ``max`` bound the candidate's value. They are the only limits for agreement metrics;
  a drop limit on one is a configuration error, reported before any model runs.
* A metric without a threshold is informational: it is reported and always passes.
* A candidate value of NaN where the golden was finite fails every limit set on it: NaN compares
  false against anything, and a gate must not let "the metric could not be computed" through.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from snapshot_tool.config import TASKS, Config, MetricThreshold
from snapshot_tool.errors import ConfigError, InputsError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "AGREEMENT_METRICS",
    "KNOWN_METRICS",
    "TASKS",
    "Direction",
    "MetricCheck",
    "MetricKind",
    "MetricValue",
    "agreement_metrics",
    "check_all",
    "check_metric",
    "infer_task",
    "task_metrics",
    "validate_thresholds",
]

Direction = Literal["higher", "lower"]
MetricKind = Literal["task", "agreement"]
Array = npt.NDArray[Any]

_TOP_K = (3, 5)

# Every metric this module can produce, with the direction that is better. Used to tell a typo
# ("acuracy") from a real metric that a given output simply does not have.
KNOWN_METRICS: dict[str, Direction] = {
    "accuracy": "higher",
    "balanced_accuracy": "higher",
    "f1_macro": "higher",
    "f1_weighted": "higher",
    "precision_macro": "higher",
    "recall_macro": "higher",
    **{f"top{k}_accuracy": "higher" for k in _TOP_K},
    "log_loss": "lower",
    "roc_auc": "higher",
    "mae": "lower",
    "mse": "lower",
    "rmse": "lower",
    "r2": "higher",
    "max_error": "lower",
    "median_absolute_error": "lower",
    "top1_agreement": "higher",
    "cosine_mean": "higher",
    "cosine_min": "higher",
    "correlation": "higher",
}
AGREEMENT_METRICS = frozenset({"top1_agreement", "cosine_mean", "cosine_min", "correlation"})

# Softmax rows sum to 1 only up to rounding; float16 outputs round far more coarsely.
_DIST_TOL = 1e-3
_DIST_TOL_HALF = 1e-2
# A limit written as 0.01 must accept a drop of 0.95 - 0.94 = 0.010000000000000009.
_REL_SLACK = 1e-9
_ABS_SLACK = 1e-12


@dataclass(frozen=True)
class MetricValue:
    """One metric's value and which direction is better."""

    name: str
    value: float
    direction: Direction


@dataclass(frozen=True)
class MetricCheck:
    """The verdict on one metric of one output."""

    output: str
    name: str
    kind: MetricKind
    golden: float | None
    candidate: float
    delta: float | None  # candidate - golden, signed; None when there is no golden value
    direction: Direction
    limit: str  # e.g. "drop <= 0.01, min 0.9"; "" when informational
    passed: bool
    note: str = ""


# --------------------------------------------------------------------------------------------
# Array helpers


def _is_float(dtype: np.dtype[Any]) -> bool:
    # ml_dtypes' bfloat16/float8 (what TF hands back) are not np.floating subclasses.
    return dtype.kind == "f" or dtype.name.startswith(("bfloat16", "float8"))


def _is_text(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "USO"


def _per_row(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


def _rows(a: Array) -> Array:
    """(N, ...) -> (N, D) float64; a 0-d value counts as one row."""
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1)
    return a.astype(np.float64).reshape(a.shape[0], _per_row(a.shape))


def _in_unit_interval(values: Array) -> bool:
    finite = values[np.isfinite(values)]
    return bool(np.all((finite >= 0.0) & (finite <= 1.0)))


def _is_distribution(scores: Array, dtype: np.dtype[Any]) -> bool:
    """Rows non-negative and summing to 1: probabilities rather than logits.

    Judged on finite rows only, so a few NaN rows in a candidate do not turn its probabilities
    into "logits" and hide log_loss; the NaN shows up in the metric value instead.
    """
    finite = scores[np.all(np.isfinite(scores), axis=1)]
    if finite.shape[0] == 0:
        return False
    tol = _DIST_TOL if dtype.itemsize >= 4 else _DIST_TOL_HALF
    return bool(np.all(finite >= 0.0) and np.all(np.abs(finite.sum(axis=1) - 1.0) <= tol))


def _sigmoid(z: Array) -> Array:
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _logit(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)


def _binary_decisions(values: Array, threshold: float, probabilities: bool | None = None
                      ) -> Array:
    """0/1 decisions, -1 where the value is not finite (counted as wrong, never as a class).

    ``probabilities`` says whether ``values`` are probabilities or logits; ``None`` decides
    from the values themselves. Agreement passes the golden's answer for both arrays, so a
    logit head whose golden happens to fall in [0, 1] is not cut at two different places.
    """
    v = values.astype(np.float64).ravel()
    # Compare logits against logit(threshold) instead of sigmoid(z) > threshold: sigmoid rounds
    # tiny logits to exactly 0.5 and would flip their decision.
    if probabilities is None:
        probabilities = _in_unit_interval(v)
    cut = threshold if probabilities else _logit(threshold)
    out = (v > cut).astype(np.int64)
    out[~np.isfinite(v)] = -1
    return out


def _argmax_decisions(scores: Array) -> Array:
    out: Array = np.argmax(np.where(np.isfinite(scores), scores, -np.inf), axis=1)
    out = out.astype(np.int64)
    out[~np.all(np.isfinite(scores), axis=1)] = -1
    return out


def _text_values(a: Array) -> Array:
    flat = a.ravel()
    return np.array(
        [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in flat], dtype=object
    )


def _label_kind(labels: Array) -> Literal["int", "float", "other"]:
    if labels.dtype.kind in "biu":
        return "int"
    if _is_float(labels.dtype):
        v = labels.astype(np.float64)
        if v.size and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
            return "int"
        return "float"
    return "other"


# --------------------------------------------------------------------------------------------
# Task inference


def infer_task(output: Array, labels: Array | None, override: str | None = None) -> str:
    """The task of one output: ``classification``, ``binary``, ``regression`` or ``none``.

    ``override`` (the config's ``task``) wins. Otherwise: integer, bool and string outputs are
    ``none`` (they are usually ids or predicted labels; set ``task`` to score them). For a float
    output, non-integer float labels mean ``regression``; integer labels mean
    ``classification`` for an (N, C>1) output and ``binary`` for an (N,) or (N, 1) output when
    the labels are 0/1; a one-value-per-row output within [0, 1] against other integer labels
    is ``none`` (a score head beside the class output, not a regression of class ids).
    Without labels the output alone decides: (N, C>1) is classification, one value per row
    all within [0, 1] is binary, any other float output is regression.
    """
    if override is not None:
        if override not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {override!r}")
        return override
    out = np.asarray(output)
    if out.ndim == 0 or not _is_float(out.dtype):
        return "none"
    one_per_row = out.ndim <= 2 and _per_row(out.shape) == 1
    multi_col = out.ndim == 2 and out.shape[1] > 1
    if labels is None:
        if multi_col:
            return "classification"
        if one_per_row and _in_unit_interval(out.astype(np.float64)):
            return "binary"
        return "regression"
    lab = np.asarray(labels)
    kind = _label_kind(lab)
    if kind == "other":
        return "none"
    if kind == "float":
        return "regression"
    lab_per_row = _per_row(lab.shape)
    if multi_col and (lab_per_row == 1 or _is_one_hot(lab, out.shape[1])):
        return "classification"
    if one_per_row and lab_per_row == 1 and np.all(np.isin(lab.astype(np.float64), (0.0, 1.0))):
        return "binary"
    if one_per_row and _in_unit_interval(out.astype(np.float64)):
        # A score or probability head against class ids 0..9 (an auxiliary output of a
        # classifier) is not a regression of the class id: r2 and mae of it would be noise
        # that a threshold could gate on. Set the task in the config to score it anyway.
        return "none"
    return "regression"


def _is_one_hot(labels: Array, classes: int) -> bool:
    if labels.ndim != 2 or labels.shape[1] != classes or labels.shape[0] == 0:
        return False
    v = labels.astype(np.float64)
    return bool(np.all((v == 0.0) | (v == 1.0)) and np.all(v.sum(axis=1) == 1.0))


# --------------------------------------------------------------------------------------------
# Task metrics


def _mv(name: str, value: float) -> MetricValue:
    return MetricValue(name, float(value), KNOWN_METRICS[name])


def _check_rows(output: Array, labels: Array) -> None:
    if output.ndim == 0:
        raise InputsError("output is a scalar; task metrics need one row per input sample")
    if labels.ndim == 0 or labels.shape[0] != output.shape[0]:
        n = labels.shape[0] if labels.ndim else "a scalar"
        raise InputsError(
            f"labels have {n} rows but the output has {output.shape[0]}; "
            "labels must have exactly one row per input sample"
        )
    if output.shape[0] == 0:
        raise InputsError("output has no rows; task metrics need at least one input sample")


def task_metrics(
    output: Array, labels: Array, task: str, threshold: float = 0.5
) -> dict[str, MetricValue]:
    """Task metrics of ``output`` against ``labels`` for ``task`` (empty for ``none``).

    Raises :class:`InputsError` when labels do not fit the output (row count, class range,
    shape). NaN/inf in the output never raises: rows with them count as wrong predictions and
    score-based metrics (log_loss, roc_auc, top-k, regression errors) become NaN.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "none":
        return {}
    out = np.asarray(output)
    lab = np.asarray(labels)
    _check_rows(out, lab)
    if task == "regression":
        return _regression_metrics(out, lab)
    if _is_float(out.dtype):
        if task == "binary":
            return _binary_metrics(out, lab, threshold)
        return _multiclass_metrics(out, lab)
    if out.ndim > 2 or _per_row(out.shape) != 1:
        raise InputsError(
            f"a {out.dtype} output of shape {out.shape} cannot be scored as {task}: non-float "
            "outputs must hold one predicted label per row"
        )
    return _predicted_label_metrics(out, lab, task)


def _class_labels(lab: Array, classes: int | None) -> Array:
    """Labels as a 1-D int64 class-id vector, checked against the output's class count."""
    if classes is not None and _is_one_hot(lab, classes):
        ids: Array = np.argmax(lab, axis=1)
        return ids.astype(np.int64)
    if lab.ndim > 2 or _per_row(lab.shape) != 1:
        want = f"(N,) or one-hot (N, {classes})" if classes else "(N,)"
        raise InputsError(f"class labels must have shape {want}, got {lab.shape}")
    if _label_kind(lab) != "int":
        raise InputsError(f"class labels must be integers, got {lab.dtype} values")
    y = lab.astype(np.int64).ravel()
    if classes is not None and (y.min() < 0 or y.max() >= classes):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise InputsError(
            f"labels contain class {bad} but the output has {classes} columns "
            f"(classes 0..{classes - 1})"
        )
    return y


def _decision_metrics(y_true: Array, y_pred: Array, valid: Array) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    # Macro averages run over classes that occur in the labels or the predictions (sklearn's
    # own default). Averaging in classes absent from both would only add zeros that say nothing
    # about the model. The -1 "not finite" sentinel is excluded, so such a row is a miss for its
    # true class and not a class of its own.
    avg_labels = np.union1d(y_true, y_pred[valid])
    kw: dict[str, Any] = {"labels": avg_labels, "zero_division": 0}
    return {
        "accuracy": _mv("accuracy", skm.accuracy_score(y_true, y_pred)),
        # Balanced accuracy *is* macro recall over the true classes; computed this way it does
        # not warn when a candidate predicts a class the labels never contain.
        "balanced_accuracy": _mv(
            "balanced_accuracy",
            skm.recall_score(
                y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0
            ),
        ),
        "f1_macro": _mv("f1_macro", skm.f1_score(y_true, y_pred, average="macro", **kw)),
        "f1_weighted": _mv("f1_weighted", skm.f1_score(y_true, y_pred, average="weighted", **kw)),
        "precision_macro": _mv(
            "precision_macro", skm.precision_score(y_true, y_pred, average="macro", **kw)
        ),
        "recall_macro": _mv(
            "recall_macro", skm.recall_score(y_true, y_pred, average="macro", **kw)
        ),
    }


def _ovr_roc_auc(y: Array, proba: Array) -> float | None:
    """One-vs-rest macro ROC AUC over the classes the labels contain.

    Equals sklearn's ``roc_auc_score(multi_class="ovr", average="macro")`` when every class
    occurs; sklearn fails outright when one does not, which a small label set makes common.
    None when fewer than two classes occur, where ROC AUC is undefined.
    """
    from sklearn import metrics as skm

    present = np.unique(y)
    if present.size < 2:
        return None
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y == 1, proba[:, 1]))
    return float(np.mean([skm.roc_auc_score(y == c, proba[:, c]) for c in present]))


def _multiclass_metrics(out: Array, lab: Array) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    if out.ndim != 2 or out.shape[1] < 2:
        raise InputsError(
            f"classification needs a (samples, classes) output with at least 2 classes, got "
            f"shape {out.shape}; for one score per row set task = \"binary\""
        )
    classes = out.shape[1]
    scores = out.astype(np.float64)
    y = _class_labels(lab, classes)
    finite_rows = np.all(np.isfinite(scores), axis=1)
    all_finite = bool(finite_rows.all())
    pred = _argmax_decisions(scores)
    result = _decision_metrics(y, pred, pred >= 0)
    class_ids = np.arange(classes)
    for k in _TOP_K:
        if k < classes:
            name = f"top{k}_accuracy"
            value = (
                skm.top_k_accuracy_score(y, scores, k=k, labels=class_ids) if all_finite
                else math.nan
            )
            result[name] = _mv(name, value)
    if _is_distribution(scores, out.dtype):
        if all_finite:
            # Renormalise away float32 rounding: sklearn's own sum-to-one check is tighter
            # than ours for float64 input.
            proba = scores / scores.sum(axis=1, keepdims=True)
            result["log_loss"] = _mv("log_loss", skm.log_loss(y, proba, labels=class_ids))
            auc = _ovr_roc_auc(y, proba)
        else:
            result["log_loss"] = _mv("log_loss", math.nan)
            auc = math.nan if np.unique(y).size >= 2 else None
        if auc is not None:
            result["roc_auc"] = _mv("roc_auc", auc)
    return result


def _binary_metrics(out: Array, lab: Array, threshold: float) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    if out.ndim > 2 or _per_row(out.shape) != 1:
        raise InputsError(
            f"binary needs one score per row, (N,) or (N, 1), got shape {out.shape}; "
            "for one column per class set task = \"classification\""
        )
    if lab.ndim > 2 or _per_row(lab.shape) != 1:
        raise InputsError(f"binary labels must have shape (N,) or (N, 1), got {lab.shape}")
    if _label_kind(lab) != "int" or not np.all(np.isin(lab.astype(np.float64), (0.0, 1.0))):
        raise InputsError("binary labels must be 0/1 (or true/false)")
    y = lab.astype(np.int64).ravel()
    scores = out.astype(np.float64).ravel()
    pred = _binary_decisions(scores, threshold)
    result = _decision_metrics(y, pred, pred >= 0)
    if _in_unit_interval(scores):
        all_finite = bool(np.all(np.isfinite(scores)))
        both = np.unique(y).size == 2
        if all_finite:
            result["log_loss"] = _mv("log_loss", skm.log_loss(y, scores, labels=[0, 1]))
            if both:
                result["roc_auc"] = _mv("roc_auc", skm.roc_auc_score(y, scores))
        else:
            result["log_loss"] = _mv("log_loss", math.nan)
            if both:
                result["roc_auc"] = _mv("roc_auc", math.nan)
    return result


def _predicted_label_metrics(out: Array, lab: Array, task: str) -> dict[str, MetricValue]:
    """An output that already holds predicted labels (class ids, bools or class names)."""
    if lab.ndim > 2 or _per_row(lab.shape) != 1:
        raise InputsError(f"labels must have shape (N,) or (N, 1), got {lab.shape}")
    text_out, text_lab = _is_text(out.dtype), _is_text(lab.dtype)
    if text_out != text_lab:
        raise InputsError(
            f"cannot compare {out.dtype} predictions with {lab.dtype} labels: one holds text, "
            "the other numbers"
        )
    if text_out:
        y_true, y_pred = _text_values(lab), _text_values(out)
    else:
        y_true = _class_labels(lab, None)
        y_pred = out.astype(np.int64).ravel()
        if task == "binary" and not np.all(np.isin(y_true, (0, 1))):
            raise InputsError("binary labels must be 0/1 (or true/false)")
    return _decision_metrics(y_true, y_pred, np.ones(y_pred.shape, dtype=bool))


def _regression_metrics(out: Array, lab: Array) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    if _is_text(out.dtype) or _is_text(lab.dtype):
        raise InputsError("regression needs numeric outputs and labels, got text")
    pred, y = _rows(out), _rows(lab)
    if pred.shape[1] != y.shape[1]:
        raise InputsError(
            f"labels have {y.shape[1]} value(s) per row (shape {lab.shape}) but the output has "
            f"{pred.shape[1]} (shape {out.shape}); they must match for regression"
        )
    if not np.all(np.isfinite(y)):
        raise InputsError("labels contain NaN or infinity")
    names = ["mae", "mse", "rmse", "r2", "max_error", "median_absolute_error"]
    if y.shape[0] < 2:
        names.remove("r2")  # undefined for a single sample
    if not np.all(np.isfinite(pred)):
        return {n: _mv(n, math.nan) for n in names}
    mse = float(skm.mean_squared_error(y, pred))
    values = {
        "mae": skm.mean_absolute_error(y, pred),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": skm.r2_score(y, pred) if "r2" in names else math.nan,
        # sklearn's max_error is single-output only; the maximum over all values is the same as
        # the maximum over per-output maxima.
        "max_error": skm.max_error(y.ravel(), pred.ravel()),
        "median_absolute_error": skm.median_absolute_error(y, pred),
    }
    return {n: _mv(n, values[n]) for n in names}


# --------------------------------------------------------------------------------------------
# Agreement metrics


def _cosines(g: Array, c: Array) -> Array:
    """Per-row cosine similarity of (N, D) rows; never NaN.

    Two all-zero rows are identical (1.0); a zero row against a non-zero one shares no direction
    (0.0). Rows with NaN/inf count as 1.0 only if both rows are exactly equal, NaN for NaN.
    """
    if g.shape[1] == 0:
        return np.ones(g.shape[0], dtype=np.float64)  # empty rows are equal "zero" rows
    finite = np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(c), axis=1)
    out = np.zeros(g.shape[0], dtype=np.float64)
    for i in np.flatnonzero(~finite):
        out[i] = 1.0 if np.array_equal(g[i], c[i], equal_nan=True) else 0.0
    gf, cf = g[finite], c[finite]
    # Scale each row by its largest magnitude first: cosine is scale-free, and squaring values
    # near the float64 maximum would overflow the norms.
    gs = np.max(np.abs(gf), axis=1, keepdims=True)
    cs = np.max(np.abs(cf), axis=1, keepdims=True)
    gz, cz = gs[:, 0] == 0, cs[:, 0] == 0
    gn = gf / np.where(gs == 0, 1.0, gs)
    cn = cf / np.where(cs == 0, 1.0, cs)
    denom = np.linalg.norm(gn, axis=1) * np.linalg.norm(cn, axis=1)
    cos = np.sum(gn * cn, axis=1) / np.where(denom == 0, 1.0, denom)
    cos = np.where(gz & cz, 1.0, np.where(gz | cz, 0.0, cos))
    # Rounding can leave identical rows at 0.9999999999999998; a `min = 1.0` gate must hold.
    cos = np.where(np.all(gf == cf, axis=1), 1.0, cos)
    out[finite] = np.clip(cos, -1.0, 1.0)
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
    text = _is_text(g.dtype) or _is_text(c.dtype)
    labels_only = not _is_float(g.dtype) and not _is_float(c.dtype) and g.ndim <= 2 \
        and _per_row(g.shape) == 1
    if task in ("classification", "binary") and (text or labels_only):
        same = _text_values(g) == _text_values(c) if text else g.ravel() == c.ravel()
        return {"top1_agreement": _mv("top1_agreement", float(np.mean(same)))}
    if text:
        return {}
    gr, cr = _rows(g), _rows(c)
    result: dict[str, MetricValue] = {}
    if task == "classification":
        agree = _argmax_decisions(gr) == _argmax_decisions(cr)
        result["top1_agreement"] = _mv("top1_agreement", float(np.mean(agree)))
        cos = _cosines(gr, cr)
    elif task == "binary":
        golden_probs = _in_unit_interval(gr.astype(np.float64))
        gd = _binary_decisions(gr, threshold, golden_probs).reshape(gr.shape)
        cd = _binary_decisions(cr, threshold, golden_probs).reshape(cr.shape)
        result["top1_agreement"] = _mv("top1_agreement", float(np.mean(np.all(gd == cd, axis=1))))
        cos = _cosines(_as_pairs(gr), _as_pairs(cr))
    else:
        result["correlation"] = _mv("correlation", _correlation(gr, cr))
        cos = _cosines(gr.reshape(1, -1), cr.reshape(1, -1)) if gr.shape[1] == 1 \
            else _cosines(gr, cr)
    result["cosine_mean"] = _mv("cosine_mean", float(np.mean(cos)))
    result["cosine_min"] = _mv("cosine_min", float(np.min(cos)))
    return result


def _as_pairs(scores: Array) -> Array:
    """(N, D) binary scores -> (N, 2D) rows of (1 - p, p); logits go through the sigmoid."""
    p = scores if _in_unit_interval(scores) else _sigmoid(scores)
    return np.concatenate([1.0 - p, p], axis=1)


# --------------------------------------------------------------------------------------------
# Thresholds


def _num(x: float) -> str:
    return f"{x:g}"


def round_sig(x: float, up: bool, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits, rounded up or down so that a limit suggested
    from it accepts ``x`` (a limit rounded the wrong way would fail the very value it is
    meant to accept). Decimal arithmetic on ``repr(x)``: exact, no float epsilon games."""
    if not math.isfinite(x) or x == 0:
        return x
    d = Decimal(repr(x))
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    return float(d.quantize(q, rounding=ROUND_CEILING if up else ROUND_FLOOR))


def _suggest(x: float, up: bool) -> str:
    return repr(round_sig(x, up))


def _within(value: float, limit: float) -> bool:
    return value <= limit or math.isclose(value, limit, rel_tol=_REL_SLACK, abs_tol=_ABS_SLACK)


def _limit_text(t: MetricThreshold) -> str:
    parts = []
    if t.max_drop is not None:
        parts.append(f"drop <= {_num(t.max_drop)}")
    if t.max_relative_drop is not None:
        parts.append(f"relative drop <= {_num(t.max_relative_drop)}")
    if t.min is not None:
        parts.append(f"min {_num(t.min)}")
    if t.max is not None:
        parts.append(f"max {_num(t.max)}")
    return ", ".join(parts)


def _has_drop(t: MetricThreshold) -> bool:
    return t.max_drop is not None or t.max_relative_drop is not None


def _agreement_drop_error(name: str, where: str = "") -> ConfigError:
    prefix = f"{where}: " if where else ""
    return ConfigError(
        f"{prefix}max_drop/max_relative_drop cannot apply to {name!r}: it compares the "
        "candidate's outputs with the golden's directly, so there is no golden value to drop "
        f"from; use min (e.g. {name} = {{ min = 0.99 }})"
    )


def check_metric(
    output: str,
    name: str,
    kind: MetricKind,
    golden: MetricValue | None,
    candidate: MetricValue,
    threshold: MetricThreshold | None,
) -> MetricCheck:
    """Judge one metric against its threshold (see the module docstring for the rules)."""
    g = golden.value if golden is not None else None
    c = candidate.value
    direction = candidate.direction
    delta = None if g is None else (0.0 if g == c else c - g)
    c_nan = math.isnan(c)
    g_finite = g is not None and math.isfinite(g)

    def done(limit: str, passed: bool, notes: Iterable[str]) -> MetricCheck:
        return MetricCheck(output, name, kind, g, c, delta, direction, limit, passed,
                           "; ".join(dict.fromkeys(n for n in notes if n)))

    if threshold is None:
        note = "candidate is NaN (no threshold set, informational)" if c_nan and g_finite else ""
        return done("", True, [note])
    if kind == "agreement" and _has_drop(threshold):
        raise _agreement_drop_error(name)

    passed = True
    notes: list[str] = []
    nan_note = f"candidate is NaN, golden was {_num(g)}" if g_finite and g is not None \
        else "candidate is NaN"

    if _has_drop(threshold):
        if g is None:
            passed = False
            notes.append(f"the golden has no {name!r} to measure a drop from; re-record the "
                         "golden (record --force) or remove the drop limit")
        elif c_nan and not math.isnan(g):
            passed = False
            notes.append(nan_note)
        elif math.isnan(g):
            notes.append("golden is NaN; drop limits not evaluated")
        else:
            drop = (g - c if direction == "higher" else c - g) if g != c else 0.0
            if threshold.max_drop is not None and not _within(drop, threshold.max_drop):
                passed = False
                notes.append(f"{name} dropped by {_num(drop)} (limit {_num(threshold.max_drop)});"
                             f" to accept, set max_drop = {_suggest(drop, up=True)}")
            mrd = threshold.max_relative_drop
            if mrd is not None:
                if g == 0:
                    notes.append("golden is 0, so max_relative_drop was applied as an absolute "
                                 "drop limit")
                    if not _within(drop, mrd):
                        passed = False
                        notes.append(f"{name} dropped by {_num(drop)} from 0 (limit {_num(mrd)});"
                                     f" to accept, set max_relative_drop = "
                                     f"{_suggest(drop, up=True)}")
                else:
                    rel = drop / abs(g)
                    if not _within(rel, mrd):
                        passed = False
                        notes.append(f"{name} dropped by {_num(rel * 100)}% of {_num(g)} (limit "
                                     f"{_num(mrd * 100)}%); to accept, set max_relative_drop = "
                                     f"{_suggest(rel, up=True)}")

    if threshold.min is not None or threshold.max is not None:
        if c_nan:
            passed = False
            notes.append(nan_note)
        else:
            if threshold.min is not None and not _within(threshold.min, c):
                passed = False
                notes.append(f"{name} {_num(c)} is below min {_num(threshold.min)}; to accept, "
                             f"set min = {_suggest(c, up=False)}")
            if threshold.max is not None and not _within(c, threshold.max):
                passed = False
                notes.append(f"{name} {_num(c)} is above max {_num(threshold.max)}; to accept, "
                             f"set max = {_suggest(c, up=True)}")

    return done(_limit_text(threshold), passed, notes)


def check_all(
    output: str,
    golden: dict[str, MetricValue],
    candidate_task: dict[str, MetricValue],
    candidate_agreement: dict[str, MetricValue],
    config: Config,
) -> list[MetricCheck]:
    """Every metric check of one output: golden task metrics first, then agreement metrics.

    A task metric the golden has but the candidate lacks fails (the candidate's output changed
    kind, e.g. probabilities became logits and log_loss vanished). One only the candidate has is
    checked without a golden value.
    """
    checks: list[MetricCheck] = []
    for name, g in golden.items():
        threshold = config.metric_threshold(output, name)
        c = candidate_task.get(name)
        if c is None:
            checks.append(MetricCheck(
                output=output, name=name, kind="task", golden=g.value, candidate=math.nan,
                delta=None, direction=g.direction,
                limit=_limit_text(threshold) if threshold else "", passed=False,
                note=f"the golden has {name!r} but the candidate does not: its output no longer "
                     "fits the recorded task (shape, dtype, or probabilities vs logits changed)",
            ))
        else:
            checks.append(check_metric(output, name, "task", g, c, threshold))
    for name, c in candidate_task.items():
        if name not in golden:
            checks.append(check_metric(output, name, "task", None, c,
                                       config.metric_threshold(output, name)))
    for name, c in candidate_agreement.items():
        checks.append(check_metric(output, name, "agreement", None, c,
                                   config.metric_threshold(output, name)))
    return checks


def _unknown_metric(where: str, metric: str, names: set[str], scope: str) -> ConfigError:
    avail = ", ".join(sorted(names)) or "(none)"
    if metric in KNOWN_METRICS:
        hint = "" if metric in AGREEMENT_METRICS else (
            " (task metrics need labels in the golden and an output whose task has the metric)"
        )
        return ConfigError(f"{where}: threshold for metric {metric!r}, which no output{scope} "
                           f"has; available{scope}: {avail}{hint}")
    msg = f"{where}: threshold for unknown metric {metric!r}; available{scope}: {avail}"
    close = difflib.get_close_matches(metric, sorted(names | set(KNOWN_METRICS)), n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return ConfigError(msg)


def _check_limits(where: str, metric: str, t: MetricThreshold) -> None:
    if metric in AGREEMENT_METRICS and _has_drop(t):
        raise _agreement_drop_error(metric, where)
    if t.min is not None and t.max is not None and t.min > t.max:
        raise ConfigError(f"{where}: min {_num(t.min)} is above max {_num(t.max)}; "
                          "no value can pass")


def validate_thresholds(config: Config, available: dict[str, set[str]]) -> None:
    """Refuse thresholds that could never apply, before any model runs.

    ``available`` maps every output name to the metrics it has (task and agreement; an empty set
    for task ``none``). A threshold in ``[metrics]`` must name a metric some output has; one in
    ``[outputs.X.metrics]`` must name a metric every output it governs has. Otherwise a typo such
    as ``acuracy`` would leave the gate silently open.
    """
    src = config.source or "config"
    everything = set().union(*available.values()) if available else set()
    for metric, t in config.metrics.items():
        where = f"{src}: [metrics.{metric}]"
        _check_limits(where, metric, t)
        if metric not in everything:
            raise _unknown_metric(where, metric, everything, "")
    governed: set[int] = set()
    for out_name in sorted(available):
        oc = config.output(out_name)
        if oc is None:
            continue
        governed.add(id(oc))
        for metric, t in oc.metrics.items():
            where = f"{src}: [outputs.{oc.pattern!r}.metrics.{metric}]"
            _check_limits(where, metric, t)
            if metric not in available[out_name]:
                raise _unknown_metric(where, metric, available[out_name],
                                      f" for output {out_name!r}")
    # Tables that govern no output still get their names checked, so a typo never hides.
    for oc in config.outputs:
        if id(oc) in governed:
            continue
        for metric, t in oc.metrics.items():
            where = f"{src}: [outputs.{oc.pattern!r}.metrics.{metric}]"
            _check_limits(where, metric, t)
            if metric not in KNOWN_METRICS:
                raise _unknown_metric(where, metric, set(KNOWN_METRICS), "")
