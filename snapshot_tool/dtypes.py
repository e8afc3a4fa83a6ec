"""Dtype labels: TensorFlow-style dtype names of numpy arrays and back (strings as object
arrays of bytes, bfloat16 via ml_dtypes). numpy only: golden/, diff.py and inputs/ use it
without loading the TensorFlow model loaders.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def scalar_value(arr: np.ndarray) -> bool | int | float | str:
    """The value of a 0-d array as show, show --json and show --html print it: a string
    tensor's bytes decoded as UTF-8 (undecodable bytes replaced), anything else numpy's
    Python scalar, or its text when that is no plain number (complex)."""
    value = arr.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, bool | int | float | str) else str(value)


def numpy_dtype(tf_dtype_name: str) -> np.dtype[Any]:
    """The numpy dtype snapshot-tool uses in memory for a TensorFlow dtype name."""
    if tf_dtype_name == "string":
        return np.dtype(object)
    if tf_dtype_name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return np.dtype(tf_dtype_name)


def dtype_label(arr: np.ndarray) -> str:
    """The TensorFlow-style dtype name of an array (the inverse of :func:`numpy_dtype`):
    "string" for bytes/str/object arrays, numpy's name otherwise."""
    return "string" if arr.dtype.kind in ("O", "S", "U") else str(arr.dtype)



# Significand bits of each float format: the order of precision, whatever the byte size
# (bfloat16 and float16 are both 2 bytes; float16 is the more precise).
FLOAT_PRECISION = {"bfloat16": 8, "float16": 11, "float32": 24, "float64": 53}


def precision_change(was: str, now: str) -> bool:
    """Whether a dtype change (labels) is one of float precision only (float32 -> float16,
    a mixed-precision build): the change ``allow_dtype_change`` accepts, judged on its values
    in a dtype holding both (:func:`common_float`) and by the less precise dtype's
    tolerance defaults (:func:`less_precise`). The one statement of that rule."""
    return was != now and was in FLOAT_PRECISION and now in FLOAT_PRECISION


def less_precise(a: str, b: str) -> str:
    """Of two float dtype labels, the one with fewer significand bits."""
    return a if FLOAT_PRECISION[a] <= FLOAT_PRECISION[b] else b


def common_float(a: str, b: str) -> np.dtype[Any]:
    """A numpy dtype holding both float dtypes exactly, to compare them in: the more precise
    of the two, or float32 for float16 against bfloat16 (neither holds the other)."""
    if {a, b} == {"float16", "bfloat16"}:
        return np.dtype(np.float32)
    return numpy_dtype(a if FLOAT_PRECISION[a] >= FLOAT_PRECISION[b] else b)
