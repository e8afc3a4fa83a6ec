from __future__ import annotations

import math

import numpy as np
import pytest

from snapshot_tool.config import Config, parse_config
from snapshot_tool.diff import compare_tensor
from snapshot_tool.tolerance import resolve


def tol(dtype: str = "float32", **cfg: object):
    return resolve("out", dtype, parse_config({"defaults": cfg}) if cfg else Config())


def test_identical_passes_with_zero_errors() -> None:
    g = np.linspace(-3, 3, 50, dtype=np.float32).reshape(5, 10)
    d = compare_tensor("out", g, g.copy(), tol())
    assert d.passed and d.status == "ok"
    assert d.max_abs_diff == 0 and d.mismatch_count == 0 and d.required_atol == 0


def test_element_rule_is_atol_plus_rtol_times_golden() -> None:
    g = np.array([100.0, 1.0], dtype=np.float64)
    t = tol("float64", atol=0.1, rtol=0.01)  # allowed: 1.1 and 0.11
    assert compare_tensor("o", g, g + np.array([1.09, 0.0]), t).passed
    d = compare_tensor("o", g, g + np.array([0.0, 0.12]), t)
    assert not d.passed and d.mismatch_count == 1 and d.worst_index == (1,)
    assert d.worst_golden == 1.0 and d.worst_candidate == pytest.approx(1.12)
    assert d.max_rel_diff == pytest.approx(0.12)
    # the suggested atol accepts exactly this change
    assert d.required_atol == pytest.approx(0.12 - 0.01 * 1.0)
    t2 = tol("float64", atol=d.required_atol + 1e-12, rtol=0.01)
    assert compare_tensor("o", g, g + np.array([0.0, 0.12]), t2).passed


def test_max_mismatch_fraction_and_required_atol_use_the_allowance() -> None:
    g = np.zeros(10)
    c = g.copy()
    c[:2] = [5.0, 1.0]
    t = tol("float64", atol=0.0, rtol=0.0, max_mismatch_fraction=0.1)  # one may differ
    d = compare_tensor("o", g, c, t)
    assert not d.passed and d.mismatch_count == 2
    assert d.required_atol == pytest.approx(1.0)  # the second-worst must pass
    t2 = tol("float64", atol=0.0, rtol=0.0, max_mismatch_fraction=0.2)
    assert compare_tensor("o", g, c, t2).passed


def test_nan_and_inf_handling() -> None:
    g = np.array([np.nan, np.inf, -np.inf, 1.0])
    assert compare_tensor("o", g, g.copy(), tol("float64")).passed
    d = compare_tensor("o", g, g.copy(), tol("float64", nan_equal=False))
    assert not d.passed and d.mismatch_count == 1
    c = np.array([np.nan, -np.inf, -np.inf, np.nan])
    d = compare_tensor("o", g, c, tol("float64"))
    assert d.mismatch_count == 2 and math.isinf(d.max_abs_diff or 0)


def test_structural_changes_reported_before_numbers() -> None:
    g = np.zeros((4, 3), np.float32)
    assert compare_tensor("o", g, np.zeros((4, 3), np.float16), tol()).status == "dtype_changed"
    assert compare_tensor("o", g, np.zeros((3, 4), np.float32), tol()).status == "shape_changed"


def test_ints_bools_strings_exact_unless_int_atol_configured() -> None:
    g = np.array([1, 2, 3], np.int32)
    d = compare_tensor("o", g, np.array([1, 2, 4], np.int32), tol("int32"))
    assert not d.passed and d.exact and d.required_atol == 1
    cfg = parse_config({"outputs": {"o": {"atol": 1}}})
    assert compare_tensor("o", g, np.array([1, 2, 4], np.int32), resolve("o", "int32", cfg)).passed
    # a global [defaults] atol is for floats; it must not loosen integer outputs
    assert not compare_tensor("o", g, np.array([1, 2, 4], np.int32),
                              tol("int32", atol=5)).passed
    b = np.array([True, False])
    assert not compare_tensor("o", b, ~b, tol("bool", atol=1.0)).passed
    s = np.array([b"a", b"b"], dtype=object)
    d = compare_tensor("o", s, np.array([b"a", b"c"], dtype=object), tol("string"))
    assert d.mismatch_count == 1 and d.worst_golden == "b" and d.worst_candidate == "c"


def test_rank0_and_empty() -> None:
    g = np.float32(2.0).reshape(())
    d = compare_tensor("o", g, np.float32(2.5).reshape(()), tol())
    assert not d.passed and d.worst_index == ()
    e = np.zeros((0, 3), np.float32)
    assert compare_tensor("o", e, e.copy(), tol()).passed


def test_dtype_defaults() -> None:
    assert tol("float16").rtol == 1e-3
    assert tol("bfloat16").rtol == 1.6e-2
    assert (tol("float32").rtol, tol("float32").atol) == (1.3e-6, 1e-5)
    assert tol("float64").rtol == 1e-7
    assert tol("int64").exact and tol("string").exact


def test_output_globs_and_precedence() -> None:
    cfg = parse_config({"defaults": {"atol": 1e-3},
                        "outputs": {"logits*": {"rtol": 0.5}, "logits_main": {"atol": 2.0}}})
    main = resolve("logits_main", "float32", cfg)
    assert (main.atol, main.rtol) == (2.0, 1.3e-6)  # exact name beats the glob
    aux = resolve("logits_aux", "float32", cfg)
    assert (aux.atol, aux.rtol) == (1e-3, 0.5)
    other = resolve("probs", "float32", cfg)
    assert (other.atol, other.rtol) == (1e-3, 1.3e-6)


def test_int64_beyond_float_precision_and_unsigned_wraparound() -> None:
    g = np.array([2**53, 5], np.int64)
    d = compare_tensor("o", g, np.array([2**53 + 1, 5], np.int64), tol("int64"))
    assert not d.passed and d.mismatch_count == 1 and d.max_abs_diff == 1.0
    assert d.required_atol == 1
    u = np.array([0, 7], np.uint8)
    d = compare_tensor("o", u, np.array([255, 7], np.uint8), tol("uint8"))
    assert not d.passed and d.max_abs_diff == 255.0
    big = np.array([np.iinfo(np.uint64).max], np.uint64)
    d = compare_tensor("o", big, np.array([0], np.uint64), tol("uint64"))
    assert not d.passed and d.max_abs_diff == float(np.iinfo(np.uint64).max)


def test_chunked_diff_matches_whole_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    import snapshot_tool.diff as diff_mod

    rng = np.random.default_rng(3)
    g = rng.normal(size=(50, 37))
    c = g + rng.normal(scale=1e-3, size=g.shape)
    c[7, 3] = np.nan
    c[40, 0] += 5.0
    t = tol("float64", atol=1e-3, rtol=1e-3, max_mismatch_fraction=0.05)
    whole = compare_tensor("o", g, c, t)
    monkeypatch.setattr(diff_mod, "CHUNK", 64)  # 29 chunks, some with no mismatches
    chunked = compare_tensor("o", g, c, t)
    assert repr(chunked) == repr(whole)  # repr: the worst candidate value is NaN
    assert whole.worst_index in ((7, 3), (40, 0)) and whole.mismatch_count > 1


# --- error summary (the HTML report's data) ---------------------------------------------------


def test_summary_accounts_for_every_element_and_flags_the_bad_ones() -> None:
    from snapshot_tool.diff import SAMPLE_PAIRS, WORST_ROWS, hist_edges

    rng = np.random.default_rng(3)
    g = rng.normal(size=(500, 40)).astype(np.float32)
    c = g + rng.normal(scale=1e-6, size=g.shape).astype(np.float32)
    c[7, 3] += 0.5
    c[11, :5] = g[11, :5] + 2e-3
    c[0, 0] = g[0, 0]  # exactly equal
    c[1, 1] = np.nan
    d = compare_tensor("o", g, c, tol(), summary=True)
    s = d.summary
    assert s is not None and len(s.counts) + 1 == hist_edges().size
    total = sum(s.counts) + s.zero + s.underflow + s.overflow + s.nonfinite
    assert total == g.size
    assert sum(s.bad_counts) + s.bad_zero_or_underflow + s.nonfinite == d.mismatch_count
    assert s.nonfinite == 1 and s.zero >= 1
    # Bounded whatever the tensor's size.
    assert len(s.sample_index) == SAMPLE_PAIRS == len(s.sample_golden)
    assert len(s.worst_rows) == WORST_ROWS
    # Rows ranked by how far outside tolerance: the NaN row, then the +0.5, then the 2e-3 row.
    assert [r.row for r in s.worst_rows[:3]] == [1, 7, 11]
    assert s.worst_rows[1].worst_index == (7, 3) and s.worst_rows[2].mismatched == 5
    assert s.worst_rows[1].candidate == pytest.approx(float(c[7, 3]))
    # Same tensors, same picture: the sample is seeded. (Not `==` on the whole summary: the
    # NaN candidate of row 1 is not equal to itself.)
    again = compare_tensor("o", g, c, tol(), summary=True).summary
    assert again is not None and again.counts == s.counts
    assert again.sample_index == s.sample_index
    assert [r.row for r in again.worst_rows] == [r.row for r in s.worst_rows]


def test_summary_only_for_failures_by_default_and_chunking_does_not_change_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import snapshot_tool.diff as diff_module

    g = np.linspace(-1, 1, 3000).reshape(300, 10)
    assert compare_tensor("o", g, g.copy(), tol("float64")).summary is None
    c = g.copy()
    c[123, 4] += 1.0
    whole = compare_tensor("o", g, c, tol("float64")).summary
    assert whole is not None
    # Chunks that split rows must give the same rows and counts.
    monkeypatch.setattr(diff_module, "CHUNK", 7)
    chunked = compare_tensor("o", g, c, tol("float64")).summary
    assert chunked == whole
    assert whole.worst_rows[0].row == 123 and whole.worst_rows[0].worst_index == (123, 4)


def test_float_precision_change_is_compared_in_the_wider_dtype() -> None:
    import ml_dtypes

    g = np.linspace(-2, 2, 40, dtype=np.float32)
    half = g.astype(np.float16)  # what a mixed-precision candidate returns
    d = compare_tensor("out", g, half, tol("float16"))
    assert d.status == "dtype_changed" and not d.passed
    # The numbers are there: float16 rounding of these values, measured in float32.
    assert d.max_abs_diff == pytest.approx(float(np.max(np.abs(half.astype(np.float32) - g))))
    assert 0 < d.max_abs_diff < 2e-3 and "allow_dtype_change" in d.message
    allowed = compare_tensor("out", g, half, tol("float16"), allow_dtype_change=True)
    assert allowed.status == "ok" and "compared in float32" in allowed.message
    # Consent to the dtype is not consent to the values.
    moved = compare_tensor("out", g, (g + 0.5).astype(np.float16), tol("float16"),
                           allow_dtype_change=True)
    assert moved.status == "mismatch"
    # float16 and bfloat16 hold neither each other: both compared in float32.
    bf = compare_tensor("out", half, g.astype(ml_dtypes.bfloat16), tol("bfloat16"))
    assert bf.status == "dtype_changed" and "compared in float32" in bf.message


def test_dtype_change_across_kinds_stays_a_structural_failure() -> None:
    g = np.arange(6, dtype=np.float32)
    d = compare_tensor("out", g, g.astype(np.int32), tol(), allow_dtype_change=True)
    assert d.status == "dtype_changed" and d.max_abs_diff is None
    assert "float precisions only" in d.message


def test_accept_reports_the_change_compare_measures() -> None:
    """accept's "largest change" and compare's max |diff| are one rule (diff's
    absolute_differences): int64 values above 2**53 differ by their exact amount (their
    float64 images are equal), a one-sided NaN or infinity is an unbounded change, NaN on
    both sides none."""
    from snapshot_tool.accept import _max_abs

    big = np.array([2**53, 7], dtype=np.int64)
    moved = np.array([2**53 + 1, 7], dtype=np.int64)
    assert _max_abs(big, moved) == 1.0
    assert compare_tensor("y", big, moved, resolve("y", "int64", Config())).max_abs_diff == 1.0
    nan = np.array([np.nan, 1.0], dtype=np.float32)
    assert _max_abs(nan, nan.copy()) == 0.0
    assert _max_abs(nan, np.array([0.0, 1.0], dtype=np.float32)) == math.inf
    assert _max_abs(np.array([np.inf]), np.array([-np.inf])) == math.inf


