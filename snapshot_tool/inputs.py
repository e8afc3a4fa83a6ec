"""The fixed inputs a golden is recorded on: synthesized from the signature, or read from a file.

Whatever is chosen here is stored verbatim in the golden, and ``compare`` replays the stored
arrays. Inputs are never regenerated at compare time, so a change of numpy's random streams or
of this module can never masquerade as a model regression.

Synthesis rules (documented in the README):
- the leading dimension is the sample dimension; ``--num-samples`` rows are generated;
- other dynamic dimensions (``None``) get ``DYNAMIC_DIM`` (8) elements;
- floats are uniform in [0, 1); signed ints uniform in [0, 10); unsigned ints in [0, 10);
  bools fair coin flips; strings short random ASCII tokens (as bytes);
- a classify/regress signature's string input takes serialized tf.train.Example protos, which
  random strings are not: it needs ``--inputs FILE.tfrecord``;
- a signature without inputs gets no arrays, and is run once (see :func:`batches`).

Files: ``.npz`` and ``.h5`` arrays are matched to inputs by name; a ``.tfrecord`` file's
records feed a signature whose only input is a string tensor (serialized tf.train.Example).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.model import SignatureInfo, TensorSpec, numpy_dtype
from snapshot_tool.tfrecord import is_tfrecord_path, read_tfrecord

DYNAMIC_DIM = 8
INT_HIGH = 10
# The array name a TFRecord's records get in load_arrays; from_file renames it to the input.
TFRECORD_ARRAY = "examples"
# Signature methods whose string input is a batch of serialized tf.train.Example protos.
EXAMPLE_METHODS = ("classify", "regress")


def _sample_shape(spec: TensorSpec, num_samples: int) -> tuple[int, ...]:
    if spec.shape is None:
        # Unknown rank: a vector per sample is the most common meaning in practice.
        return (num_samples,)
    if len(spec.shape) == 0:
        raise InputsError(
            f"input {spec.name!r} is a scalar (rank 0) and has no sample dimension to batch "
            "over; export the signature with a leading batch dimension")
    rest = tuple(DYNAMIC_DIM if d is None else d for d in spec.shape[1:])
    return (num_samples, *rest)


def synthesize(sig: SignatureInfo, num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs for every input of ``sig``; same seed, same arrays, on every machine."""
    if num_samples < 1:
        raise InputsError(f"--num-samples must be at least 1, got {num_samples}")
    _refuse_random_examples(sig)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    # Sorted order keeps the stream independent of the order TensorFlow lists inputs in.
    for spec in sorted(sig.inputs, key=lambda s: s.name):
        shape = _sample_shape(spec, num_samples)
        dt = numpy_dtype(spec.dtype)
        if spec.dtype == "string":
            letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
            flat = [bytes(rng.choice(letters, size=int(rng.integers(1, 9))).tolist())
                    for _ in range(int(np.prod(shape)))]
            arr = np.empty(len(flat), dtype=object)
            arr[:] = flat
            out[spec.name] = arr.reshape(shape)
        elif spec.dtype == "bool":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif dt.kind in ("i", "u"):
            out[spec.name] = rng.integers(0, INT_HIGH, size=shape).astype(dt)
        elif dt.kind in ("f", "V") or spec.dtype == "bfloat16":
            out[spec.name] = rng.random(size=shape, dtype=np.float64).astype(dt)
        elif dt.kind == "c":
            out[spec.name] = (rng.random(size=shape) + 1j * rng.random(size=shape)).astype(dt)
        else:
            raise InputsError(f"cannot synthesize input {spec.name!r} of dtype {spec.dtype}; "
                              "pass --inputs FILE")
    return out


def _refuse_random_examples(sig: SignatureInfo) -> None:
    if sig.method_name not in EXAMPLE_METHODS:
        return
    strings = [s.name for s in sig.inputs if s.dtype == "string"]
    if strings:
        raise InputsError(
            f"signature {sig.name!r} is a {sig.method_name} signature: its input "
            f"{strings[0]!r} takes serialized tf.train.Example protos, which random strings "
            "are not; pass --inputs FILE.tfrecord (a TFRecord of tf.train.Example)")


def _read_file(path: Path) -> dict[str, np.ndarray]:
    if is_tfrecord_path(path):
        return {TFRECORD_ARRAY: read_tfrecord(path)}
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            # A truncated download or a file that is not really .npz: say which file.
            raise InputsError(f"cannot read inputs file {path}: not a valid .npz archive "
                              f"({exc})") from None
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
    raise InputsError(f"inputs file {path} has an unknown type; use .npz, .h5 or .tfrecord")


def _decode_h5(ds: Any) -> np.ndarray:
    arr = ds[()]
    if isinstance(arr, bytes):
        arr = np.array(arr, dtype=object)
    return np.asarray(arr)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.is_file():
        raise InputsError(f"inputs file {str(p)!r} not found")
    return _read_file(p)


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


def from_file(sig: SignatureInfo, path: str | Path,
              exclude: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Inputs for ``sig`` read from ``path``, matched by input name.

    A single-input signature takes the file's only array whatever its name. ``exclude``
    names arrays that are not model inputs (labels stored in the same file).
    """
    arrays = {k: v for k, v in load_arrays(path).items() if k not in exclude}
    names = [s.name for s in sig.inputs]
    if is_tfrecord_path(path):
        return _from_tfrecord(sig, arrays[TFRECORD_ARRAY], str(path))
    if len(sig.inputs) == 1 and sig.inputs[0].name not in arrays and len(arrays) == 1:
        arrays = {names[0]: next(iter(arrays.values()))}
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputsError(
            f"inputs file {path} has no array for input {missing[0]!r} of signature "
            f"{sig.name!r}; it holds: {', '.join(sorted(arrays)) or 'nothing'} "
            f"(expected: {', '.join(names)})")
    out = {s.name: conform(s, arrays[s.name], str(path)) for s in sig.inputs}
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
    rows = {k: (v.shape[0] if v.ndim else 0) for k, v in arrays.items()}
    if len(set(rows.values())) > 1:
        detail = ", ".join(f"{k}={n}" for k, n in sorted(rows.items()))
        raise InputsError(f"{source}: inputs disagree on the number of samples ({detail})")
    if rows and next(iter(rows.values())) == 0:
        raise InputsError(f"{source}: inputs hold no samples")
    return dict(arrays)


def num_rows(arrays: Mapping[str, np.ndarray]) -> int:
    """Samples in ``arrays`` (the leading dimension). A signature without inputs has no
    samples: ``num_rows({}) == 0``, although :func:`batches` still runs it once."""
    for v in arrays.values():
        return int(v.shape[0])
    return 0


def batches(arrays: Mapping[str, np.ndarray], batch_size: int
            ) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of ``batch_size`` rows (the last one may be shorter).

    An empty mapping (a signature without inputs: a counter, a constant table) yields
    exactly one empty batch, so the signature is still called, once, and its outputs are
    recorded; with no sample dimension to split there is nothing to call it more times for.
    """
    if batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {batch_size}")
    if not arrays:
        yield {}
        return
    n = num_rows(arrays)
    for start in range(0, n, batch_size):
        yield {k: v[start:start + batch_size] for k, v in arrays.items()}
