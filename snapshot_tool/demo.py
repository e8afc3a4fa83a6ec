"""Builds the demo models for ``make demo``: a small CNN trained on scikit-learn's bundled
8x8 digits (nothing is downloaded), plus two candidates to gate against its golden.

    python -m snapshot_tool.demo OUT_DIR

writes ``OUT_DIR/baseline`` (the known-good SavedModel), ``OUT_DIR/candidate_ok`` (the same
weights behind a rewritten serving wrapper: must pass), ``OUT_DIR/candidate_broken`` (one
conv filter damaged, as a bad merge or a broken conversion would: must fail),
``OUT_DIR/candidate_slow`` (same weights, extra work per call: for the latency gate) and
``OUT_DIR/digits.npz`` (held-out images under the input's name, labels under ``labels``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "image"
SEED = 1234


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/test split of the digits set, images scaled to [0, 1] as (N, 8, 8, 1)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=256, random_state=SEED, stratify=y)
    return x_train, x_test, y_train, y_test


def build_cnn(seed: int = SEED) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(8, 8, 1), name=INPUT_NAME)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax", name="probs")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_cnn(epochs: int = 12, seed: int = SEED) -> tuple[Any, float]:
    x_train, x_test, y_train, y_test = digits_split()
    model = build_cnn(seed)
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))
    return model, acc


def _zero(tf: Any, s: Any) -> Any:
    """0.0 computed from ``s`` (finite), which graph optimization cannot prove is zero."""
    return tf.minimum(tf.abs(s), 0.0)


def export_wrapped(model: Any, path: Path, extra_work: int = 0) -> None:
    """Export ``model`` through a hand-written tf.Module instead of Keras' exporter.

    ``extra_work`` repeats a throw-away matmul chain inside the signature, so a candidate
    with identical outputs runs measurably slower (for the latency gate).
    """
    import tensorflow as tf

    class Serving(tf.Module):
        def __init__(self, keras_model: Any) -> None:
            super().__init__()
            self.model = keras_model

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32,
                                                    name=INPUT_NAME)])
        def serve(self, image: Any) -> dict[str, Any]:
            probs = self.model(image, training=False)
            if extra_work:
                # The matrix depends on the input, so graph optimization cannot fold the
                # chain into a constant; adding min(|s|, 0), exactly 0 for a finite s, keeps
                # the outputs identical while the work stays in the graph. Not `0.0 * s`:
                # TensorFlow 2.16's optimizer folds a product with zero and drops the chain.
                m = tf.fill([128, 128], 1.0 / 128.0) + _zero(tf, tf.reduce_mean(image))
                acc = m
                for _ in range(extra_work):
                    acc = tf.matmul(acc, m)
                probs = probs + _zero(tf, tf.reduce_sum(acc))
            return {"output_0": probs}

    wrapper = Serving(model)
    tf.saved_model.save(wrapper, str(path), signatures={"serving_default": wrapper.serve})


def build(out_dir: Path) -> dict[str, float]:
    import keras

    from snapshot_tool.models.keras import export_saved_model

    out_dir.mkdir(parents=True, exist_ok=True)
    model, acc = train_cnn()
    _, x_test, _, y_test = digits_split()
    export_saved_model(model, out_dir / "baseline")
    export_wrapped(model, out_dir / "candidate_ok")
    export_wrapped(model, out_dir / "candidate_slow", extra_work=12)

    broken = keras.models.clone_model(model)
    broken.set_weights(model.get_weights())
    kernel = broken.get_layer("conv1").kernel
    damaged = np.array(kernel.numpy())
    damaged[..., 0] *= -3.0  # one of 16 first-layer filters inverted and amplified
    kernel.assign(damaged)
    broken_acc = float(np.mean(np.argmax(broken.predict(x_test, verbose=0), axis=1) == y_test))
    export_saved_model(broken, out_dir / "candidate_broken")

    arrays: dict[str, Any] = {INPUT_NAME: x_test, "labels": y_test}
    np.savez(out_dir / "digits.npz", **arrays)
    return {"baseline_accuracy": acc, "broken_accuracy": broken_acc}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "build/demo")
    from snapshot_tool.models.base import import_tf

    import_tf()  # quiet TensorFlow's start-up before Keras pulls it in
    stats = build(out)
    print(f"demo models written to {out}: baseline test accuracy "
          f"{stats['baseline_accuracy']:.3f}, damaged candidate {stats['broken_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
