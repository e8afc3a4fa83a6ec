"""Ground-truth labels for task metrics: ``--labels FILE[:KEY]``.

``FILE`` is an .npz or .h5 file. ``KEY`` names the array; without it the file must hold a
single array, or one named ``labels``. When ``FILE`` is also the ``--inputs`` file, the labels
array is excluded from the model's inputs, so one file can carry both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.files import load_arrays, not_a_file


@dataclass(frozen=True)
class LabelsSpec:
    path: Path
    key: str | None

    @property
    def source(self) -> str:
        return f"{self.path}:{self.key}" if self.key else str(self.path)


def parse_spec(spec: str) -> LabelsSpec:
    """Split ``FILE[:KEY]``. A colon belongs to the path when the whole string is a file."""
    if Path(spec).is_file() or ":" not in spec:
        return LabelsSpec(Path(spec), None)
    path, key = spec.rsplit(":", 1)
    if not key:
        raise InputsError(f"--labels {spec!r}: empty KEY after ':'")
    if not path:
        raise InputsError(f"--labels {spec!r}: empty FILE before ':'; give FILE:KEY")
    return LabelsSpec(Path(path), key)


def load_labels(spec: LabelsSpec) -> np.ndarray:
    if not spec.path.is_file():
        raise InputsError(not_a_file("labels file", spec.path))
    try:
        arrays = load_arrays(spec.path)
    except InputsError as exc:
        # load_arrays speaks of "inputs file"; here the file holds labels.
        raise InputsError(str(exc).replace("inputs file", "labels file")) from None
    if not arrays:
        raise InputsError(f"labels file {spec.path} holds no arrays")
    if spec.key is not None:
        if spec.key not in arrays:
            raise InputsError(f"labels file {spec.path} has no array {spec.key!r}; it holds: "
                              f"{', '.join(sorted(arrays)) or 'nothing'}")
        arr = arrays[spec.key]
    elif len(arrays) == 1:
        arr = next(iter(arrays.values()))
    elif "labels" in arrays:
        arr = arrays["labels"]
    else:
        raise InputsError(f"labels file {spec.path} holds several arrays "
                          f"({', '.join(sorted(arrays))}); name one with --labels FILE:KEY")
    if arr.ndim == 0:
        raise InputsError(f"labels {spec.source} is a scalar; give one label per sample")
    if arr.dtype.kind not in "biuf":
        raise InputsError(f"labels {spec.source} have dtype {arr.dtype}; labels must be "
                          "numeric (class ids, 0/1, one-hot or regression targets)")
    return arr
