"""Task metrics (scikit-learn) of an output against ground-truth labels, and inferring an
output's task from its dtype and shape. scikit-learn is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from snapshot_tool.config import TASKS
from snapshot_tool.errors import ConfigError, InputsError

if TYPE_CHECKING:
    from snapshot_tool.config import Config
    from snapshot_tool.golden.schema import SignatureGolden


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


# Softmax rows sum to 1 only up to rounding; float16 outputs round far more coarsely.
_DIST_TOL = 1e-3
_DIST_TOL_HALF = 1e-2


@dataclass(frozen=True)
class MetricValue:
    """One metric's value and which direction is better."""

    name: str
    value: float
    direction: Direction


def is_float(dtype: np.dtype[Any]) -> bool:
    # ml_dtypes' bfloat16/float8 (what TF hands back) are not np.floating subclasses.
    return dtype.kind == "f" or dtype.name.startswith(("bfloat16", "float8"))


def is_text(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "USO"


def per_row(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1


def as_rows(a: Array) -> Array:
    """(N, ...) -> (N, D) float64; a 0-d value counts as one row."""
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1)
    return a.astype(np.float64).reshape(a.shape[0], per_row(a.shape))


def in_unit_interval(values: Array) -> bool:
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


def sigmoid(z: Array) -> Array:
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


def binary_decisions(values: Array, threshold: float, probabilities: bool | None = None
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
        probabilities = in_unit_interval(v)
    cut = threshold if probabilities else _logit(threshold)
    out = (v > cut).astype(np.int64)
    out[~np.isfinite(v)] = -1
    return out


def argmax_decisions(scores: Array) -> Array:
    finite = np.isfinite(scores)
    if finite.all():  # the usual case: no masking, no -1 rows
        decided: Array = np.argmax(scores, axis=1).astype(np.int64)
        return decided
    out: Array = np.argmax(np.where(finite, scores, -np.inf), axis=1)
    out = out.astype(np.int64)
    out[~np.all(finite, axis=1)] = -1
    return out


def text_values(a: Array) -> Array:
    flat = a.ravel()
    return np.array(
        [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in flat], dtype=object
    )


def _label_kind(labels: Array) -> Literal["int", "float", "other"]:
    if labels.dtype.kind in "biu":
        return "int"
    if is_float(labels.dtype):
        v = labels.astype(np.float64)
        if v.size and np.all(np.isfinite(v)) and np.all(v == np.round(v)):
            return "int"
        return "float"
    return "other"


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
    if out.ndim == 0 or not is_float(out.dtype):
        return "none"
    one_per_row = out.ndim <= 2 and per_row(out.shape) == 1
    multi_col = out.ndim == 2 and out.shape[1] > 1
    if labels is None:
        if multi_col:
            return "classification"
        if one_per_row and in_unit_interval(out.astype(np.float64)):
            return "binary"
        return "regression"
    lab = np.asarray(labels)
    kind = _label_kind(lab)
    if kind == "other":
        return "none"
    if kind == "float":
        return "regression"
    lab_per_row = per_row(lab.shape)
    if multi_col and (lab_per_row == 1 or _is_one_hot(lab, out.shape[1])):
        return "classification"
    if one_per_row and lab_per_row == 1 and np.all(np.isin(lab.astype(np.float64), (0.0, 1.0))):
        return "binary"
    if one_per_row and in_unit_interval(out.astype(np.float64)):
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


def metric_value(name: str, value: float) -> MetricValue:
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
    if is_float(out.dtype):
        if task == "binary":
            return _binary_metrics(out, lab, threshold)
        return _multiclass_metrics(out, lab)
    if out.ndim > 2 or per_row(out.shape) != 1:
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
    if lab.ndim > 2 or per_row(lab.shape) != 1:
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
        "accuracy": metric_value("accuracy", skm.accuracy_score(y_true, y_pred)),
        # Balanced accuracy *is* macro recall over the true classes; computed this way it does
        # not warn when a candidate predicts a class the labels never contain.
        "balanced_accuracy": metric_value(
            "balanced_accuracy",
            skm.recall_score(
                y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0
            ),
        ),
        "f1_macro": metric_value("f1_macro", skm.f1_score(y_true, y_pred, average="macro", **kw)),
        "f1_weighted": metric_value(
            "f1_weighted", skm.f1_score(y_true, y_pred, average="weighted", **kw)),
        "precision_macro": metric_value(
            "precision_macro", skm.precision_score(y_true, y_pred, average="macro", **kw)
        ),
        "recall_macro": metric_value(
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
    pred = argmax_decisions(scores)
    result = _decision_metrics(y, pred, pred >= 0)
    class_ids = np.arange(classes)
    for k in _TOP_K:
        if k < classes:
            name = f"top{k}_accuracy"
            value = (
                skm.top_k_accuracy_score(y, scores, k=k, labels=class_ids) if all_finite
                else math.nan
            )
            result[name] = metric_value(name, value)
    if _is_distribution(scores, out.dtype):
        if all_finite:
            # Renormalise away float32 rounding: sklearn's own sum-to-one check is tighter
            # than ours for float64 input.
            proba = scores / scores.sum(axis=1, keepdims=True)
            result["log_loss"] = metric_value("log_loss", skm.log_loss(y, proba, labels=class_ids))
            auc = _ovr_roc_auc(y, proba)
        else:
            result["log_loss"] = metric_value("log_loss", math.nan)
            auc = math.nan if np.unique(y).size >= 2 else None
        if auc is not None:
            result["roc_auc"] = metric_value("roc_auc", auc)
    return result


def _binary_metrics(out: Array, lab: Array, threshold: float) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    if out.ndim > 2 or per_row(out.shape) != 1:
        raise InputsError(
            f"binary needs one score per row, (N,) or (N, 1), got shape {out.shape}; "
            "for one column per class set task = \"classification\""
        )
    if lab.ndim > 2 or per_row(lab.shape) != 1:
        raise InputsError(f"binary labels must have shape (N,) or (N, 1), got {lab.shape}")
    if _label_kind(lab) != "int" or not np.all(np.isin(lab.astype(np.float64), (0.0, 1.0))):
        raise InputsError("binary labels must be 0/1 (or true/false)")
    y = lab.astype(np.int64).ravel()
    scores = out.astype(np.float64).ravel()
    pred = binary_decisions(scores, threshold)
    result = _decision_metrics(y, pred, pred >= 0)
    if in_unit_interval(scores):
        all_finite = bool(np.all(np.isfinite(scores)))
        both = np.unique(y).size == 2
        if all_finite:
            result["log_loss"] = metric_value("log_loss", skm.log_loss(y, scores, labels=[0, 1]))
            if both:
                result["roc_auc"] = metric_value("roc_auc", skm.roc_auc_score(y, scores))
        else:
            result["log_loss"] = metric_value("log_loss", math.nan)
            if both:
                result["roc_auc"] = metric_value("roc_auc", math.nan)
    return result


def _predicted_label_metrics(out: Array, lab: Array, task: str) -> dict[str, MetricValue]:
    """An output that already holds predicted labels (class ids, bools or class names)."""
    if lab.ndim > 2 or per_row(lab.shape) != 1:
        raise InputsError(f"labels must have shape (N,) or (N, 1), got {lab.shape}")
    text_out, text_lab = is_text(out.dtype), is_text(lab.dtype)
    if text_out != text_lab:
        raise InputsError(
            f"cannot compare {out.dtype} predictions with {lab.dtype} labels: one holds text, "
            "the other numbers"
        )
    if text_out:
        y_true, y_pred = text_values(lab), text_values(out)
    else:
        y_true = _class_labels(lab, None)
        y_pred = out.astype(np.int64).ravel()
        if task == "binary" and not np.all(np.isin(y_true, (0, 1))):
            raise InputsError("binary labels must be 0/1 (or true/false)")
    return _decision_metrics(y_true, y_pred, np.ones(y_pred.shape, dtype=bool))


def _regression_metrics(out: Array, lab: Array) -> dict[str, MetricValue]:
    from sklearn import metrics as skm

    if is_text(out.dtype) or is_text(lab.dtype):
        raise InputsError("regression needs numeric outputs and labels, got text")
    pred, y = as_rows(out), as_rows(lab)
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
        return {n: metric_value(n, math.nan) for n in names}
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
    return {n: metric_value(n, values[n]) for n in names}


@dataclass
class OutputInfo:
    """What task inference and metric names need of a golden output, without its values:
    dtype, shape, its first row (metric names depend on nothing else) and whether every
    finite value lies in [0, 1] (read lazily, once)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    first: Callable[[], np.ndarray]
    unit_of: Callable[[], bool]
    _unit: bool | None = None

    def unit(self) -> bool:
        if self._unit is None:
            self._unit = self.unit_of()
        return self._unit


def array_info(arr: np.ndarray) -> OutputInfo:
    """:class:`OutputInfo` of an output held in memory."""
    return OutputInfo(arr.dtype, tuple(arr.shape), lambda: arr[:1] if arr.ndim else arr,
                      lambda: in_unit_interval(arr.astype(np.float64)))


def _proxy(info: OutputInfo) -> np.ndarray:
    """One row standing in for a golden output when inferring its task without labels:
    infer_task then looks only at the dtype, the per-row shape and whether the values lie
    in [0, 1] (asked only where it matters), so a streamed golden's output need not be in
    memory for it."""
    dtype, shape = info.dtype, info.shape
    if not shape:
        return np.zeros((), dtype=dtype)
    rest = shape[1:]
    if is_float(dtype):
        fill = 0.5 if len(shape) <= 2 and per_row(shape) == 1 and info.unit() else 2.0
        return np.full((1, *rest), fill, dtype=dtype)
    return np.zeros((1, *rest), dtype=dtype)


def output_task(sg: SignatureGolden, name: str, config: Config, key: str = "",
                info: OutputInfo | None = None) -> tuple[str, float]:
    """The task and decision threshold a golden output is judged with: as recorded with its
    metrics, else the config's ``task``, else inferred from the golden output (``info``
    when its values are not in memory). ``key``: the output's qualified name."""
    oc = config.output(key or name)
    if name in sg.metrics:
        om = sg.metrics[name]
        return om.task, om.threshold
    threshold = config.decision_threshold(key or name)
    if not sg.info(name).batched and (oc is None or not oc.task):
        return "none", threshold
    if oc is not None and oc.task is not None:
        return infer_task(np.zeros(()), None, oc.task), threshold
    return infer_task(_proxy(info or array_info(sg.outputs[name])), None, None), threshold
