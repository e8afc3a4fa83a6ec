"""The one rule for naming an output: ``signature/output`` when a golden holds several
signatures, the bare output name when it holds one.

Config tables (``[outputs."embed/embedding"]``), metric checks and reports all name outputs
through this module, so a name a report shows is a name the config accepts.
"""

from __future__ import annotations

SEPARATOR = "/"


def output_prefix(signature: str, multi: bool) -> str:
    """What goes before an output's name: ``"sig/"`` in a golden of several signatures (so
    one output can be set apart), nothing in a single-signature one."""
    return f"{signature}{SEPARATOR}" if multi else ""


def qualified_name(signature: str, output: str, multi: bool) -> str:
    """An output's name as the config and the reports know it."""
    return output_prefix(signature, multi) + output


def bare(name: str) -> str | None:
    """The output part of a qualified name (``"embed/embedding"`` -> ``"embedding"``), or
    ``None`` when ``name`` is not qualified."""
    return name.split(SEPARATOR, 1)[1] if SEPARATOR in name else None
