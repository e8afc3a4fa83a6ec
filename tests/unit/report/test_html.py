"""The HTML page renders every kind of output diff, metric and latency verdict without
error, escapes user data, and stays bounded in size (no browser here; see
tests/integration/test_html_report.py for that)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the HTML report needs the html extra (matplotlib)")

from snapshot_tool.api import ComparisonResult
from snapshot_tool.config import Config
from snapshot_tool.diff import compare_tensor, extra, missing
from snapshot_tool.latency.gate import LatencyCheck
from snapshot_tool.latency.stats import LatencyStats
from snapshot_tool.metrics.thresholds import MetricCheck
from snapshot_tool.report.html import comparison_page
from snapshot_tool.tolerance import resolve


def _diff(name: str, g: np.ndarray, c: np.ndarray, sig: str = "serving_default"):
    from snapshot_tool.dtypes import dtype_label

    return compare_tensor(name, g, c, resolve(name, dtype_label(g), Config()), sig,
                          summary=True)


def _stats(p50_ms: float) -> LatencyStats:
    ns = p50_ms * 1e6
    return LatencyStats(n=100, p50=ns, p90=ns * 1.2, p99=ns * 2, mean=ns * 1.1, std=ns / 10)


def _nan_stats() -> LatencyStats:
    nan = math.nan
    return LatencyStats(n=0, p50=nan, p90=nan, p99=nan, mean=nan, std=nan)


def test_every_kind_of_check_renders() -> None:
    rng = np.random.default_rng(0)
    big = rng.normal(size=(3000, 50)).astype(np.float32)
    outputs = (
        _diff("<logits>&", big, big + np.float32(1e-3)),  # a name that needs escaping
        _diff("labels", np.array([b"a", b"b"], dtype=object),
              np.array([b"a", b"<c>"], dtype=object)),
        _diff("mask", np.array([True, False]), np.array([False, False])),
        _diff("phase", np.array([1 + 1j, 2j]), np.array([1 + 1.5j, 2j])),
        _diff("all_nan", np.array([np.nan, np.nan]), np.array([1.0, np.nan])),
        _diff("ids", np.arange(6, dtype=np.int64), np.arange(6, dtype=np.int64)[::-1].copy()),
        _diff("shape", np.zeros((2, 3)), np.zeros((3, 2))),
        _diff("same", np.ones(4), np.ones(4)),
        missing("gone", np.zeros(3), "serving_default"),
        extra("new", np.zeros(3), "embed"),
    )
    metrics = (
        MetricCheck("<logits>&", "accuracy", "task", 0.9, 0.8, -0.1, "higher", "drop <= 0.01",
                    False, "set max_drop = 0.1"),
        MetricCheck("<logits>&", "cosine_min", "agreement", None, 0.99, None, "higher", "",
                    True),
    )
    latency = (
        LatencyCheck(1, "side_by_side", "fail", _stats(1.0), _stats(1.5), 1.5, 1.4, 1.6,
                     0.001, 1.1, 30, note="slower", signature="serving_default"),
        LatencyCheck(16, "stored", "advisory", _nan_stats(), _stats(2.0), math.nan,
                     math.nan, math.nan, math.nan, 1.25, 0, signature="embed"),
    )
    result = ComparisonResult(golden="g<1>.h5", model="cand&<x>", signatures=(
        "embed", "serving_default"), outputs=outputs, metrics=metrics, latency=latency,
        latency_mode="side_by_side", warnings=("<b>careful</b>",), obtained="g<1>.obtained.h5")
    page = comparison_page(result, obtained=result.obtained)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # User data is escaped everywhere it appears.
    assert "<logits>" not in page and "&lt;logits&gt;&amp;" in page
    assert "<b>careful</b>" not in page and "cand&<x>" not in page
    # The failing outputs come first, each numeric one with its two plots.
    assert page.index('id="verdict"') < page.index("<svg")
    for name in ("&lt;logits&gt;&amp;", "phase", "all_nan", "ids"):
        assert f'aria-label="error histogram {name}"' in page
    assert 'aria-label="latency batch 1"' in page and 'aria-label="latency batch 16"' in page
    assert page.index("mask") < page.index('id="output-7"')  # "same" passed: it comes last
    # Bounded: 150k elements, still a small page (the summary, not the tensor, is drawn).
    assert len(page) < 2_000_000
    # The ids of different plots do not collide in one document.
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_passing_result_has_a_pass_banner_and_no_next_steps() -> None:
    g = np.linspace(0, 1, 10)
    result = ComparisonResult(golden="g.h5", model="m", signatures=("serving_default",),
                              outputs=(_diff("y", g, g.copy()),))
    page = comparison_page(result)
    assert 'class="verdict v-pass"' in page and "If the change is intended" not in page


def test_latency_distributions_drawn_from_kept_samples() -> None:
    from snapshot_tool.latency.stats import SAMPLES_KEPT, kept_samples, summarize

    rng = np.random.default_rng(1)
    base = rng.lognormal(np.log(2e6), 0.3, 50_000)
    cand = rng.lognormal(np.log(3e6), 0.3, 500)
    kept = kept_samples(base)
    # Bounded, sorted order statistics that keep both ends of the distribution.
    assert len(kept) == SAMPLES_KEPT and list(kept) == sorted(kept)
    assert kept[0] == round(base.min()) and kept[-1] == round(base.max())
    assert len(kept_samples(cand)) == cand.size
    check = LatencyCheck(8, "stored", "fail", summarize(base), summarize(cand), 1.5, 1.45, 1.55,
                         1e-9, 1.25, 500, baseline_samples_ns=kept,
                         candidate_samples_ns=kept_samples(cand))
    g = np.ones(3)
    result = ComparisonResult(golden="g.h5", model="m", signatures=("serving_default",),
                              outputs=(_diff("y", g, g.copy()),), latency=(check,),
                              latency_mode="stored")
    page = comparison_page(result)
    section = page[page.index('aria-label="latency batch 8"'):]
    section = section[:section.index("</figure>")]
    # Two violins (one per side) besides the percentile bars.
    assert section.count("PolyCollection") >= 2


def test_empty_and_unchanged_exact_outputs_render_without_warnings() -> None:
    # A signature output such as tf.zeros([batch, 0]) (an empty detection list) has nothing
    # to plot; an unchanged int output under an exact tolerance draws nothing with a label.
    # Neither may make matplotlib warn on stderr about an empty legend.
    import warnings

    empty = np.zeros((16, 0), np.float32)
    ids = np.arange(16, dtype=np.int32)
    result = ComparisonResult(golden="g.h5", model="m", signatures=("serving_default",),
                              outputs=(_diff("boxes", empty, empty), _diff("ids", ids, ids)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Not a DeprecationWarning from matplotlib's own dependencies (matplotlib 3.8 calls
        # pyparsing 3.3's deprecated parseString): Python hides those from users.
        warnings.simplefilter("ignore", DeprecationWarning)
        page = comparison_page(result)
    assert "boxes" in page and "no elements to plot" in page
    assert "error histogram ids" in page
