"""Loading a MODEL path and running one of its signatures over numpy batches.

Every kind of model is wrapped in a :class:`Model` with the same three things: its path, its
signatures (names, input and output specs), and ``run(signature, feeds) -> dict[name, ndarray]``.
Outputs are always materialized as numpy arrays, so lazy execution is finished by the time
``run`` returns (that matters for latency measurement too).

TensorFlow is imported here, lazily, and only when a model is actually loaded.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import ModelError, SignatureError

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_TAG = "serve"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature. ``dtype`` is TensorFlow's name ("float32",
    "string", "bfloat16", ...); ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name}: {self.dtype}[unknown rank]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class SignatureInfo:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    method_name: str | None = None

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


def import_tf() -> Any:
    """Import TensorFlow once, quietly, with a clear error if it is not installed.

    TensorFlow's native start-up chatter (oneDNN notices, CUDA stubs, absl's pre-init
    warning) is written straight to file descriptor 2 before any Python logging setting can
    apply, and it buries our one-line errors and reports. So the import runs with fd 2
    pointed at a temp file, which is replayed only if the import fails. Users who want the
    logs can set TF_CPP_MIN_LOG_LEVEL themselves; we only set a default.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        except ImportError as exc:
            os.dup2(saved, 2)
            raise ModelError(f"TensorFlow is not importable ({exc}); install it with "
                             "`pip install tensorflow`") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tf


def numpy_dtype(tf_dtype_name: str) -> np.dtype[Any]:
    """The numpy dtype snapshot-tool uses in memory for a TensorFlow dtype name."""
    if tf_dtype_name == "string":
        return np.dtype(object)
    if tf_dtype_name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return np.dtype(tf_dtype_name)


def dtype_name(arr: np.ndarray) -> str:
    """TensorFlow-style dtype name of a numpy array ("string" for bytes/str/object)."""
    if arr.dtype.kind in ("O", "S", "U"):
        return "string"
    return str(arr.dtype)


class Model(ABC):
    """A loaded model of any kind."""

    kind: str = "model"

    def __init__(self, path: Path, load_seconds: float) -> None:
        self.path = path
        self.load_seconds = load_seconds

    @property
    @abstractmethod
    def signatures(self) -> dict[str, SignatureInfo]:
        """All runnable signatures by name."""

    def signature(self, name: str | None) -> SignatureInfo:
        """Resolve ``name`` (``None``: the default) with an error that lists what exists."""
        sigs = self.signatures
        if not sigs:
            raise SignatureError(f"{self.path} has no runnable signatures")
        if name is None:
            if DEFAULT_SIGNATURE in sigs:
                return sigs[DEFAULT_SIGNATURE]
            if len(sigs) == 1:
                return next(iter(sigs.values()))
            raise SignatureError(
                f"{self.path} has no {DEFAULT_SIGNATURE!r} signature; choose one with "
                f"--signature: {', '.join(sorted(sigs))}")
        if name not in sigs:
            raise SignatureError(
                f"signature {name!r} not found in {self.path}; "
                f"available: {', '.join(sorted(sigs))}")
        return sigs[name]

    @abstractmethod
    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output of the signature as a numpy array."""


def _spec_from_tf(name: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(name=name, dtype=spec.dtype.name, shape=shape)


def _to_numpy(value: Any) -> np.ndarray:
    arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return np.asarray(arr)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # TensorFlow errors carry a multi-line graph trace; the first line says what is wrong.
    return text.splitlines()[0] if text else type(exc).__name__


class SavedModelTF2(Model):
    """A SavedModel loaded with ``tf.saved_model.load`` (TF2 exports, Keras 3 ``export``)."""

    kind = "saved_model"

    def __init__(self, path: Path, loaded: Any, load_seconds: float) -> None:
        super().__init__(path, load_seconds)
        self._loaded = loaded
        self._functions: dict[str, Any] = dict(loaded.signatures)
        self._signatures: dict[str, SignatureInfo] = {}
        for name, fn in self._functions.items():
            _, kwargs = fn.structured_input_signature
            inputs = tuple(_spec_from_tf(k, v) for k, v in sorted(kwargs.items()))
            outs = fn.structured_outputs
            if not isinstance(outs, Mapping):
                # Signatures always return dicts when saved; guard for odd exports anyway.
                outs = {"output_0": outs}
            outputs = tuple(_spec_from_tf(k, v) for k, v in sorted(outs.items()))
            self._signatures[name] = SignatureInfo(name, inputs, outputs, None)

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = import_tf()
        fn = self._functions[signature]
        info = self._signatures[signature]
        args = {}
        for spec in info.inputs:
            arr = feeds[spec.name]
            args[spec.name] = tf.constant(arr, dtype=getattr(tf, spec.dtype))
        try:
            result = fn(**args)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise SignatureError(
                f"signature {signature!r} rejected its inputs: {_first_line(exc)}") from None
        return {k: _to_numpy(v) for k, v in result.items()}


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


def load_model(path: str | Path, tag: str = DEFAULT_TAG) -> Model:
    """Load any supported model at ``path``; :class:`ModelError` says why when it cannot."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model path {str(p)!r} does not exist")
    if is_saved_model(p):
        return _load_saved_model(p, tag)
    if p.is_dir():
        raise ModelError(f"{p} is a directory but not a SavedModel (no saved_model.pb inside)")
    raise ModelError(f"{p} is not a model snapshot-tool can load (expected a SavedModel "
                     "directory)")


def _load_saved_model(path: Path, tag: str) -> Model:
    tf = import_tf()
    start = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(path), tags=[tag])
    except Exception as exc:
        raise ModelError(f"cannot load SavedModel {path} with tag {tag!r}: "
                         f"{_first_line(exc)}") from None
    return SavedModelTF2(path, loaded, time.perf_counter() - start)


def model_digest(path: str | Path) -> str:
    """sha256 over a model's files (relative names and contents), stable across copies."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        rel = f.name if f == p else f.relative_to(p).as_posix()
        h.update(rel.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def tensorflow_thread_settings() -> dict[str, int]:
    """TensorFlow's intra/inter-op thread counts as configured (0 = TF chooses)."""
    tf = import_tf()
    return {
        "intra_op_parallelism_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_parallelism_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
    }
