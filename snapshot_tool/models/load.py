"""Which loader a MODEL path needs (:func:`load_model`), and the model's content digest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from snapshot_tool.errors import ModelError
from snapshot_tool.models.base import DEFAULT_TAG, Model
from snapshot_tool.models.graphdef import is_frozen_graph, load_frozen_graph
from snapshot_tool.models.keras import load_keras
from snapshot_tool.models.savedmodel import is_saved_model, load_saved_model
from snapshot_tool.models.tflite import load_tflite, looks_like_tflite


def load_model(path: str | Path, tag: str = DEFAULT_TAG) -> Model:
    """Load any supported model at ``path``; :class:`ModelError` says why when it cannot.

    ``tag`` is a SavedModel tag set, comma-separated (``"serve"``, ``"serve,gpu"``); other
    kinds have none and ignore it.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model path {str(p)!r} does not exist")
    if is_saved_model(p):
        return load_saved_model(p, tag)
    if p.is_dir():
        raise ModelError(f"{p} is a directory but not a SavedModel (no saved_model.pb inside)")
    if p.name == "saved_model.pb":
        # The file alone is not the model: its variables/ and assets/ sit beside it.
        raise ModelError(f"{p} is the graph file of a SavedModel; give its directory "
                         f"({p.parent}) as the model")
    suffix = p.suffix.lower()
    if suffix == ".tflite" or (suffix != ".keras" and looks_like_tflite(p)):
        return load_tflite(p)
    if suffix == ".keras":
        return load_keras(p)
    if is_frozen_graph(p):
        return load_frozen_graph(p)
    raise ModelError(f"{p} is not a model snapshot-tool can load (expected a SavedModel "
                     "directory, a .tflite file, a .keras file or a frozen graph .pb)"
                     + _hdf5_hint(p))


# Every HDF5 file starts with this signature (at offset 0 unless a user block precedes it).
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _hdf5_hint(p: Path) -> str:
    """What to do with an HDF5 file given as MODEL: most are Keras's legacy ``model.h5``
    (or its weights), which runs once re-saved or exported; a golden belongs after --golden."""
    with p.open("rb") as fh:
        if fh.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
            return ""
    return ("; it is an HDF5 file: a legacy Keras model (model.save('model.h5')) runs once "
            "re-saved as .keras (keras.saving.load_model(path).save('model.keras')) or "
            "exported with model.export(DIR); a golden goes after --golden")


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

