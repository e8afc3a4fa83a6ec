"""record's streamed outputs are joined exactly as run_signature joins them in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from snapshot_tool.errors import SignatureError
from snapshot_tool.golden.io import _decode as decode
from snapshot_tool.models.base import combine
from snapshot_tool.record import _Appends, _OutputSink


@pytest.fixture(params=[False, True], ids=["inline", "writer-thread"])
def appends(request: pytest.FixtureRequest) -> Iterator[_Appends]:
    """Appends run at once, or on the writer thread record uses (the same golden)."""
    queue = _Appends(threaded=request.param, depth=2)
    yield queue
    queue.close()


def _sink_vs_combine(tmp_path: Path, parts: list[np.ndarray], rows: list[int],
                     appends: _Appends) -> None:
    want, batched = combine("out", parts, rows)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        sink = _OutputSink(f, "out", sum(rows), keep=True, appends=appends)
        for p, r in zip(parts, rows, strict=True):
            sink.add(p, r)
        rec = sink.finish({"batched": sink.batched})
        got = decode(f["out"], f["out"][()])
        assert sink.batched == batched
        assert rec.shape == want.shape and got.shape == want.shape
        assert np.array_equal(got, want)
        assert np.array_equal(sink.whole(), want)


def test_batched_output_is_appended(tmp_path: Path, appends: _Appends) -> None:
    rows = [16, 16, 5]
    _sink_vs_combine(tmp_path, [np.full((r, 3), i, np.float32) for i, r in enumerate(rows)],
                     rows, appends)


def test_a_fixed_shape_output_turns_into_a_stack_when_a_short_batch_shows_it(
        tmp_path: Path, appends: _Appends) -> None:
    # (16, 2) every batch: it looked batched until the last, short batch.
    rows = [16, 16, 4]
    _sink_vs_combine(tmp_path, [np.full((16, 2), i, np.float32) for i in range(3)], rows,
                     appends)


def test_one_value_per_batch_is_stacked(tmp_path: Path, appends: _Appends) -> None:
    rows = [8, 8, 3]
    _sink_vs_combine(tmp_path, [np.float32(i) * np.ones(()) for i in range(3)], rows,
                     appends)


def test_an_append_that_fails_on_the_writer_thread_is_raised_in_the_caller() -> None:
    def append(block: np.ndarray) -> None:
        if block[0] == 3:
            raise OSError("disk full")

    queue = _Appends(depth=2)
    try:
        with pytest.raises(OSError, match="disk full"):
            for i in range(8):
                queue.submit(append, np.array([i]))
            queue.drain()
    finally:
        queue.close()


def test_tiny_appends_are_handed_over_by_count_too() -> None:
    # Empty blocks carry no bytes but each entry costs memory: they must still go to the
    # writer in bounded bundles (and their errors surface), not pile up until drain.
    seen: list[int] = []
    queue = _Appends(depth=1, bundle_bytes=4096)
    try:
        for i in range(64):
            queue.submit(lambda block, i=i: seen.append(i), np.empty((0, 3)))
        assert len(queue._bundle) < 64  # handed over along the way
        queue.drain()
        assert seen == list(range(64))  # in order, each once
    finally:
        queue.close()


def test_a_changing_per_sample_shape_is_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "s.h5", "w") as f:
        sink = _OutputSink(f, "out", 32, keep=False)
        sink.add(np.zeros((16, 3), np.float32), 16)
        with pytest.raises(SignatureError, match="per-sample shape"):
            sink.add(np.zeros((16, 4), np.float32), 16)
