"""The one rule for naming an output: ``signature/output`` when a golden holds several
signatures, the bare output name when it holds one.

Config tables (``[outputs."embed/embedding"]``), metric checks and reports all name outputs
through this module, so a name a report shows is a name the config accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

SEPARATOR = "/"


class _HoldsSignatures(Protocol):
    @property
    def signatures(self) -> Mapping[str, object]: ...


def output_prefix(signature: str, multi: bool) -> str:
    """What goes before an output's name: ``"sig/"`` in a golden of several signatures (so
    one output can be set apart), nothing in a single-signature one."""
    return f"{signature}{SEPARATOR}" if multi else ""


def signature_prefix(golden: _HoldsSignatures, signature: str) -> str:
    """:func:`output_prefix` of one of ``golden``'s signatures (a golden, or anything
    holding its signatures by name)."""
    return output_prefix(signature, len(golden.signatures) > 1)


def qualified_name(signature: str, output: str, multi: bool) -> str:
    """An output's name as the config and the reports know it."""
    return output_prefix(signature, multi) + output


def bare(name: str) -> str | None:
    """The output part of a qualified name (``"embed/embedding"`` -> ``"embedding"``), or
    ``None`` when ``name`` is not qualified."""
    return name.split(SEPARATOR, 1)[1] if SEPARATOR in name else None


#: What a graph scope's ``/`` becomes in a name the tool gives a tensor itself (a frozen
#: graph's or a signature-less TFLite model's): ``dense/BiasAdd`` -> ``dense.BiasAdd``.
SCOPE_SEPARATOR = "."


def graph_key(op_name: str) -> str:
    """A storable key for a graph op or tensor name the tool names an input or output after
    (exported signatures keep their own keys, and :func:`unstorable` refuses bad ones)."""
    return op_name.replace(SEPARATOR, SCOPE_SEPARATOR)


def unstorable(name: str) -> str | None:
    """Why ``name`` cannot name an input or output dataset in a golden, or None when it can.

    An HDF5 path separates groups with ``/`` (``head/probs`` would be a dataset ``probs`` in
    a group ``head``, which a reader then takes for a damaged golden) and ``.`` names the
    group itself; TensorFlow allows both as signature keys.
    """
    if name in ("", ".") or set(name) == {"."}:
        return "it names no dataset in HDF5"
    if SEPARATOR in name:
        return f"'{SEPARATOR}' separates groups in HDF5 (and signature from output in reports)"
    return None


def first_unstorable(inputs: Iterable[str], outputs: Iterable[str]
                     ) -> tuple[str, str, str] | None:
    """The first input or output name a golden cannot store, as ``(kind, name, why)``."""
    for kind, names in (("input", inputs), ("output", outputs)):
        for name in names:
            why = unstorable(name)
            if why:
                return kind, name, why
    return None
