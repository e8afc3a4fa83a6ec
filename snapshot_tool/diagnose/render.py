"""Localization and calibration results as JSON documents and plain console lines.

Pure Python (no TensorFlow, no rich): the CLI prints the lines as they are, and tests read
them. JSON has no Infinity or NaN, so non-finite numbers become null, as in the compare
report.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from snapshot_tool.diagnose.divergence import Localization, Step, display_name
from snapshot_tool.diagnose.evidence import format_cost

if TYPE_CHECKING:
    from snapshot_tool.diagnose.calibrate import Calibration

# Version of the localization and calibration JSON documents (bump on a breaking change).
SCHEMA_VERSION = 1


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _num(obj)


def localization_to_json(loc: Localization) -> dict[str, Any]:
    doc: dict[str, Any] = _clean(asdict(loc))
    doc["schema_version"] = SCHEMA_VERSION
    for step in [doc["first"], *doc["path"]]:
        if step is not None:
            step["display_name"] = display_name(step["name"])
    return doc


def _fmt(v: float | None, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf"
    return format(v, spec)


def _growth(prev: float | None, cur: float | None) -> str:
    if prev is None or cur is None or prev == 0 or math.isinf(prev) or math.isinf(cur):
        return ""
    return f"x{cur / prev:.3g}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _where(step: Step) -> str:
    op = step.op_type
    if step.candidate_op_type and step.candidate_op_type != step.op_type:
        op = f"{step.op_type} -> {step.candidate_op_type} in the candidate"
    layer = f", layer {step.layer}" if step.layer else ""
    return f"{display_name(step.name)} ({op}{layer})"


def localization_lines(loc: Localization) -> list[str]:
    """What ``compare --localize`` prints: one line when there is nothing to show, else the
    first diverging tensor, the changed parameters and the error along the path."""
    head = f"localize {loc.output}" if loc.output else "localize"
    if loc.status != "localized" or loc.first is None:
        return [f"{head}: not localized: {loc.reason}"]
    rows = f"rows {loc.rows[0]}..{loc.rows[1]}" if loc.rows else "one batch"
    first = loc.first
    lines = [
        f"{head} ({rows}; golden's model {loc.golden_model} [{loc.golden_kind}], candidate "
        f"{loc.candidate_model} [{loc.candidate_kind}])",
        f"first diverging tensor: {_where(first)}",
        f"  max |c-g| {_fmt(first.max_abs_diff)} = {_fmt(first.relative_error)} of its "
        f"magnitude, {_fmt(first.ratio)} x the output tolerance scaled to it "
        f"(atol {loc.atol:g}, rtol {loc.rtol:g})",
    ]
    if loc.changed_parameters:
        lines.append(f"changed parameters: {', '.join(loc.changed_parameters)}")
    lines.append("error along the path to the output:")
    table = [["depth", "tensor", "op", "layer", "rel. error", "x tol", "growth"]]
    prev: float | None = None
    for depth, s in enumerate(loc.path):
        table.append([str(depth), display_name(s.name), s.op_type, s.layer or "-",
                      _fmt(s.relative_error), _fmt(s.ratio), _growth(prev, s.relative_error)])
        if s.relative_error is not None:
            prev = s.relative_error
    lines.extend(_table(table))
    lines.extend(f"note: {n}" for n in loc.notes)
    return lines


# --- calibrate -----------------------------------------------------------------------------


def calibration_to_json(cal: Calibration) -> dict[str, Any]:
    doc: dict[str, Any] = _clean({
        "schema_version": SCHEMA_VERSION,
        "golden": cal.golden,
        "margin": cal.margin,
        "consistent": cal.consistent,
        "candidates": [asdict(c) for c in cal.candidates],
        "outputs": [asdict(t) for t in cal.tolerances],
        "metrics": [asdict(m) for m in cal.metrics],
        "cost": [asdict(r) for r in cal.cost],
        "metric_effects": [asdict(m) for m in cal.metric_effects],
        "config": cal.toml,
        "written_to": cal.written_to,
        "warnings": list(cal.warnings),
    })
    return doc


def calibration_lines(cal: Calibration) -> list[str]:
    """The error table, the verdicts under the proposal and the cost table."""
    lines = [f"calibrate {cal.golden}: error per output and candidate"]
    table = [["output", "candidate", "max |c-g|", "p99.9 |c-g|", "max rel", "p99.9 rel"]]
    for t in cal.tolerances:
        for s in t.stats:
            table.append([t.output, s.candidate, _fmt(s.max_abs), _fmt(s.p999_abs),
                          _fmt(s.max_rel), _fmt(s.p999_rel)])
    if len(table) > 1:
        lines.extend(_table(table))
    else:
        lines.append("  every candidate matched every output exactly")
    lines.extend(_effects(cal))
    lines.append(f"proposal (margin {cal.margin:g}x) checked the way compare judges:")
    for c in cal.candidates:
        role = "acceptable" if c.accepted else "rejected"
        verdict = "passes" if c.passed else "fails"
        ok = c.passed == c.accepted
        why = f": {'; '.join(c.failures[:3])}" if c.failures else ""
        lines.append(f"  {'ok' if ok else 'PROBLEM'}  {c.label} {c.path} ({role}) {verdict}"
                     f"{why}")
    lines.extend(format_cost(cal.cost))
    lines.extend(f"warning: {w}" for w in cal.warnings)
    return lines


def _effects(cal: Calibration) -> list[str]:
    if not cal.metric_effects:
        return []
    labels = [c.label for c in cal.candidates]
    table = [["output", "metric", "golden", *labels]]
    for m in cal.metric_effects:
        got = dict(m.values)
        table.append([m.output, m.metric, _fmt(m.golden, ".4g"),
                      *(_fmt(got.get(label), ".4g") for label in labels)])
    return ["effect on metrics (agreement metrics have no golden value):", *_table(table)]
