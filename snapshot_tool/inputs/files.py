"""Inputs read from ``.npz``, ``.npy``, ``.h5`` and TFRecord files, matched to a signature's
inputs and conformed to their dtypes and shapes.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.dtypes import numpy_dtype
from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.batching import is_scalar
from snapshot_tool.inputs.tfrecord import is_tfrecord_path, read_tfrecord
from snapshot_tool.models.base import SignatureInfo, TensorSpec

# The array name a TFRecord's records get in load_arrays; from_file renames it to the input.
TFRECORD_ARRAY = "examples"


def _read_file(path: Path) -> dict[str, np.ndarray]:
    if is_tfrecord_path(path):
        return {TFRECORD_ARRAY: read_tfrecord(path)}
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".npy":
        # One array (np.save): named after the file; a single-input signature takes the
        # file's only array whatever its name.
        return {path.stem: _load_npy(path)}
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                arrays: dict[str, np.ndarray] = {}

                def visit(name: str, obj: Any) -> None:
                    if isinstance(obj, h5py.Dataset):
                        arrays[name] = _decode_h5(obj)

                f.visititems(visit)
                return arrays
        except OSError as exc:
            raise InputsError(f"cannot read inputs file {path}: {exc}") from None
    raise InputsError(f"inputs file {path} has an unknown type; use .npz, .npy, .h5 or "
                      ".tfrecord")


_PICKLED = ("which .npz and .npy store only as a pickle, and snapshot-tool does not unpickle; "
            "store text as a fixed-width array (np.array(values, dtype='U') or dtype='S') or "
            "in an .h5 file, and binary bytes such as serialized tf.train.Example protos in a "
            ".tfrecord (fixed-width arrays drop trailing NUL bytes)")


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputsError(f"cannot read inputs file {path}: it holds an object array "
                              f"(strings?), {_PICKLED}") from None
        raise InputsError(f"cannot read inputs file {path}: not a valid .npy file "
                          f"({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputsError(f"cannot read inputs file {path}: not a valid .npy file "
                          f"({exc})") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    key = ""
    try:
        with np.load(path, allow_pickle=False) as data:
            _refuse_other_members(path, data.zip.namelist())
            for key in data.files:
                arrays[key] = np.asarray(data[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            # np.savez pickles object arrays (how Python strings usually end up in numpy);
            # loading them would run arbitrary code from the file, so they stay refused, with
            # the two ways to store strings that need no pickle.
            raise InputsError(f"cannot read inputs file {path}: array {key!r} is an object "
                              f"array (strings?), {_PICKLED}") from None
        raise _not_npz(path, exc) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise _not_npz(path, exc) from None
    return arrays


def _refuse_other_members(path: Path, members: list[str]) -> None:
    """An .npz is a zip of .npy files; numpy hands any other member back as raw bytes, which
    would then pass for a byte-string array."""
    other = [m for m in members if not m.endswith(".npy")]
    if other:
        raise InputsError(f"cannot read inputs file {path}: member {other[0]!r} is not a .npy "
                          "array, so this zip is not an .npz written by np.savez")


def _not_npz(path: Path, exc: Exception) -> InputsError:
    # A truncated download or a file that is not really .npz: say which file.
    return InputsError(f"cannot read inputs file {path}: not a valid .npz archive ({exc})")


def _decode_h5(ds: Any) -> np.ndarray:
    arr = ds[()]
    if isinstance(arr, bytes):
        arr = np.array(arr, dtype=object)
    return np.asarray(arr)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InputsError(not_a_file("inputs file", p))
    return _read_file(p)


def not_a_file(what: str, p: Path) -> str:
    """Why ``p`` cannot be read as a file: missing, or there but not a regular file (a FIFO,
    ``<(...)``, a device, a folder), which is refused because reading one can wait forever
    for a writer and cannot seek."""
    if not p.exists():
        return f"{what} {str(p)!r} not found"
    return (f"{what} {str(p)!r} is not a regular file (a pipe, a device or a folder); save "
            "it to a file and give that path")


def _kind(dtype_name: str) -> str:
    if dtype_name == "string":
        return "string"
    if dtype_name == "bool":
        return "bool"
    dt = numpy_dtype(dtype_name)
    if dtype_name == "bfloat16" or dt.kind == "f":
        return "float"
    if dt.kind in ("i", "u"):
        return "int"
    return dt.kind


def _array_kind(arr: np.ndarray) -> str:
    if arr.dtype.kind in ("O", "S", "U"):
        return "string"
    if arr.dtype.kind == "b":
        return "bool"
    if arr.dtype.kind == "f" or arr.dtype.name == "bfloat16":
        return "float"
    if arr.dtype.kind in ("i", "u"):
        return "int"
    return arr.dtype.kind


def conform(spec: TensorSpec, arr: np.ndarray, source: str) -> np.ndarray:
    """Check one provided array against its spec and convert it to the spec's dtype.

    Casts stay within a kind (float64 data for a float32 input is normal numpy output);
    a different kind (ints for a float input, floats for a string input) is an error,
    because a silent cast would record a golden on data the user did not mean to feed.
    """
    want, got = _kind(spec.dtype), _array_kind(arr)
    if want != got:
        raise InputsError(
            f"{source}: array for input {spec.name!r} has dtype {arr.dtype} but the signature "
            f"expects {spec.dtype}; convert it (e.g. arr.astype('{spec.dtype}'))")
    _check_scalar(spec, arr, source)
    if spec.shape is not None:
        if arr.ndim != len(spec.shape):
            raise InputsError(
                f"{source}: array for input {spec.name!r} has shape {arr.shape} but the "
                f"signature expects rank {len(spec.shape)} ({spec.describe()})")
        for axis, (have, need) in enumerate(zip(arr.shape, spec.shape, strict=True)):
            if axis > 0 and need is not None and have != need:
                raise InputsError(
                    f"{source}: array for input {spec.name!r} has shape {arr.shape} but the "
                    f"signature expects {spec.describe()}")
    if want == "string":
        flat = [x.encode() if isinstance(x, str) else bytes(x) for x in arr.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(arr.shape)
    target = numpy_dtype(spec.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(target, copy=False)
    if want == "float" and out.dtype != arr.dtype:
        # A narrowing cast turns large values into inf without complaint; recording a
        # golden on inf inputs the user never had is worse than refusing.
        overflow = np.isinf(out) & np.isfinite(arr)
        if overflow.any():
            raise InputsError(
                f"{source}: {int(overflow.sum())} value(s) of input {spec.name!r} overflow "
                f"{spec.dtype} (largest magnitude {float(np.nanmax(np.abs(arr))):g})")
    elif want == "int" and out.dtype != arr.dtype:
        if not np.array_equal(out.astype(arr.dtype), arr):
            raise InputsError(
                f"{source}: values of input {spec.name!r} do not fit {spec.dtype} "
                f"(range {arr.min()}..{arr.max()})")
    return out


def scalar_mismatch(spec: TensorSpec, arr: np.ndarray) -> str:
    """What the input ``spec`` takes, when ``arr`` disagrees with it on being a scalar;
    else "". A scalar (0-d) array is fed whole with every batch, so it fits only an input
    that takes a scalar (rank 0, or a rank the signature does not say); an input with a
    sample dimension needs rows, and a scalar input cannot take rows."""
    if spec.shape is None or is_scalar(arr) == (spec.shape == ()):
        return ""
    if is_scalar(arr):
        return f"input {spec.name!r} has a sample dimension ({spec.describe()})"
    return (f"input {spec.name!r} takes a scalar ({spec.describe()}), fed unchanged with "
            "every batch")


def _check_scalar(spec: TensorSpec, arr: np.ndarray, source: str) -> None:
    takes = scalar_mismatch(spec, arr)
    if not takes:
        return
    if is_scalar(arr):
        raise InputsError(f"{source}: {takes} but its array is a scalar (0-d); store one row "
                          "per sample (only a scalar input, rank 0, takes a 0-d array)")
    raise InputsError(f"{source}: {takes}, but its array has shape {arr.shape}; store it as "
                      f"a 0-d array (e.g. {spec.name}={scalar_example(spec)})")


def scalar_example(spec: TensorSpec) -> str:
    """A 0-d numpy value for a scalar input, as a user would write it: a setting's
    neutral value (keep_prob and temperature 1.0, is_training False)."""
    if spec.dtype == "bool":
        return "np.bool_(False)"
    if spec.dtype == "string":
        return "np.bytes_(b'...')"
    if spec.dtype == "bfloat16":
        return "np.float32(1.0)"  # numpy has no bfloat16; casts within a kind are done
    return f"np.{numpy_dtype(spec.dtype).name}({neutral_number(spec)})"


def neutral_number(spec: TensorSpec) -> str:
    """A numeric setting's neutral value as text: 1.0 for a float (keep_prob, temperature:
    dropout off, logits unscaled), 0 for an integer."""
    return "1.0" if _kind(spec.dtype) == "float" else "0"


def from_file(sig: SignatureInfo, path: str | Path, exclude: tuple[str, ...] = (),
              given: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Inputs for ``sig`` read from ``path``, matched by input name.

    A signature with a single input to read takes the file's only array whatever its name.
    ``exclude`` names arrays that are not model inputs (labels stored in the same file);
    ``given`` names inputs given by value (``--set``), which the file must not hold too.
    """
    arrays = {k: v for k, v in load_arrays(path).items() if k not in exclude}
    wanted = [s for s in sig.inputs if s.name not in given]
    names = [s.name for s in wanted]
    if is_tfrecord_path(path):
        return _from_tfrecord(sig, arrays[TFRECORD_ARRAY], str(path))
    twice = sorted(set(given) & arrays.keys())
    if twice:
        raise InputsError(f"input {twice[0]!r} is given both by --set and in inputs file "
                          f"{path}; keep one")
    if len(wanted) == 1 and wanted[0].name not in arrays and len(arrays) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [s for s in wanted if s.name not in arrays]
    if missing:
        spec = missing[0]
        hint = (f"; {spec.name!r} is a scalar setting: give it with --set {spec.name}=VALUE "
                f"or add it as a 0-d array ({spec.name}={scalar_example(spec)} in np.savez)"
                if spec.shape == () else "")
        raise InputsError(
            f"inputs file {path} has no array for input {spec.name!r} of signature "
            f"{sig.name!r}; it holds: {', '.join(sorted(arrays)) or 'nothing'} "
            f"(expected: {', '.join(names)}){hint}")
    out = {s.name: conform(s, arrays[s.name], str(path)) for s in wanted}
    return check_rows(out, str(path))


def _from_tfrecord(sig: SignatureInfo, records: np.ndarray, source: str
                   ) -> dict[str, np.ndarray]:
    if len(sig.inputs) != 1 or sig.inputs[0].dtype != "string":
        takes = ", ".join(s.describe() for s in sig.inputs) or "no inputs"
        raise InputsError(
            f"{source} is a TFRecord, which feeds only a signature whose single input is a "
            f"string tensor of serialized tf.train.Example; signature {sig.name!r} takes "
            f"{takes}; pass an .npz or .h5 file with one array per input instead")
    spec = sig.inputs[0]
    if spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] == 1:
        # Some exporters declare the examples as [batch, 1].
        records = records.reshape(-1, 1)
    return check_rows({spec.name: conform(spec, records, source)}, source)


def check_rows(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """``arrays`` if their batched inputs agree on the number of samples and hold some;
    scalar inputs (0-d, fed with every batch) have no samples to count."""
    rows = {k: v.shape[0] for k, v in arrays.items() if not is_scalar(v)}
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in sorted(rows.items()))
        raise InputsError(f"{source}: inputs disagree on the number of samples ({detail})")
    if rows and next(iter(rows.values())) == 0:
        raise InputsError(f"{source}: inputs hold no samples")
    return dict(arrays)

