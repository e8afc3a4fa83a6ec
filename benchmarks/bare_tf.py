"""The bare-TensorFlow baseline: the script a user would write instead of snapshot-tool.

    python benchmarks/bare_tf.py record  MODEL INPUTS.npz OUT.npz      [--batch B]
    python benchmarks/bare_tf.py compare MODEL INPUTS.npz EXPECTED.npz [--batch B]

``record`` loads a SavedModel, runs ``serving_default`` batch by batch over the arrays of
INPUTS.npz (matched to the signature's inputs by name, or the only array for a one-input
model), and saves inputs and outputs with ``np.savez`` (uncompressed: the "raw .npz" a
golden's size is measured against). ``compare`` loads the inputs and the expected outputs
with ``np.load``, runs the model the same way and ``np.allclose``-es every output batch by
batch; exit 1 on a mismatch.

It deliberately imports nothing from snapshot_tool: it is the yardstick, so it must cost
what the hand-written script costs, no more and no less. benchmarks/large_goldens.py runs
it as a whole process beside the tool's CLI.

Like the tool's CLI, it calls ``gc.freeze()`` once its work is done, so neither side pays
the interpreter's exit-time collections over the objects TensorFlow's import created
(1-4 s on a busy machine, the same for both and unrelated to the work compared). Without
it the ratios would credit the tool with a saving any script gets from one line.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any

import numpy as np


def _load(model: str) -> tuple[Any, Any, list[str]]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    loaded = tf.saved_model.load(model)
    fn = loaded.signatures["serving_default"]
    names = sorted(fn.structured_input_signature[1])
    # `loaded` owns the variables; it is returned so it outlives the calls.
    return loaded, fn, names


def _feeds(names: list[str], arrays: Any) -> dict[str, np.ndarray]:
    keys = [k for k in arrays.files if not k.startswith("out__")]
    if len(names) == 1 and names[0] not in keys:
        return {names[0]: arrays[keys[0]]}
    return {n: arrays[n] for n in names}


def _batches(feeds: dict[str, np.ndarray], batch: int) -> Any:
    n = next(iter(feeds.values())).shape[0]
    for start in range(0, n, batch):
        yield start, {k: v[start:start + batch] for k, v in feeds.items()}


def record(model: str, inputs: str, out: str, batch: int) -> int:
    import tensorflow as tf

    _loaded, fn, names = _load(model)
    feeds = _feeds(names, np.load(inputs))
    parts: dict[str, list[np.ndarray]] = {}
    for _, b in _batches(feeds, batch):
        for k, v in fn(**{n: tf.constant(a) for n, a in b.items()}).items():
            parts.setdefault(k, []).append(v.numpy())
    outputs = {f"out__{k}": np.concatenate(v) for k, v in parts.items()}
    np.savez(out, **feeds, **outputs)
    return 0


def compare(model: str, inputs: str, expected: str, batch: int) -> int:
    import tensorflow as tf

    _loaded, fn, names = _load(model)
    feeds = _feeds(names, np.load(inputs))
    with np.load(expected) as data:
        want = {k.removeprefix("out__"): data[k] for k in data.files if k.startswith("out__")}
    ok = True
    for start, b in _batches(feeds, batch):
        for k, v in fn(**{n: tf.constant(a) for n, a in b.items()}).items():
            got = v.numpy()
            ok &= bool(np.allclose(got, want[k][start:start + got.shape[0]], rtol=1.3e-6,
                                   atol=1e-5, equal_nan=True))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("mode", choices=("record", "compare"))
    p.add_argument("model")
    p.add_argument("inputs")
    p.add_argument("npz")
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args(argv)
    try:
        if a.mode == "record":
            return record(a.model, a.inputs, a.npz, a.batch)
        return compare(a.model, a.inputs, a.npz, a.batch)
    finally:
        # Like for like with snapshot-tool's CLI (cli.main): skip the exit-time GC walk.
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
