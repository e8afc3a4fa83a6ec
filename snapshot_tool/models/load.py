"""Which loader a MODEL path needs (:func:`load_model`), and the model's content digest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from snapshot_tool.errors import ModelError
from snapshot_tool.models.base import DEFAULT_TAG, Model, one_row_note
from snapshot_tool.models.graphdef import is_frozen_graph, load_frozen_graph
from snapshot_tool.models.keras import is_legacy_keras, load_keras
from snapshot_tool.models.savedmodel import is_saved_model, load_saved_model
from snapshot_tool.models.tflite import load_tflite, looks_like_tflite


def load_model(path: str | Path, tag: str = DEFAULT_TAG) -> Model:
    """Load any supported model at ``path``; :class:`ModelError` says why when it cannot.

    ``tag`` is a SavedModel tag set, comma-separated (``"serve"``, ``"serve,gpu"``); other
    kinds have none and ignore it.
    """
    model = _load(check_model_path(path), tag)
    note = one_row_note(model)
    if note:
        model.notes.append(note)
    return model


def _load(p: Path, tag: str) -> Model:
    if is_saved_model(p):
        return load_saved_model(p, tag)
    suffix = p.suffix.lower()
    if suffix == ".tflite" or (suffix != ".keras" and looks_like_tflite(p)):
        return load_tflite(p)
    if suffix == ".keras" or is_legacy_keras(p):
        return load_keras(p)
    if is_frozen_graph(p):
        return load_frozen_graph(p)
    raise ModelError(f"{p} is not a model snapshot-tool can load (expected a SavedModel "
                     "directory, a .tflite file, a .keras file, a Keras .h5 model or a "
                     "frozen graph .pb)"
                     + _hdf5_hint(p))


def check_model_path(path: str | Path) -> Path:
    """What can be wrong with a MODEL path that needs no TensorFlow to see, so that a
    mistyped path is said at once instead of after TensorFlow's import (seconds): record
    and compare call it before anything starts TensorFlow, :func:`load_model` again."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model path {str(p)!r} does not exist")
    try:
        # The path as TensorFlow is given it: a relative one inside a folder whose own name
        # is not UTF-8 opens fine.
        str(p).encode()
    except UnicodeEncodeError:
        # TensorFlow takes paths as UTF-8 text; it failed with "surrogates not allowed".
        shown = os.fsencode(p).decode("utf-8", "backslashreplace")
        raise ModelError(f"model path '{shown}' is not valid UTF-8 (a name in another "
                         "encoding), and TensorFlow opens models only by UTF-8 paths; "
                         "rename it, or link to it from one (ln -s)") from None
    if p.is_dir() and not is_saved_model(p):
        raise ModelError(f"{p} is a directory but not a SavedModel (no saved_model.pb inside)")
    if p.name == "saved_model.pb":
        # The file alone is not the model: its variables/ and assets/ sit beside it.
        raise ModelError(f"{p} is the graph file of a SavedModel; give its directory "
                         f"({p.parent}) as the model")
    return p


# Every HDF5 file starts with this signature (at offset 0 unless a user block precedes it).
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _hdf5_hint(p: Path) -> str:
    """What to do with an HDF5 file given as MODEL that is not a legacy Keras model (those
    load): Keras weights alone, which need the model saved whole, or a golden, which
    belongs after --golden."""
    with p.open("rb") as fh:
        if fh.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
            return ""
    return ("; it is an HDF5 file with no model in it (Keras weights, or a golden, which "
            "goes after --golden): save the whole model with model.save('model.keras') or "
            "export it with model.export(DIR)")


RecordedModelState = Literal["matches", "changed", "missing", "unknown"]


def recorded_model_places(model_path: str, golden: Path, *roots: Path) -> list[Path]:
    """Where a golden's ``model_path`` may be now. It is stored as given to ``record``:
    relative to where that ran, usually the project root, which later runs (CI from a fresh
    clone, a Makefile in a subfolder) may not share; so ``roots`` (a folder being scanned),
    the current directory, and the golden's folder and each folder above it are tried."""
    given = Path(model_path)
    if given.is_absolute():
        return [given]
    folder = golden.resolve().parent
    bases = [*roots, Path.cwd(), folder, *folder.parents]
    return list(dict.fromkeys(base / given for base in bases))


def locate_recorded_model(model_path: str, digest: str, golden: Path, *roots: Path,
                          digests: dict[Path, str] | None = None
                          ) -> tuple[Path | None, RecordedModelState]:
    """The golden's own model if one of :func:`recorded_model_places` holds it with the
    recorded files (sha256 equal to ``digest``): ``(path, "matches")``; else ``(None,
    "changed")`` when a model sits there with other files, ``"missing"`` when none does,
    ``"unknown"`` when the golden records no path or digest. ``digests`` caches digests
    by resolved path across calls (status scans many goldens of one model)."""
    if not model_path or not digest:
        return None, "unknown"
    cache: dict[Path, str] = {} if digests is None else digests
    state: RecordedModelState = "missing"
    for place in recorded_model_places(model_path, golden, *roots):
        if not place.exists():
            continue
        key = place.resolve()
        if key not in cache:
            cache[key] = model_digest(place)
        if cache[key] == digest:
            return place, "matches"
        state = "changed"
    return None, state


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

