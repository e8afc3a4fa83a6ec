"""Number and value formatting shared by the text renderers.
"""

from __future__ import annotations

import math
from typing import Any

from snapshot_tool.diff import TensorDiff


def fmt(v: float | None, spec: str = ".3g") -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "inf"
    if math.isnan(v):
        return "nan"
    return format(v, spec)


def worst(d: TensorDiff) -> str:
    """The worst element as plain text: ``[i,j] golden → candidate``."""
    if d.worst_index is None:
        return "—"
    idx = ",".join(str(i) for i in d.worst_index)
    return f"[{idx}] {_short(d.worst_golden)} → {_short(d.worst_candidate)}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, ".6g")
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"

