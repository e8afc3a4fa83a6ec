"""Inputs synthesized from a signature (see the package docstring for the rules).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection

import numpy as np

from snapshot_tool.dtypes import numpy_dtype
from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.files import neutral_number, scalar_example
from snapshot_tool.models.base import SignatureInfo, TensorSpec

DYNAMIC_DIM = 8
INT_HIGH = 10  # wider integers are most often indices or counts: [0, 10) is valid for them
# Signature methods whose string input is a batch of serialized tf.train.Example protos.
EXAMPLE_METHODS = ("classify", "regress")


def _sample_shape(spec: TensorSpec, num_samples: int) -> tuple[int, ...]:
    if spec.shape is None:
        # Unknown rank: a vector per sample is the most common meaning in practice.
        return (num_samples,)
    rest = tuple(DYNAMIC_DIM if d is None else d for d in spec.shape[1:])
    return (num_samples, *rest)


def synthesize(sig: SignatureInfo, num_samples: int, seed: int,
               given: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Seeded inputs for every input of ``sig`` but those ``given`` by value (``--set``);
    same seed, same arrays, on every machine."""
    if num_samples < 1:
        raise InputsError(f"--num-samples must be at least 1, got {num_samples}")
    _refuse_random_examples(sig)
    _refuse_scalars(sig, given)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    # Sorted order keeps the stream independent of the order TensorFlow lists inputs in.
    for spec in sorted((s for s in sig.inputs if s.name not in given), key=lambda s: s.name):
        shape = _sample_shape(spec, num_samples)
        dt = numpy_dtype(spec.dtype)
        if math.prod(shape) * dt.itemsize > sys.maxsize:
            # numpy refuses an array larger than the address space with a ValueError;
            # it is the memory that is missing.
            raise MemoryError
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
            low, high = integer_range(spec, dt)
            out[spec.name] = rng.integers(low, high, size=shape).astype(dt)
        elif dt.kind in ("f", "V") or spec.dtype == "bfloat16":
            out[spec.name] = rng.random(size=shape, dtype=np.float64).astype(dt)
        elif dt.kind == "c":
            out[spec.name] = (rng.random(size=shape) + 1j * rng.random(size=shape)).astype(dt)
        else:
            raise InputsError(f"cannot synthesize input {spec.name!r} of dtype {spec.dtype}; "
                              "pass --inputs FILE")
    return out


def synthesized_text_note(sig: SignatureInfo, given: Collection[str] = ()) -> str | None:
    """What to say when ``sig``'s string inputs were synthesized: random letters are not
    words, so a text model's vocabulary (StringLookup, TextVectorization, a lookup table)
    maps nearly all of them to one out-of-vocabulary id and the golden holds nearly the same
    output for every row, which gates little. ``given``: inputs given by value (``--set``)."""
    # Scalar strings are settings, given by value and never synthesized.
    synthesized = sorted(s.name for s in sig.inputs
                         if s.dtype == "string" and s.shape != () and s.name not in given)
    if not synthesized:
        return None
    names, first = [repr(n) for n in synthesized], synthesized[0]
    return (f"string input(s) {', '.join(names)} of {sig.name!r} were synthesized as random "
            "letters, which a vocabulary lookup maps to out-of-vocabulary, so the golden may "
            "hold nearly the same output for every row; record real text with --inputs "
            f"FILE.npz (np.savez('inputs.npz', {first}=np.array(['some text', ...])))")


def integer_range(spec: TensorSpec, dt: np.dtype) -> tuple[int, int]:
    """[low, high) of a synthesized integer input. A quantized input (a full-integer TFLite
    model's) gets its dtype's whole range: its integers stand for ``scale * (q -
    zero_point)``, and the converter chose scale and zero point so that this range covers
    the real values it was calibrated on, which [0, 10) would leave a sliver of. Other
    integer inputs, 8-bit ones included, stay in [0, INT_HIGH): they are as often ids into
    a small vocabulary or one-hot depth (which a wider range would overrun) as pixels."""
    if spec.quantization is not None:
        info = np.iinfo(dt)
        return int(info.min), int(info.max) + 1
    return 0, INT_HIGH


def _refuse_random_examples(sig: SignatureInfo) -> None:
    if sig.method_name not in EXAMPLE_METHODS:
        return
    strings = [s.name for s in sig.inputs if s.dtype == "string"]
    if strings:
        raise InputsError(
            f"signature {sig.name!r} is a {sig.method_name} signature: its input "
            f"{strings[0]!r} takes serialized tf.train.Example protos, which random strings "
            "are not; pass --inputs FILE.tfrecord (a TFRecord of tf.train.Example)")


def _refuse_scalars(sig: SignatureInfo, given: Collection[str]) -> None:
    """A scalar (rank-0) input is a setting, not data: a random keep_prob or is_training
    would record a golden of a model in a state nobody runs it in. Its value is the user's
    to give, with ``--set`` or in the inputs file beside the data."""
    missing = [s for s in sig.inputs if s.shape == () and s.name not in given]
    if not missing:
        return
    missing.sort(key=lambda s: s.name)
    names = [repr(s.name) for s in missing]
    what = (f"input {names[0]} of signature {sig.name!r} is a scalar" if len(names) == 1
            else f"inputs {', '.join(names)} of signature {sig.name!r} are scalars")
    sets = " ".join(f"--set {s.name}={set_example(s)}" for s in missing)
    raise InputsError(
        f"{what} (rank 0): a setting rather than data (a TF1 keep_prob or is_training, a "
        f"temperature) whose value cannot be synthesized; give its value with {sets}, or "
        f"as a 0-d array in an inputs file beside the other inputs, e.g. {savez_line(sig)}, "
        "and record with --inputs inputs.npz")


def set_example(spec: TensorSpec) -> str:
    """A ``--set`` value for a scalar input, a setting's neutral value (as
    :func:`~snapshot_tool.inputs.files.scalar_example` writes it for np.savez)."""
    if spec.dtype == "bool":
        return "false"
    if spec.dtype == "string":
        return "..."
    return neutral_number(spec)


def savez_line(sig: SignatureInfo) -> str:
    """The np.savez call that writes an inputs file for ``sig``: its batched inputs from
    arrays of the same name (their samples), its scalar ones as 0-d values."""
    named: list[str] = []
    odd: list[str] = []  # names np.savez takes only as a ** dict ("input.1")
    for s in sorted(sig.inputs, key=lambda s: (s.shape == (), s.name)):
        ok = s.name.isidentifier()
        value = scalar_example(s) if s.shape == () else (s.name if ok else "rows")
        if ok:
            named.append(f"{s.name}={value}")
        else:
            odd.append(f"{s.name!r}: {value}")
    args = ["'inputs.npz'", *named, *([f"**{{{', '.join(odd)}}}"] if odd else [])]
    return f"np.savez({', '.join(args)})"
