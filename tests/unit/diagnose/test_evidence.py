"""Calibration evidence, limits and the proposed snapshot.toml (numpy only)."""

from __future__ import annotations

import tomllib

import numpy as np

from snapshot_tool.config import parse_config
from snapshot_tool.diagnose.evidence import (
    cost_table,
    error_stats,
    format_cost,
    propose_metric,
    propose_tolerance,
    render_toml,
)
from snapshot_tool.metrics.thresholds import MetricCheck

RNG = np.random.default_rng(0)
G = RNG.normal(size=(200, 5)).astype(np.float32)


def _accepts(g: np.ndarray, c: np.ndarray, atol: float, rtol: float) -> bool:
    return bool(np.all(np.abs(c.astype(np.float64) - g) <= atol + rtol * np.abs(g)))


def test_proposal_accepts_every_candidate_with_margin_and_rejects_more() -> None:
    near = G * np.float32(1 + 3e-4)
    shifted = G + np.float32(2e-3)
    prop = propose_tolerance("y", G, [("[1] near", near), ("[2] shifted", shifted)], 2.0)
    assert prop is not None
    assert _accepts(G, near, prop.atol, prop.rtol) and _accepts(G, shifted, prop.atol, prop.rtol)
    # The margin leaves room for twice the worst error, not for a real change.
    assert _accepts(G, G + np.float32(3.9e-3), prop.atol, prop.rtol)
    assert not _accepts(G, G + np.float32(0.05), prop.atol, prop.rtol)
    assert "[2] shifted" in prop.comments["atol"] and "x2" in prop.comments["rtol"]


def test_identical_candidates_need_nothing_and_limits_never_go_below_defaults() -> None:
    assert propose_tolerance("y", G, [("[1]", G.copy())], 2.0) is None
    tiny = G.copy()
    tiny[0, 0] = np.nextafter(tiny[0, 0], np.float32(np.inf))
    prop = propose_tolerance("y", G, [("[1]", tiny)], 2.0)
    assert prop is not None and (prop.atol, prop.rtol) == (1e-5, 1.3e-6)
    assert "kept at the float32 default" in prop.comments["atol"]


def test_kind_change_is_reported_precision_change_is_measured() -> None:
    s = error_stats("[1]", "y", G, G.astype(np.int32))
    assert not s.comparable and "dtype" in s.note
    half = G.astype(np.float16)
    s = error_stats("[1]", "y", G, half)
    assert s.comparable and s.precision_change == "float32 -> float16"
    assert 0 < s.max_abs < 1e-2
    prop = propose_tolerance("y", G, [("[1] half", half)], 2.0)
    assert prop is not None and prop.allow_dtype_change
    assert prop.rtol >= 1e-3  # float16's default, the coarser side's
    text = render_toml([], [prop], [])
    assert "allow_dtype_change = true  # [1] half returns float16" in text
    oc = parse_config(tomllib.loads(text)).output("y")
    assert oc is not None and oc.allow_dtype_change


def test_exact_kinds_get_steps_or_shares() -> None:
    ints = np.arange(10, dtype=np.int32)
    bumped = ints.copy()
    bumped[3] += 2
    prop = propose_tolerance("ids", ints, [("[1]", bumped)], 2.0)
    assert prop is not None and prop.atol == 2.0
    words = np.array([b"a"] * 10, dtype=object)
    other = words.copy()
    other[0] = b"b"
    prop = propose_tolerance("label", words, [("[1]", other)], 2.0)
    assert prop is not None and prop.max_mismatch_fraction == 0.2


def _check(name: str, kind: str, golden: float | None, cand: float) -> MetricCheck:
    return MetricCheck("y", name, kind, golden, cand, None if golden is None else cand - golden,
                       "higher", "", True)  # type: ignore[arg-type]


def test_metric_limits_from_worst_values() -> None:
    agree = propose_metric("y", "top1_agreement", [("[1]", _check("top1_agreement", "agreement",
                                                                  None, 0.98))], 2.0, 100)
    assert agree is not None and agree.key == "min" and abs(agree.limit - 0.96) < 1e-12
    acc = propose_metric("y", "accuracy", [("[1]", _check("accuracy", "task", 0.9, 0.89)),
                                           ("[2]", _check("accuracy", "task", 0.9, 0.9))],
                         2.0, 100)
    assert acc is not None and acc.key == "max_drop" and abs(acc.limit - 0.02) < 1e-12
    none = propose_metric("y", "accuracy", [("[1]", _check("accuracy", "task", 0.9, 0.9))],
                          2.0, 100)
    assert none is not None and none.limit == 0.0 and "0.01" in none.comment


def test_agreement_limits_never_exceed_the_worst_value_seen() -> None:
    # Cosines and correlations reach -1 (a sign flip): the limit may go below 0, or the
    # candidate the proposal was built from would fail it.
    for metric in ("cosine_min", "cosine_mean", "correlation"):
        p = propose_metric("y", metric, [("[1]", _check(metric, "agreement", None, -1.0))],
                           2.0, 16)
        assert p is not None and p.limit == -1.0, (metric, p)
    share = propose_metric("y", "top1_agreement",
                           [("[1]", _check("top1_agreement", "agreement", None, 0.25))], 2.0, 16)
    assert share is not None and share.limit == 0.0


def test_rendered_toml_is_a_valid_config() -> None:
    prop = propose_tolerance("sig/logits", G, [("[1]", G + np.float32(1e-3))], 2.0)
    assert prop is not None
    metric = propose_metric("sig/logits", "top1_agreement",
                            [("[1]", _check("top1_agreement", "agreement", None, 1.0))], 2.0, 10)
    assert metric is not None
    text = render_toml(["header"], [prop], [metric])
    cfg = parse_config(tomllib.loads(text), "proposal")
    oc = cfg.output("sig/logits")
    assert oc is not None and oc.tolerance.atol == prop.atol
    assert oc.metrics["top1_agreement"].min == 1.0


def test_cost_table_pools_rows_by_error_decade() -> None:
    g = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    c = g.copy()
    c[0] += np.float32(1e-6)  # tiny error, same decision
    c[1] = np.eye(4, dtype=np.float32)[3]  # flipped decision, error 1
    labels = np.array([0, 1, 2, 3, 0, 1])
    rows = cost_table("y", g, [c], labels)
    by_level = {r.level: r for r in rows}
    assert by_level[0.0].rows == 4 and by_level[0.0].flips == 0
    assert by_level[1.0].flips == 1 and by_level[1.0].accuracy_delta == -1.0
    assert rows[-1].cumulative_agreement == 5 / 6
    assert "top-1 flips" in format_cost(rows)[1]


def test_unchanged_metric_note_fits_its_direction_and_kind() -> None:
    # log_loss is lower-is-better and no share of rows: "lowered it" would read as an
    # improvement, and "one of 100 rows is 0.01" is no step of it.
    check = MetricCheck("y", "log_loss", "task", 0.3, 0.3, 0.0, "lower", "",
                        True)  # type: ignore[arg-type]
    loss = propose_metric("y", "log_loss", [("[1]", check)], 2.0, 100)
    assert loss is not None and loss.limit == 0.0
    assert "worsened" in loss.comment and "lowered" not in loss.comment
    assert "rows is" not in loss.comment
    acc = propose_metric("y", "accuracy", [("[1]", _check("accuracy", "task", 0.9, 0.9))],
                         2.0, 100)
    assert acc is not None and "worsened" in acc.comment
    assert "one of 100 rows is 0.01" in acc.comment
