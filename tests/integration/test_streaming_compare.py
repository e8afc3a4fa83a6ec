"""compare streams a golden block by block; its verdict is the in-memory one, field by field."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from snapshot_tool import api
from snapshot_tool.compare import CompareOptions, _compare_whole
from snapshot_tool.compare_stream import compare_streaming
from snapshot_tool.errors import GoldenError


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        # Means and metric averages are sums in another order: equal to rounding.
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return bool(a == b)


def _both(model: Path, golden: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    import snapshot_tool.compare_stream as cs

    # Blocks of two batches, so several blocks (and chunk-straddling reads) are exercised.
    monkeypatch.setattr(cs, "row_block", lambda tensors, batch: 2 * batch)
    options = CompareOptions(latency=False, error_summaries=False)
    streamed = compare_streaming(model, golden, options, lambda *a: None)
    whole = _compare_whole(model, golden, options, lambda *a: None)
    return streamed, whole


def _assert_equal(streamed: Any, whole: Any) -> None:
    assert streamed.passed == whole.passed
    assert len(streamed.outputs) == len(whole.outputs)
    for s, w in zip(streamed.outputs, whole.outputs, strict=True):
        for f in dataclasses.fields(s):
            if f.name == "summary":
                continue  # the HTML error summary: the whole path here is asked for none
            assert _same(getattr(s, f.name), getattr(w, f.name)), (s.name, f.name)
    assert [(m.output, m.name, m.passed) for m in streamed.metrics] == \
        [(m.output, m.name, m.passed) for m in whole.metrics]
    for s, w in zip(streamed.metrics, whole.metrics, strict=True):
        assert _same(s.candidate, w.candidate), (s.output, s.name)


def test_streamed_verdict_equals_in_memory_on_a_failing_candidate(
        dense_model: Path, dense_changed: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    golden = tmp_path / "g.h5"
    api.record(dense_model, golden, num_samples=200, batch_size=16, latency=False)
    streamed, whole = _both(dense_changed, golden, monkeypatch)
    assert not streamed.passed
    _assert_equal(streamed, whole)


def test_streamed_verdict_equals_in_memory_with_labels(
        dense_model: Path, dense_changed: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, features=rng.standard_normal((150, 4)).astype(np.float32),
             labels=rng.integers(0, 3, 150))
    golden = tmp_path / "g.h5"
    api.record(dense_model, golden, inputs=data, labels=f"{data}:labels", batch_size=8,
               latency=False)
    for model in (dense_model, dense_changed):
        streamed, whole = _both(model, golden, monkeypatch)
        _assert_equal(streamed, whole)
        assert any(m.kind == "task" for m in streamed.metrics)


def test_a_damaged_tensor_is_refused_after_the_streamed_pass(
        dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    api.record(dense_model, golden, num_samples=64, batch_size=16, latency=False)
    with h5py.File(golden, "r+") as f:
        f["inputs/features"][5, 0] += 1.0  # data changed, checksum kept
    with pytest.raises(GoldenError, match="sha256"):
        api.compare(dense_model, golden, latency=False)
