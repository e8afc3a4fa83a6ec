"""Renderers of one :class:`ComparisonResult`: rich console tables and a JSON document.

Renderers build values (rich renderables, dicts, strings); only the CLI prints them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snapshot_tool.diff import TensorDiff

if TYPE_CHECKING:
    from rich.console import RenderableType

    from snapshot_tool.api import ComparisonResult

JSON_SCHEMA_VERSION = 1


def _num(v: float | None) -> float | None:
    """JSON has no NaN or Infinity; strict parsers reject them, so they become null."""
    if v is None or not math.isfinite(v):
        return None
    return v


def _fmt(v: float | None, spec: str = ".3g") -> str:
    if v is None:
        return "—"
    if math.isinf(v):
        return "inf"
    if math.isnan(v):
        return "nan"
    return format(v, spec)


def _value(v: Any) -> Any:
    if isinstance(v, float):
        return _num(v)
    return v


def diff_to_json(d: TensorDiff) -> dict[str, Any]:
    return {
        "name": d.name,
        "signature": d.signature,
        "passed": d.passed,
        "status": d.status,
        "golden_dtype": d.golden_dtype or None,
        "candidate_dtype": d.candidate_dtype or None,
        "golden_shape": list(d.golden_shape) if d.golden_shape is not None else None,
        "candidate_shape": list(d.candidate_shape) if d.candidate_shape is not None else None,
        "size": d.size,
        "max_abs_diff": _num(d.max_abs_diff),
        "mean_abs_diff": _num(d.mean_abs_diff),
        "max_rel_diff": _num(d.max_rel_diff),
        "mismatch_count": d.mismatch_count,
        "mismatch_fraction": d.mismatch_fraction,
        "worst_index": list(d.worst_index) if d.worst_index is not None else None,
        "worst_golden": _value(d.worst_golden),
        "worst_candidate": _value(d.worst_candidate),
        "atol": d.atol,
        "rtol": d.rtol,
        "max_mismatch_fraction": d.max_mismatch_fraction,
        "nan_equal": d.nan_equal,
        "tolerance_source": d.tolerance_source,
        "required_atol": _num(d.required_atol),
        "spread": _num(d.spread),
        "message": d.message,
    }


def to_json(result: ComparisonResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "passed": result.passed,
        "golden": result.golden,
        "model": result.model,
        "signatures": list(result.signatures),
        "config": result.config_source,
        "outputs": [diff_to_json(d) for d in result.outputs],
        "warnings": list(result.warnings),
    }
    return doc


def _verdict(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[bold red]FAIL[/]"


def _worst(d: TensorDiff) -> str:
    if d.worst_index is None:
        return "—"
    idx = ",".join(str(i) for i in d.worst_index)
    return f"[{idx}] {_short(d.worst_golden)} → {_short(d.worst_candidate)}"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return _fmt(v, ".6g")
    s = str(v)
    return s if len(s) <= 16 else s[:15] + "…"


def _tol(d: TensorDiff) -> str:
    if (d.exact and d.golden_dtype in ("string", "bool")) or (d.exact and d.atol == 0):
        base = "exact"
    else:
        base = f"atol {d.atol:.2g} rtol {d.rtol:.2g}"
    if d.max_mismatch_fraction:
        base += f" ≤{d.max_mismatch_fraction:.2%}"
    if d.spread:
        base += f" +spread {d.spread:.2g}"
    return base


def outputs_table(result: ComparisonResult) -> RenderableType:
    from rich.table import Table

    multi = len(result.signatures) > 1
    table = Table(title="Outputs", title_justify="left", header_style="bold")
    if multi:
        table.add_column("signature")
    for col, justify in (("output", "left"), ("verdict", "left"), ("mismatched", "right"),
                         ("max abs", "right"), ("max rel", "right"),
                         ("worst: golden → candidate", "left"), ("tolerance", "left"),
                         ("atol to pass", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for d in result.outputs:
        if d.status in ("ok", "mismatch"):
            verdict = _verdict(d.passed)
            mism = f"{d.mismatch_count}/{d.size} ({d.mismatch_fraction:.1%})"
            row = [d.name, verdict, mism, _fmt(d.max_abs_diff), _fmt(d.max_rel_diff),
                   _worst(d), _tol(d), _fmt(d.required_atol)]
        else:
            label = d.status.replace("_", " ").upper()
            row = [d.name, f"[bold red]{label}[/]", "—", "—", "—", d.message, "—", "—"]
        table.add_row(*([d.signature] if multi else []), *row)
    return table


def ceil_sig(x: float, digits: int = 3) -> float:
    """Round ``x`` *up* to ``digits`` significant digits: a suggested limit rounded down
    would fail the very comparison it is meant to accept."""
    if x <= 0 or not math.isfinite(x):
        return x
    exp = math.floor(math.log10(x)) - digits + 1
    scaled = x / 10.0**exp
    # Guard against 0.0995 / 1e-4 = 995.0000000001 being pushed up to 996.
    up = math.ceil(scaled - 1e-9)
    return float(f"{up * 10.0**exp:.{digits}g}")


def hints(result: ComparisonResult) -> list[str]:
    """Exact config lines that would accept each failing output, if the change is intended."""
    lines: list[str] = []
    for d in result.outputs:
        if d.status == "mismatch" and d.required_atol is not None \
                and math.isfinite(d.required_atol):
            lines.append(f'[outputs."{d.name}"]\natol = {ceil_sig(d.required_atol):g}')
        elif d.status == "mismatch":
            lines.append(f'[outputs."{d.name}"]\nmax_mismatch_fraction = '
                         f"{math.ceil(d.mismatch_fraction * 1000) / 1000:g}")
    return lines


def console_renderables(result: ComparisonResult) -> list[RenderableType]:
    out: list[RenderableType] = [
        f"[bold]golden[/] {result.golden}   [bold]candidate[/] {result.model}",
        outputs_table(result),
    ]
    for w in result.warnings:
        out.append(f"[yellow]warning:[/] {w}")
    fails = [d for d in result.outputs if not d.passed]
    if fails:
        out.append(f"[bold red]FAIL[/]: {len(fails)} of {len(result.outputs)} outputs differ "
                   "beyond tolerance")
        h = hints(result)
        if h:
            from rich.markup import escape

            out.append("If the change is intended, accept it in snapshot.toml:\n"
                       + escape("\n".join(h))
                       + "\nor re-record the golden from a model you trust with "
                       f"`snapshot-tool record MODEL --golden {escape(result.golden)} --force`.")
    elif result.passed:
        out.append(f"[bold green]PASS[/]: {len(result.outputs)} outputs within tolerance")
    return out
