"""Merged per-range metric accumulators give the in-process metrics (metrics.mergeable)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from snapshot_tool.errors import InputsError
from snapshot_tool.metrics import mergeable as mm
from snapshot_tool.metrics.agreement import agreement_metrics
from snapshot_tool.metrics.tasks import MetricValue, task_metrics

CUTS = [[], [1], [10, 11, 57], [30, 90]]


def _ranges(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    ranges = list(itertools.pairwise([0, *cuts, n]))
    random.Random(len(cuts)).shuffle(ranges)  # workers finish in any order
    return ranges


def _agreement(g: np.ndarray, c: np.ndarray, task: str, cuts: list[int]
               ) -> dict[str, MetricValue]:
    parts = [mm.agreement_partial(g[a:b], c[a:b], task, 0.5) for a, b in _ranges(len(g), cuts)]
    acc = parts[0]
    for p in parts[1:]:
        acc = mm.merge_agreement(acc, p)
    return mm.finish_agreement(acc)


def _task(out: np.ndarray, labels: np.ndarray, task: str, cuts: list[int]
          ) -> dict[str, MetricValue]:
    parts = [mm.task_partial(out[a:b], labels[a:b], task, 0.5)
             for a, b in _ranges(len(out), cuts)]
    acc = parts[0]
    for p in parts[1:]:
        acc = mm.merge_task(acc, p)
    return mm.finish_task(acc)


def _same(merged: dict[str, MetricValue], whole: dict[str, MetricValue]) -> None:
    assert merged.keys() == whole.keys()
    for name, v in whole.items():
        # Sums are added in another order than numpy/scikit-learn add them: equal up to
        # floating-point rounding, never more.
        assert merged[name].value == pytest.approx(v.value, rel=1e-9, abs=1e-12, nan_ok=True), \
            name
        assert merged[name].direction == v.direction


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _outputs() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """name -> (golden, candidate, labels, task)."""
    rng = np.random.default_rng(7)
    n = 120
    logits = rng.normal(size=(n, 6)).astype(np.float32)
    cand_logits = logits + rng.normal(0, 0.3, logits.shape).astype(np.float32)
    classes = rng.integers(0, 6, n)
    prob = rng.random(n).astype(np.float32)
    cand_prob = np.clip(prob + rng.normal(0, 0.1, n), 0, 1).astype(np.float32)
    binary = (rng.random(n) < 0.4).astype(np.int64)
    reg = rng.normal(size=(n, 2)).astype(np.float32)
    cand_reg = reg + rng.normal(0, 0.05, reg.shape).astype(np.float32)
    reg1 = rng.normal(size=(n, 1)).astype(np.float64)
    nan_logits = cand_logits.copy()
    nan_logits[5, 2] = np.nan
    ids = rng.integers(0, 4, n)
    cand_ids = np.where(rng.random(n) < 0.2, (ids + 1) % 4, ids)
    words = np.array([b"cat", b"dog", b"eel"], dtype=object)[rng.integers(0, 3, n)]
    return {
        "softmax": (_softmax(logits), _softmax(cand_logits), classes, "classification"),
        "logits": (logits, cand_logits, classes, "classification"),
        "logits_nan": (logits, nan_logits, classes, "classification"),
        "prob": (prob, cand_prob, binary, "binary"),
        "binary_logit": ((prob - 0.5) * 8, (cand_prob - 0.5) * 8, binary, "binary"),
        "regression": (reg, cand_reg, reg + 0.1, "regression"),
        "regression_1col": (reg1, reg1 * 1.01, reg1 + 0.5, "regression"),
        "ids": (ids, cand_ids, ids, "classification"),
        "words": (words, words[::-1].copy(), words, "classification"),
    }


@pytest.mark.parametrize("cuts", CUTS)
@pytest.mark.parametrize("name", sorted(_outputs()))
def test_merged_metrics_equal_whole(name: str, cuts: list[int]) -> None:
    g, c, labels, task = _outputs()[name]
    _same(_agreement(g, c, task, cuts), agreement_metrics(g, c, task, 0.5))
    _same(_task(c, labels, task, cuts), task_metrics(c, labels, task, 0.5))


def test_merged_agreement_identical_and_constant_outputs() -> None:
    g = np.ones((40, 1), np.float32)
    for c in (g.copy(), g * 2, np.zeros_like(g)):
        _same(_agreement(g, c, "regression", [13]), agreement_metrics(g, c, "regression"))


def test_merged_task_error_is_the_in_process_error() -> None:
    out = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    labels = np.arange(20) % 4  # class 3 on a 3-column output
    with pytest.raises(InputsError) as whole:
        task_metrics(out, labels, "classification")
    with pytest.raises(InputsError) as merged:
        _task(out, labels, "classification", [5])
    assert str(merged.value) == str(whole.value)
