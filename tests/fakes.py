"""A numpy-only Model: orchestration (record, compare) tested in milliseconds, no TensorFlow.

``FakeModel`` computes ``y = x @ weights + bias`` and ``score = y.sum(axis=1)``; ``noise``
adds fresh random noise to ``y`` on every call (a nondeterministic reference).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.models.base import Model, SignatureInfo, TensorSpec

WEIGHTS = np.array([[0.5, -1.0], [0.25, 2.0], [1.0, 0.0]], np.float32)


class FakeModel(Model):
    kind = "fake"

    def __init__(self, path: Path, *, bias: float = 0.0, noise: float = 0.0,
                 signatures: tuple[str, ...] = ("serving_default",)) -> None:
        super().__init__(path, load_seconds=0.0)
        self.bias = np.float32(bias)
        self.noise = noise
        self.calls = 0
        self._rng = np.random.default_rng(0)
        spec = SignatureInfo(
            "", inputs=(TensorSpec("x", "float32", (None, 3)),),
            outputs=(TensorSpec("y", "float32", (None, 2)), TensorSpec("score", "float32",
                                                                          (None,))))
        self._signatures = {name: SignatureInfo(name, spec.inputs, spec.outputs)
                            for name in signatures}

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        y = feeds["x"].astype(np.float32) @ WEIGHTS + self.bias
        if self.noise:
            y = y + self._rng.normal(0, self.noise, y.shape).astype(np.float32)
        return {"y": y, "score": y.sum(axis=1)}


def fake_model_dir(root: Path, name: str = "fake") -> Path:
    """A folder standing in for the model's files (record hashes them into model_digest)."""
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.npy").write_bytes(WEIGHTS.tobytes())
    return path


THREADS = {"intra_op_parallelism_threads": 1, "inter_op_parallelism_threads": 1}


def use_fake_models(monkeypatch: Any, make: Callable[[Path], Model]) -> None:
    """Have record and compare load ``make(path)`` wherever they would load a model, and skip
    pinning TensorFlow's thread pools (which imports TensorFlow): the orchestration runs on
    numpy alone."""
    import importlib

    # By module name: the package exposes functions called record and compare as well.
    record_mod = importlib.import_module("snapshot_tool.record")
    # The streaming compare (compare_stream) loads its models through compare's too.
    compare_mod = importlib.import_module("snapshot_tool.compare")

    def load(path: str | Path, tag: str = "serve") -> Model:
        return make(Path(path))

    for mod in (record_mod, compare_mod):
        monkeypatch.setattr(mod, "load_model", load)
        # A fake model's folder is no SavedModel: the path check before loading is the
        # loader's, which these fakes stand in for.
        monkeypatch.setattr(mod, "check_model_path", Path)
        monkeypatch.setattr(mod, "fix_threads", lambda: dict(THREADS))
