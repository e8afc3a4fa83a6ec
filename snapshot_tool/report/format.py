"""Number and value formatting shared by the text renderers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snapshot_tool.diff import TensorDiff

if TYPE_CHECKING:
    from snapshot_tool.latency.gate import LatencyCheck


def fmt(v: float | None, spec: str = ".3g") -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
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
    if isinstance(v, complex):
        return format_complex(v)
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"



def format_complex(v: complex, spec: str = ".6g") -> str:
    """``0.296108+2.22985j``: both parts to ``spec``, so a change of either shows (numpy's
    text of a complex element is too long for a table cell)."""
    sign = "-" if math.copysign(1.0, v.imag) < 0 else "+"
    return f"{fmt(v.real, spec)}{sign}{fmt(abs(v.imag), spec)}j"


def latency_clocks(c: LatencyCheck) -> str:
    """``wall 1.02x / CPU 0.99x``: the candidate over the baseline on both clocks (stored
    mode: against the samples as recorded), whichever the verdict was judged on; after a
    self-check also the plain stored gate's ratio, so its bias stays in view."""
    clocks = f"wall {fmt(c.wall_ratio, '.3f')} / CPU {fmt(c.cpu_ratio, '.3f')}"
    if c.machine_factor is None:
        return clocks
    return f"{clocks}; plain stored {fmt(c.uncorrected_ratio, '.3f')}"
