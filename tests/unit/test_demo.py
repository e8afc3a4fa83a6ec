"""The demo's candidates: what `make demo` promises of each."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.demo import INPUT_NAME, export_wrapped
from snapshot_tool.models.base import import_tf


def _cpu_ms_per_call(fn: Any, x: Any, calls: int = 30) -> float:
    for _ in range(10):
        fn(**{INPUT_NAME: x})
    start = time.process_time()
    for _ in range(calls):
        fn(**{INPUT_NAME: x})
    return (time.process_time() - start) / calls * 1e3


def test_slow_candidate_keeps_its_outputs_and_its_extra_work(tmp_path: Path) -> None:
    # TensorFlow 2.16's graph optimizer folded the old `0.0 * work` to zeros and dropped the
    # work, so the demo's slow candidate was not slow and `make demo` failed there.
    tf = import_tf()
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    export_wrapped(model, tmp_path / "fast")
    export_wrapped(model, tmp_path / "slow", extra_work=100)
    fast = tf.saved_model.load(str(tmp_path / "fast")).signatures["serving_default"]
    slow = tf.saved_model.load(str(tmp_path / "slow")).signatures["serving_default"]
    x = tf.constant(np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32))
    # The same graph plus an exact 0.0: equal values, not merely close.
    np.testing.assert_array_equal(fast(**{INPUT_NAME: x})["output_0"].numpy(),
                                  slow(**{INPUT_NAME: x})["output_0"].numpy())
    # 100 chained 128x128 matmuls against a 64x10 dense layer: ~10x the CPU time when the
    # work is kept, ~1x when it is folded away (CPU time, which other processes' load does
    # not inflate).
    assert _cpu_ms_per_call(slow, x) > 3 * _cpu_ms_per_call(fast, x)
