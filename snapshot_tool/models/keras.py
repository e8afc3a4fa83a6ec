"""Keras 3 ``.keras`` files, presented with the signature ``model.export()`` gives the same
model, so they can be compared against a golden recorded from the export.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import ModelError
from snapshot_tool.inputs.batching import num_rows
from snapshot_tool.models.base import (
    DEFAULT_SIGNATURE,
    Model,
    SignatureInfo,
    TensorSpec,
    first_line,
    import_tf,
    quiet_native_stderr,
    rejected,
    run_rows,
    to_numpy,
)


def _keras_spec(name: str, tensor: Any) -> TensorSpec:
    shape = tensor.shape
    dims = None if shape is None else tuple(None if d is None else int(d) for d in shape)
    dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
    return TensorSpec(name=name, dtype=dtype, shape=dims)


class KerasModel(Model):
    """A Keras 3 ``.keras`` file, with the one signature ``model.export()`` would write.

    ``serving_default`` takes the model's input tensors by name and returns ``output_0``..
    (or the keys of a dict-output model), which is what ``model.export()`` writes. So a
    ``.keras`` candidate compares against a golden recorded from the export, and the other
    way round.
    """

    kind = "keras"

    def __init__(self, path: Path, model: Any, load_seconds: float) -> None:
        super().__init__(path, load_seconds)
        self._model = model
        self._graph_fn: Any = None
        inputs = list(getattr(model, "inputs", None) or [])
        outputs = list(getattr(model, "outputs", None) or [])
        if not inputs or not outputs:
            raise ModelError(
                f"cannot load Keras model {path}: it has no defined inputs/outputs (a "
                "subclassed model); export it with model.export(DIR) and use the SavedModel")
        self._inputs_struct = getattr(model, "_inputs_struct", None)
        outputs_struct = getattr(model, "_outputs_struct", None)
        self._dict_outputs = isinstance(outputs_struct, Mapping)
        if isinstance(outputs_struct, Mapping):
            out_specs = [_keras_spec(str(k), t) for k, t in outputs_struct.items()]
        else:
            out_specs = [_keras_spec(f"output_{i}", t) for i, t in enumerate(outputs)]
        self._input_tensors = inputs
        in_specs = sorted((_keras_spec(t.name, t) for t in inputs), key=lambda s: s.name)
        self._signatures = {DEFAULT_SIGNATURE: SignatureInfo(
            DEFAULT_SIGNATURE, tuple(in_specs), tuple(sorted(out_specs, key=lambda s: s.name)),
            "predict")}
        generated = [t.name for t in inputs
                     if t.name.startswith(("input_layer", "keras_tensor"))]
        if generated:
            self.notes.append(
                f"input(s) {', '.join(generated)} of {path.name} have generated names, which "
                "change between saving and exporting; name them with keras.Input(name=...) "
                "so goldens and candidates agree")

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def _structured(self, feeds: Mapping[str, np.ndarray]) -> Any:
        # Feed the structure the model was built with (a dict model wants a dict, a list
        # model a list), as model.export()'s serving function does.
        if self._inputs_struct is not None:
            import keras

            return keras.tree.map_structure(lambda t: feeds[t.name], self._inputs_struct)
        arrays = [feeds[t.name] for t in self._input_tensors]
        return arrays[0] if len(arrays) == 1 else arrays

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_rows(self.signatures[signature], feeds, lambda f: self._run(signature, f))

    def _run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import keras

        tf = import_tf()
        if self._graph_fn is None:
            # Eager calls of a Keras model run op by op, several times slower than the
            # graph model.export() serves; timing or comparing those would measure the
            # Python dispatcher, not the model. reduce_retracing keeps one graph for all
            # batch sizes after the first few.
            model = self._model
            self._graph_fn = tf.function(lambda x: model(x, training=False),
                                         reduce_retracing=True)
        structured = tf.nest.map_structure(tf.convert_to_tensor, self._structured(feeds))
        try:
            result = self._graph_fn(structured)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise rejected(self.signatures[signature], exc, num_rows(feeds),
                           f" of {self.path.name}") from None
        if self._dict_outputs and isinstance(result, Mapping):
            items = [(str(k), v) for k, v in result.items()]
        else:
            items = [(f"output_{i}", v) for i, v in enumerate(keras.tree.flatten(result))]
        return {k: to_numpy(keras.ops.convert_to_numpy(v)) for k, v in items}


# The root attribute Keras's legacy HDF5 format (model.save("model.h5"), Keras 2 and 3)
# stores the model's architecture in; weights-only files and goldens have none.
_LEGACY_CONFIG_ATTR = "model_config"
_LEGACY_SUFFIXES = (".h5", ".hdf5")


def is_legacy_keras(path: Path) -> bool:
    """Whether ``path`` is a whole Keras model in the legacy HDF5 format."""
    if path.suffix.lower() not in _LEGACY_SUFFIXES or not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _LEGACY_CONFIG_ATTR in f.attrs
    except OSError:
        return False  # not HDF5 at all: load_model says what it expected


def export_saved_model(model: Any, path: Path | str) -> None:
    """``model.export(path)`` without its printed summary of the serving signature. Keras
    3.6 added ``verbose`` (and the summary); 3.1-3.5 print nothing and refuse the keyword."""
    import inspect

    if "verbose" in inspect.signature(model.export).parameters:
        model.export(str(path), verbose=False)
    else:
        model.export(str(path))


def load_keras(path: Path) -> KerasModel:
    """A ``.keras`` file, or a legacy ``model.h5`` (:func:`is_legacy_keras`), which Keras 3
    loads into the same functional model."""
    import zipfile

    legacy = path.suffix.lower() in _LEGACY_SUFFIXES
    if legacy and path.suffix not in _LEGACY_SUFFIXES:
        # Keras tells a legacy file by its suffix, lower case only ("File format not
        # supported" for model.H5).
        raise ModelError(f"cannot load Keras model {path}: Keras reads a legacy HDF5 model "
                         f"only under a lower-case suffix; rename or link it as "
                         f"{path.with_suffix(path.suffix.lower()).name}")
    if not legacy and not zipfile.is_zipfile(path):
        # Keras says "File not found" for any file that is not a zip archive.
        raise ModelError(f"cannot load Keras model {path}: it is not a .keras file (a .keras "
                         "file is a zip archive written by model.save)")
    import_tf()
    start = time.perf_counter()
    try:
        with quiet_native_stderr():
            import keras

            # safe_mode stays on: a .keras file must not run arbitrary code (Lambda layers)
            # just because a regression gate looked at it. A legacy file is not compiled:
            # its optimizer and loss are training's (custom losses need their code), and a
            # gate only runs the model.
            model = keras.saving.load_model(str(path), compile=not legacy)
    except ImportError as exc:
        raise ModelError(f"cannot load Keras model {path}: Keras is not importable "
                         f"({exc}); install it with `pip install keras`") from None
    except Exception as exc:
        raise ModelError(f"cannot load Keras model {path}: {_load_failure(exc)}") from None
    return KerasModel(path, model, time.perf_counter() - start)


# The export is a SavedModel: it runs the same computation without Keras deserializing
# Python code or needing the training project's classes importable.
_EXPORT_ADVICE = "export the model with model.export(DIR) and use DIR"


def _load_failure(exc: Exception) -> str:
    """Why Keras could not load a file, in one line that says what to do about it."""
    text = str(exc)
    if "safe_mode" in text:
        # Keras suggests safe_mode=False, which a gate must not do to a file it is handed:
        # its reason is kept, up to where that suggestion starts.
        reason = re.split(r"If you trust|safe_mode", first_line(exc))[0].rstrip(" .,;(`")
        return f"{reason}; snapshot-tool keeps safe mode on: {_EXPORT_ADVICE}"
    # "Could not locate class" from a .keras file, "Unknown layer: 'pkg>Name'" from a legacy
    # .h5 (whose advice, a custom_object_scope, is for Python callers).
    missing = re.search(r"(?:Could not locate (?:class|function)|Unknown [a-z ]+:) '([^']+)'",
                        text)
    if missing:
        # Keras wraps this in a page-long "could not be deserialized properly" message
        # whose first line does not name the class at all.
        return (f"it uses the custom class or function {missing.group(1)!r}, which is not "
                "registered in this process (the training code's "
                "@keras.saving.register_keras_serializable); "
                f"{_EXPORT_ADVICE}")
    return first_line(exc)
