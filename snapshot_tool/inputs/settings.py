"""Scalar inputs given by value (``record --set NAME=VALUE``): a TF1 ``keep_prob`` or
``is_training``, a temperature. A setting is fed unchanged with every batch and stored in
the golden like a 0-d array from an inputs file, so ``compare`` replays it the same way.

The value is text, read by the input's kind: ``true``/``false`` (or ``1``/``0``) for a bool,
a Python literal for an int, float or complex, the UTF-8 bytes of the text for a string.
It is then converted to the input's dtype by the one rule inputs files follow
(:func:`~snapshot_tool.inputs.files.conform`), which refuses a value that does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from snapshot_tool.dtypes import numpy_dtype
from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.files import conform
from snapshot_tool.models.base import SignatureInfo, TensorSpec

Settings = tuple[tuple[str, str], ...]  # (input name, value as text), in the order given
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_settings(items: Iterable[str]) -> Settings:
    """``NAME=VALUE`` items as (name, value) pairs. The name ends at the first ``=``
    (an input's name never holds one; a string value may)."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise InputsError(f"--set {item!r}: expected NAME=VALUE, e.g. --set keep_prob=1.0")
        if name in dict(pairs):
            raise InputsError(f"--set gives input {name!r} twice")
        pairs.append((name, value))
    return tuple(pairs)


def as_settings(values: Mapping[str, object] | Settings | None) -> Settings:
    """A caller's settings, as a dict of values (the Python API) or parsed pairs, as pairs of
    text: the one form a record carries and stores."""
    if values is None:
        return ()
    if isinstance(values, Mapping):
        return tuple((str(k), _text(v)) for k, v in values.items())
    return tuple((str(k), str(v)) for k, v in values)


def _text(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="surrogateescape")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    return str(value)


def check_names(sigs: Sequence[SignatureInfo], settings: Settings) -> None:
    """Every setting names a scalar input of some signature being recorded: a misspelt name
    must not be ignored while the input it meant is synthesized or read from a file, and a
    batched input takes rows, not one value. (With ``--signature all`` another signature
    may take the same name with rows: it is fed as usual, the setting is not its.)"""
    scalars = scalar_names(sigs)
    for name, _ in settings:
        if name in scalars:
            continue
        batched = [(sig, s) for sig in sigs for s in sig.inputs if s.name == name]
        if batched:
            sig, spec = batched[0]
            raise InputsError(
                f"--set {name}: input {name!r} of signature {sig.name!r} has a sample "
                f"dimension ({spec.describe()}); --set gives scalar (rank-0) inputs only, "
                "batched ones come from --inputs or are synthesized")
        which = (f"signature {sigs[0].name!r} has" if len(sigs) == 1
                 else "the signatures being recorded have")
        raise InputsError(f"--set {name}: {which} no input {name!r}; scalar inputs: "
                          f"{', '.join(sorted(scalars)) or 'none'}")


def scalar_names(sigs: Sequence[SignatureInfo]) -> set[str]:
    """The inputs of ``sigs`` that can be given by value (:func:`takes_scalar`)."""
    return {s.name for sig in sigs for s in sig.inputs if takes_scalar(s)}


def takes_scalar(spec: TensorSpec) -> bool:
    """Whether ``spec`` can be given by value: rank 0, or a rank its signature does not say
    (a TF1 graph without shapes, where only the user knows the placeholder is a setting)."""
    return spec.shape is None or spec.shape == ()


def values_for(sig: SignatureInfo, settings: Settings) -> dict[str, np.ndarray]:
    """The 0-d arrays ``settings`` give to the scalar inputs of ``sig``, once
    :func:`check_names` has passed. Other names are skipped: with ``--signature all`` a
    setting may belong to another signature, which may take the name as a scalar where
    ``sig`` takes it with rows."""
    specs = {s.name: s for s in sig.inputs if takes_scalar(s)}
    return {name: conform(specs[name], _parse(specs[name], text), f"--set {name}={text}")
            for name, text in settings if name in specs}


def describe(settings: Settings) -> str:
    """How the golden's ``inputs_source`` names the settings: ``keep_prob=1.0, ...``. A
    value that is not UTF-8 (bytes given on a command line in another encoding, kept as
    surrogate escapes) is written with backslash escapes: HDF5 stores text as UTF-8."""
    text = ", ".join(f"{k}={v}" for k, v in settings)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _parse(spec: TensorSpec, text: str) -> np.ndarray:
    where = f"--set {spec.name}={text}"
    if spec.dtype == "string":
        return np.asarray(text.encode("utf-8", errors="surrogateescape"), dtype=object)
    if spec.dtype == "bool":
        word = text.strip().lower()
        if word not in _TRUE + _FALSE:
            raise InputsError(f"{where}: input {spec.name!r} is a bool; give true or false")
        return np.asarray(word in _TRUE)
    kind = "float" if spec.dtype == "bfloat16" else numpy_dtype(spec.dtype).kind
    try:
        if kind in ("i", "u"):
            return _integer(spec, text)
        if kind == "c":
            return np.asarray(complex(text.strip()), dtype=np.complex128)
        return np.asarray(float(text), dtype=np.float64)
    except ValueError:
        raise InputsError(f"{where}: {text!r} is not a value of input {spec.name!r} "
                          f"({spec.dtype})") from None


def _integer(spec: TensorSpec, text: str) -> np.ndarray:
    value = int(text.strip(), 0)  # base 0: 0x1F reads as a C or Python user means it
    info = np.iinfo(numpy_dtype(spec.dtype))
    if not info.min <= value <= info.max:
        raise InputsError(f"--set {spec.name}={text}: {value} does not fit input "
                          f"{spec.name!r} ({spec.dtype}, {info.min}..{info.max})")
    return np.asarray(value, dtype=numpy_dtype(spec.dtype))
