"""Unit tests for snapshot_tool.metrics: task inference, sklearn metrics, agreement, thresholds.

Real probabilities come from a LogisticRegression on scikit-learn's bundled digits (no network,
no TensorFlow), so the metrics are checked on the kind of outputs a model really produces.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from snapshot_tool.config import Config, MetricThreshold, parse_config
from snapshot_tool.errors import ConfigError, InputsError
from snapshot_tool.metrics.agreement import AGREEMENT_METRICS, agreement_metrics
from snapshot_tool.metrics.tasks import (
    KNOWN_METRICS,
    MetricKind,
    MetricValue,
    infer_task,
    task_metrics,
)
from snapshot_tool.metrics.thresholds import (
    MetricCheck,
    check_all,
    check_metric,
    validate_thresholds,
)

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Digits:
    proba: Array  # (N, 10) float32 probabilities
    logits: Array  # (N, 10) float64 decision function
    y: Array  # (N,) int labels
    features: Array  # (N, 64) float64 in [0, 1]


@pytest.fixture(scope="module")
def digits() -> Digits:
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    model = LogisticRegression(max_iter=2000).fit(x[:900], y[:900])
    xt = x[900:]
    return Digits(
        proba=model.predict_proba(xt).astype(np.float32),
        logits=model.decision_function(xt),
        y=y[900:],
        features=xt,
    )


def _binary(d: Digits) -> tuple[Array, Array, Array]:
    """Digit 3 vs rest: sigmoid-style probability, its logit, and 0/1 labels."""
    p = np.clip(d.proba[:, 3].astype(np.float64), 1e-7, 1 - 1e-7)
    return p, np.log(p) - np.log1p(-p), (d.y == 3).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Import cost


def test_module_import_does_not_load_sklearn() -> None:
    code = ("import sys, snapshot_tool.metrics.tasks, snapshot_tool.metrics.agreement, "
            "snapshot_tool.metrics.thresholds; "
            "sys.exit(1 if any(m.split('.')[0] == 'sklearn' for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------------------------
# Task inference


def test_infer_classification_from_probabilities_and_logits(digits: Digits) -> None:
    assert infer_task(digits.proba, digits.y) == "classification"
    assert infer_task(digits.logits, digits.y) == "classification"
    assert infer_task(digits.proba, None) == "classification"


def test_infer_binary_from_sigmoid_and_logit_columns(digits: Digits) -> None:
    p, z, yb = _binary(digits)
    assert infer_task(p, yb) == "binary"
    assert infer_task(z[:, None], yb) == "binary"
    assert infer_task(p.astype(np.float32), yb.astype(bool)) == "binary"
    assert infer_task(p[:, None], None) == "binary"
    # Without labels, values outside [0, 1] cannot be a probability: regression.
    assert infer_task(z, None) == "regression"


def test_infer_regression_from_float_labels(digits: Digits) -> None:
    target = digits.features[:, 10] + 0.25
    assert infer_task(digits.features[:, 10], target) == "regression"
    assert infer_task(digits.proba, digits.features[:, :10] + 0.5) == "regression"
    # Integer labels that are not 0/1 on a one-value output are counts, not classes.
    assert infer_task(digits.logits[:, 0], digits.y) == "regression"


def test_infer_non_float_outputs_are_none_unless_overridden(digits: Digits) -> None:
    classes = np.argmax(digits.proba, axis=1)
    assert infer_task(classes, digits.y) == "none"
    assert infer_task(classes > 4, None) == "none"
    assert infer_task(np.array(["a", "b"]), None) == "none"
    assert infer_task(classes, digits.y, override="classification") == "classification"
    assert infer_task(digits.proba, digits.y, override="regression") == "regression"
    assert infer_task(digits.proba, digits.y, override="none") == "none"


def test_infer_rejects_unknown_override(digits: Digits) -> None:
    with pytest.raises(ConfigError, match="task must be one of"):
        infer_task(digits.proba, digits.y, override="classifcation")


# --------------------------------------------------------------------------------------------
# Classification metrics


def test_classification_metrics_match_sklearn(digits: Digits) -> None:
    p, y = digits.proba, digits.y
    m = task_metrics(p, y, "classification")
    pred = p.argmax(axis=1)
    p64 = p.astype(np.float64)
    p64 /= p64.sum(axis=1, keepdims=True)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1_macro": skm.f1_score(y, pred, average="macro"),
        "f1_weighted": skm.f1_score(y, pred, average="weighted"),
        "precision_macro": skm.precision_score(y, pred, average="macro"),
        "recall_macro": skm.recall_score(y, pred, average="macro"),
        "top3_accuracy": skm.top_k_accuracy_score(y, p, k=3),
        "top5_accuracy": skm.top_k_accuracy_score(y, p, k=5),
        "log_loss": skm.log_loss(y, p64),
        "roc_auc": skm.roc_auc_score(y, p64, multi_class="ovr", average="macro"),
    }
    assert set(m) == set(expected)
    for name, value in expected.items():
        assert m[name].name == name
        assert m[name].value == pytest.approx(value, rel=1e-9), name
        assert m[name].direction == KNOWN_METRICS[name]
    assert m["log_loss"].direction == "lower"
    assert m["accuracy"].direction == "higher"
    assert 0.85 < m["accuracy"].value < 1.0  # the fixture model is real, not degenerate


def test_logits_give_decision_and_topk_but_no_probability_metrics(digits: Digits) -> None:
    from_logits = task_metrics(digits.logits, digits.y, "classification")
    from_proba = task_metrics(digits.proba, digits.y, "classification")
    assert "log_loss" not in from_logits and "roc_auc" not in from_logits
    # Softmax preserves order, so argmax and top-k agree with the probabilities.
    for name in ("accuracy", "f1_macro", "top3_accuracy", "top5_accuracy"):
        assert from_logits[name].value == pytest.approx(from_proba[name].value)


@pytest.mark.parametrize(("classes", "expected"), [
    (3, set()), (4, {"top3_accuracy"}), (5, {"top3_accuracy"}),
    (6, {"top3_accuracy", "top5_accuracy"}),
])
def test_topk_only_when_k_below_class_count(classes: int, expected: set[str]) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, classes))
    y = rng.integers(0, classes, size=50)
    names = set(task_metrics(logits, y, "classification"))
    assert {n for n in names if n.startswith("top")} == expected


def test_class_missing_from_labels_does_not_crash(digits: Digits) -> None:
    keep = digits.y != 9
    p, y = digits.proba[keep], digits.y[keep]
    m = task_metrics(p, y, "classification")
    p64 = p.astype(np.float64)
    p64 /= p64.sum(axis=1, keepdims=True)
    assert m["log_loss"].value == pytest.approx(skm.log_loss(y, p64, labels=np.arange(10)))
    assert m["top3_accuracy"].value == pytest.approx(
        skm.top_k_accuracy_score(y, p, k=3, labels=np.arange(10)))
    per_class = [skm.roc_auc_score(y == c, p64[:, c]) for c in range(9)]
    assert m["roc_auc"].value == pytest.approx(np.mean(per_class))
    pred = p.argmax(axis=1)
    assert (pred == 9).any()  # the model still predicts the class the labels lack
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = skm.balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"].value == pytest.approx(expected)


@pytest.mark.filterwarnings("error")
def test_probabilities_off_by_rounding_still_get_log_loss() -> None:
    # float16 softmax rows sum to 1 only within ~1e-3; sklearn would warn about such input.
    p = np.array([[0.7005, 0.2, 0.1], [0.2, 0.7004, 0.1], [0.1, 0.1, 0.8003]])
    y = np.array([0, 1, 1])
    m = task_metrics(p, y, "classification")
    assert m["log_loss"].value == pytest.approx(
        skm.log_loss(y, p / p.sum(axis=1, keepdims=True), labels=[0, 1, 2]))


def test_one_hot_labels_equal_class_ids(digits: Digits) -> None:
    one_hot = np.eye(10, dtype=np.float32)[digits.y]
    assert infer_task(digits.proba, one_hot) == "classification"
    a = task_metrics(digits.proba, one_hot, "classification")
    b = task_metrics(digits.proba, digits.y, "classification")
    assert {k: v.value for k, v in a.items()} == {k: v.value for k, v in b.items()}


def test_label_out_of_class_range_is_an_input_error(digits: Digits) -> None:
    y = digits.y.copy()
    y[0] = 10
    with pytest.raises(InputsError, match="class 10 but the output has 10 columns"):
        task_metrics(digits.proba, y, "classification")


@pytest.mark.parametrize("task", ["classification", "binary", "regression"])
def test_label_count_mismatch_is_an_input_error(digits: Digits, task: str) -> None:
    output = {"classification": digits.proba, "binary": _binary(digits)[0],
              "regression": digits.features[:, 10]}[task]
    labels = {"classification": digits.y, "binary": _binary(digits)[2],
              "regression": digits.features[:, 11]}[task][:-3]
    with pytest.raises(InputsError) as exc:
        task_metrics(output, labels, task)
    msg = str(exc.value)
    assert "\n" not in msg
    assert f"labels have {len(labels)} rows but the output has {len(output)}" in msg


def test_predicted_label_output_scored_when_overridden(digits: Digits) -> None:
    pred = digits.proba.argmax(axis=1).astype(np.int32)
    m = task_metrics(pred, digits.y, "classification")
    assert m["accuracy"].value == pytest.approx(skm.accuracy_score(digits.y, pred))
    assert "top3_accuracy" not in m
    names = np.array([f"digit{i}".encode() for i in pred])
    truth = np.array([f"digit{i}" for i in digits.y])
    assert task_metrics(names, truth, "classification")["accuracy"].value == pytest.approx(
        m["accuracy"].value)


def test_none_task_has_no_metrics(digits: Digits) -> None:
    assert task_metrics(digits.proba, digits.y, "none") == {}
    assert agreement_metrics(digits.proba, digits.proba, "none") == {}


# --------------------------------------------------------------------------------------------
# Binary metrics


def test_binary_probability_metrics_match_sklearn(digits: Digits) -> None:
    p, _, y = _binary(digits)
    m = task_metrics(p, y, "binary")
    pred = (p > 0.5).astype(int)
    assert m["accuracy"].value == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_macro"].value == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"].value == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["log_loss"].value == pytest.approx(skm.log_loss(y, p))
    assert m["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, p))
    assert not any(n.startswith("top") for n in m)


def test_binary_threshold_is_configurable(digits: Digits) -> None:
    p, _, y = _binary(digits)
    strict = task_metrics(p, y, "binary", threshold=0.95)
    pred = (p > 0.95).astype(int)
    assert strict["recall_macro"].value == pytest.approx(
        skm.recall_score(y, pred, average="macro"))
    assert strict["recall_macro"].value != task_metrics(p, y, "binary")["recall_macro"].value


def test_binary_logits_go_through_sigmoid(digits: Digits) -> None:
    p, z, y = _binary(digits)
    from_logits = task_metrics(z[:, None], y, "binary", threshold=0.95)
    from_proba = task_metrics(p, y, "binary", threshold=0.95)
    assert "log_loss" not in from_logits and "roc_auc" not in from_logits
    for name in ("accuracy", "f1_macro", "recall_macro"):
        assert from_logits[name].value == pytest.approx(from_proba[name].value)


def test_binary_rejects_non_01_labels(digits: Digits) -> None:
    p, _, _ = _binary(digits)
    with pytest.raises(InputsError, match="0/1"):
        task_metrics(p, digits.y, "binary")


# --------------------------------------------------------------------------------------------
# Regression metrics


def test_regression_metrics_match_sklearn(digits: Digits) -> None:
    rng = np.random.default_rng(1)
    y = digits.features[:, 20] * 3.0 + 0.5
    pred = y + rng.normal(scale=0.2, size=y.shape)
    m = task_metrics(pred.astype(np.float32)[:, None], y, "regression")
    pred32 = pred.astype(np.float32).astype(np.float64)
    expected = {
        "mae": skm.mean_absolute_error(y, pred32),
        "mse": skm.mean_squared_error(y, pred32),
        "rmse": math.sqrt(skm.mean_squared_error(y, pred32)),
        "r2": skm.r2_score(y, pred32),
        "max_error": skm.max_error(y, pred32),
        "median_absolute_error": skm.median_absolute_error(y, pred32),
    }
    assert set(m) == set(expected)
    for name, value in expected.items():
        assert m[name].value == pytest.approx(value, rel=1e-9), name
    assert m["r2"].direction == "higher" and m["mse"].direction == "lower"


def test_multi_output_regression_flattens_rows(digits: Digits) -> None:
    y = digits.features[:, :6] + 0.1
    pred = (y + 0.05).reshape(-1, 2, 3)  # extra dims per row
    m = task_metrics(pred, y, "regression")
    assert m["mae"].value == pytest.approx(0.05)
    assert m["r2"].value == pytest.approx(skm.r2_score(y, y + 0.05))
    assert m["max_error"].value == pytest.approx(0.05)
    with pytest.raises(InputsError, match="per row"):
        task_metrics(pred, y[:, :5], "regression")


# --------------------------------------------------------------------------------------------
# NaN in outputs


def test_nan_rows_count_as_wrong_and_nan_score_metrics(digits: Digits) -> None:
    p = digits.proba.copy()
    right = np.flatnonzero(p.argmax(axis=1) == digits.y)[:5]
    p[right, 0] = np.nan
    clean = task_metrics(digits.proba, digits.y, "classification")
    m = task_metrics(p, digits.y, "classification")
    assert m["accuracy"].value == pytest.approx(clean["accuracy"].value - 5 / len(p))
    for name in ("log_loss", "roc_auc", "top3_accuracy"):
        assert math.isnan(m[name].value), name
    reg = task_metrics(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0, 2.5]), "regression")
    assert all(math.isnan(v.value) for v in reg.values())


# --------------------------------------------------------------------------------------------
# Agreement metrics


def test_identical_outputs_agree_fully(digits: Digits) -> None:
    for output, task in [(digits.proba, "classification"), (digits.logits, "classification"),
                         (_binary(digits)[0], "binary"), (digits.features, "regression")]:
        a = agreement_metrics(output, output.copy(), task)
        assert a, task
        assert all(v.value == 1.0 and v.direction == "higher" for v in a.values()), task
        assert set(a) <= AGREEMENT_METRICS


def test_identical_outputs_agree_exactly_despite_rounding() -> None:
    # For this seed the textbook Pearson formula gives 0.9999999999999998 on identical input.
    out = np.random.default_rng(0).normal(size=(20, 3))
    assert agreement_metrics(out, out.copy(), "regression")["correlation"].value == 1.0


def test_damaged_classification_agrees_less(digits: Digits) -> None:
    damaged = digits.proba.copy()
    damaged[:40] = np.roll(damaged[:40], 1, axis=1)  # changes the argmax of these rows
    a = agreement_metrics(digits.proba, damaged, "classification")
    assert a["top1_agreement"].value == pytest.approx(1 - 40 / len(damaged))
    assert a["cosine_min"].value < a["cosine_mean"].value < 1.0


def test_binary_agreement_uses_decisions_and_probability_pairs(digits: Digits) -> None:
    p, z, _ = _binary(digits)
    flipped = p.copy()
    flipped[:7] = 1.0 - flipped[:7]
    a = agreement_metrics(p, flipped, "binary")
    changed = np.sum((p[:7] > 0.5) != (flipped[:7] > 0.5))
    assert changed > 0
    assert a["top1_agreement"].value == pytest.approx(1 - changed / len(p))
    assert a["cosine_min"].value < 0.9  # plain scalar cosines of positive numbers would be 1.0
    # Logits and their probabilities make the same decisions.
    assert agreement_metrics(z, np.log(flipped) - np.log1p(-flipped), "binary")[
        "top1_agreement"].value == pytest.approx(a["top1_agreement"].value)


def test_cosine_of_zero_rows() -> None:
    g = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    c = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    a = agreement_metrics(g, c, "regression")
    # rows: both zero -> 1, one zero -> 0, orthogonal -> 0, parallel -> 1
    assert a["cosine_mean"].value == pytest.approx(0.5)
    assert a["cosine_min"].value == 0.0


@pytest.mark.parametrize(("g", "c", "expected"), [
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], 1.0),  # both constant and equal
    ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], 0.0),  # one constant
    ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0], 0.0),  # both constant, shifted
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], -1.0),
    ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], 0.0),  # NaN appears in the candidate
    ([1.0, np.nan, 3.0], [1.1, np.nan, 3.2], 1.0),  # same NaN position, correlated rest
])
def test_correlation_never_nan(g: list[float], c: list[float], expected: float) -> None:
    a = agreement_metrics(np.array(g), np.array(c), "regression")
    assert a["correlation"].value == pytest.approx(expected)
    assert not any(math.isnan(v.value) for v in a.values())


def test_regression_correlation_tracks_noise(digits: Digits) -> None:
    rng = np.random.default_rng(2)
    y = digits.features[:, 20:30]
    noisy = y + rng.normal(scale=0.3, size=y.shape)
    a = agreement_metrics(y, noisy, "regression")
    assert 0.5 < a["correlation"].value < 0.99
    assert a["correlation"].value == pytest.approx(np.corrcoef(y.ravel(), noisy.ravel())[0, 1])


def test_agreement_on_shape_change_is_empty(digits: Digits) -> None:
    assert agreement_metrics(digits.proba, digits.proba[:, :9], "classification") == {}


# --------------------------------------------------------------------------------------------
# check_metric


def _v(name: str, value: float) -> MetricValue:
    return MetricValue(name, value, KNOWN_METRICS[name])


def _check(name: str, golden: float | None, candidate: float,
           **limits: float) -> MetricCheck:
    kind: MetricKind = "agreement" if name in AGREEMENT_METRICS else "task"
    g = None if golden is None else _v(name, golden)
    return check_metric("out", name, kind, g, _v(name, candidate),
                        MetricThreshold(**limits) if limits else None)


def test_max_drop_higher_is_better() -> None:
    ok = _check("accuracy", 0.95, 0.94, max_drop=0.01)  # 0.010000000000000009 in floats
    assert ok.passed and ok.limit == "drop <= 0.01"
    assert ok.delta == pytest.approx(-0.01) and ok.golden == 0.95 and ok.candidate == 0.94
    bad = _check("accuracy", 0.95, 0.93, max_drop=0.01)
    assert not bad.passed
    assert "max_drop = 0.02" in bad.note
    assert _check("accuracy", 0.5, 0.9, max_drop=0.01).passed  # improvement


def test_max_drop_lower_is_better() -> None:
    assert _check("log_loss", 0.30, 0.305, max_drop=0.01).passed
    bad = _check("log_loss", 0.30, 0.32, max_drop=0.01)
    assert not bad.passed and bad.direction == "lower"
    assert _check("log_loss", 0.30, 0.10, max_drop=0.01).passed  # lower loss is better


def test_max_relative_drop() -> None:
    assert _check("mse", 2.0, 2.1, max_relative_drop=0.1).passed
    bad = _check("mse", 2.0, 2.3, max_relative_drop=0.1)
    assert not bad.passed and "15%" in bad.note
    assert _check("r2", 0.8, 0.75, max_relative_drop=0.1).passed
    assert not _check("r2", 0.8, 0.7, max_relative_drop=0.1).passed


def test_max_relative_drop_at_zero_golden_falls_back_to_absolute() -> None:
    ok = _check("max_error", 0.0, 0.05, max_relative_drop=0.1)
    assert ok.passed and "applied as an absolute" in ok.note
    bad = _check("max_error", 0.0, 0.2, max_relative_drop=0.1)
    assert not bad.passed and "applied as an absolute" in bad.note
    assert _check("accuracy", 0.0, 0.0, max_relative_drop=0.1).passed


def test_min_and_max_bounds() -> None:
    assert _check("accuracy", 0.95, 0.91, min=0.9).passed
    low = _check("accuracy", 0.95, 0.89, min=0.9)
    assert not low.passed and low.limit == "min 0.9" and "min = 0.89" in low.note
    assert not _check("log_loss", 0.3, 0.6, max=0.5).passed
    both = _check("accuracy", 0.95, 0.93, max_drop=0.01, min=0.9)
    assert not both.passed and both.limit == "drop <= 0.01, min 0.9"


def test_agreement_metrics_only_take_bounds() -> None:
    ok = _check("top1_agreement", None, 0.995, min=0.99)
    assert ok.passed and ok.kind == "agreement" and ok.golden is None and ok.delta is None
    assert not _check("top1_agreement", None, 0.98, min=0.99).passed
    with pytest.raises(ConfigError, match="no golden value"):
        _check("cosine_min", None, 0.98, max_drop=0.01)


def test_no_threshold_is_informational() -> None:
    c = _check("accuracy", 0.95, 0.10)
    assert c.passed and c.limit == ""


def test_nan_candidate_fails_its_threshold() -> None:
    for limits in ({"max_drop": 0.01}, {"max_relative_drop": 0.5}, {"min": 0.0}):
        c = _check("log_loss", 0.3, math.nan, **limits)
        assert not c.passed, limits
        assert "NaN" in c.note
    info = _check("log_loss", 0.3, math.nan)
    assert info.passed and "NaN" in info.note
    # NaN both times: no drop can be measured, so drop limits do not fail on it.
    assert _check("log_loss", math.nan, math.nan, max_drop=0.01).passed


def test_drop_limit_without_golden_value_fails() -> None:
    c = _check("accuracy", None, 0.9, max_drop=0.01)
    assert not c.passed and "re-record" in c.note


# --------------------------------------------------------------------------------------------
# check_all and validate_thresholds


def _config(data: dict[str, Any]) -> Config:
    return parse_config(data, "snapshot.toml")


def test_check_all_uses_per_output_then_global_thresholds() -> None:
    cfg = _config({
        "metrics": {"accuracy": {"max_drop": 0.01}, "top1_agreement": {"min": 0.99}},
        "outputs": {"probs": {"metrics": {"accuracy": {"max_drop": 0.05}}}},
    })
    golden = {"accuracy": _v("accuracy", 0.95), "f1_macro": _v("f1_macro", 0.9)}
    cand = {"accuracy": _v("accuracy", 0.92), "f1_macro": _v("f1_macro", 0.5)}
    agree = {"top1_agreement": _v("top1_agreement", 0.97)}
    probs = {c.name: c for c in check_all("probs", golden, cand, agree, cfg)}
    other = {c.name: c for c in check_all("other", golden, cand, agree, cfg)}
    assert probs["accuracy"].passed and probs["accuracy"].limit == "drop <= 0.05"
    assert not other["accuracy"].passed and other["accuracy"].limit == "drop <= 0.01"
    assert probs["f1_macro"].passed and probs["f1_macro"].limit == ""
    assert not probs["top1_agreement"].passed and probs["top1_agreement"].kind == "agreement"
    assert [c.name for c in check_all("probs", golden, cand, agree, cfg)] == [
        "accuracy", "f1_macro", "top1_agreement"]


def test_check_all_fails_task_metric_missing_from_candidate() -> None:
    golden = {"accuracy": _v("accuracy", 0.95), "log_loss": _v("log_loss", 0.2)}
    cand = {"accuracy": _v("accuracy", 0.95)}
    checks = {c.name: c for c in check_all("out", golden, cand, {}, Config())}
    assert checks["accuracy"].passed
    missing = checks["log_loss"]
    assert not missing.passed and "candidate does not" in missing.note
    assert math.isnan(missing.candidate)


def test_validate_thresholds_accepts_known_metrics() -> None:
    cfg = _config({
        "metrics": {"accuracy": {"max_drop": 0.01}, "top1_agreement": {"min": 0.99}},
        "outputs": {"probs": {"metrics": {"log_loss": {"max_relative_drop": 0.1}}}},
    })
    validate_thresholds(cfg, {
        "probs": {"accuracy", "log_loss", "top1_agreement"},
        "value": {"mae", "correlation"},
    })


def test_validate_thresholds_rejects_unknown_metric() -> None:
    cfg = _config({"metrics": {"acuracy": {"max_drop": 0.01}}})
    with pytest.raises(ConfigError) as exc:
        validate_thresholds(cfg, {"probs": {"accuracy", "top1_agreement"}})
    msg = str(exc.value)
    assert "threshold for unknown metric 'acuracy'; available: accuracy, top1_agreement" in msg
    assert "did you mean 'accuracy'" in msg


def test_validate_thresholds_rejects_metric_missing_on_its_output() -> None:
    cfg = _config({"outputs": {"value": {"metrics": {"accuracy": {"max_drop": 0.01}}}}})
    available = {"probs": {"accuracy"}, "value": {"mae", "correlation"}}
    with pytest.raises(ConfigError, match="output 'value'"):
        validate_thresholds(cfg, available)
    # A known metric that no output has (say, no labels were recorded) is also refused.
    with pytest.raises(ConfigError, match="'log_loss', which no output has"):
        validate_thresholds(_config({"metrics": {"log_loss": {"max": 1.0}}}), available)


def test_validate_thresholds_rejects_drop_on_agreement_metric() -> None:
    cfg = _config({"metrics": {"top1_agreement": {"max_drop": 0.01}}})
    with pytest.raises(ConfigError, match="use min"):
        validate_thresholds(cfg, {"probs": {"top1_agreement"}})


def test_score_head_against_class_ids_is_not_a_regression() -> None:
    score = np.linspace(0.0, 1.0, 20)[:, None]
    class_ids = np.arange(20) % 10
    assert infer_task(score, class_ids) == "none"
    assert infer_task(score, class_ids, override="regression") == "regression"
    assert infer_task(score * 7.0, class_ids) == "regression"  # unbounded: a real regression
