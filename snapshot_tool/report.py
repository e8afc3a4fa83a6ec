"""Renderers of one :class:`ComparisonResult`: rich console tables, JSON, JUnit XML and
Markdown.

Renderers build values (rich renderables, dicts, strings); only the CLI prints them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snapshot_tool.diff import TensorDiff
from snapshot_tool.metrics import MetricCheck, round_sig

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
    if isinstance(v, complex):
        return [_num(v.real), _num(v.imag)]  # JSON has no complex numbers
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
        "metrics": [metric_to_json(m) for m in result.metrics],
        "latency": latency_to_json(result),
        "warnings": list(result.warnings),
    }
    return doc


def metric_to_json(m: MetricCheck) -> dict[str, Any]:
    return {
        "output": m.output,
        "name": m.name,
        "kind": m.kind,
        "golden": _num(m.golden),
        "candidate": _num(m.candidate),
        "delta": _num(m.delta),
        "direction": m.direction,
        "limit": m.limit or None,
        "passed": m.passed,
        "note": m.note,
    }


def latency_to_json(result: ComparisonResult) -> dict[str, Any] | None:
    if not result.latency:
        return None
    return {
        "mode": result.latency_mode,
        "verdict": result.latency_verdict,
        "passed": result.latency_passed,
        "strict": result.latency_strict,
        "baseline_model": result.baseline_model,
        "batches": [{
            "signature": c.signature or None,
            "batch_size": c.batch_size,
            "verdict": c.verdict,
            "ratio": _num(c.ratio),
            "ci_low": _num(c.ci_low),
            "ci_high": _num(c.ci_high),
            "p_value": _num(c.p_value),
            "limit": _num(c.limit),
            "rounds": c.rounds,
            "baseline_p50_ms": _num(c.baseline.p50 / 1e6),
            "baseline_p90_ms": _num(c.baseline.p90 / 1e6),
            "candidate_p50_ms": _num(c.candidate.p50 / 1e6),
            "candidate_p90_ms": _num(c.candidate.p90 / 1e6),
            "note": c.note,
        } for c in result.latency],
    }


_LATENCY_STYLE = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]",
                  "inconclusive": "[yellow]INCONCLUSIVE[/]", "advisory": "[cyan]ADVISORY[/]"}


def latency_table(result: ComparisonResult) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    mode = "side by side" if result.latency_mode == "side_by_side" else "vs stored baseline"
    multi = len(result.signatures) > 1
    table = Table(title=f"Latency ({mode})", title_justify="left", header_style="bold")
    if multi:
        table.add_column("signature", no_wrap=True)
    for col in ("batch", "baseline p50/p90 ms", "candidate p50/p90 ms", "ratio [95% CI]",
                "limit", "p", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right",
                         no_wrap=col in ("batch", "verdict"))
    for c in result.latency:
        table.add_row(
            *([escape(c.signature)] if multi else []),
            str(c.batch_size),
            f"{c.baseline.p50 / 1e6:.3f} / {c.baseline.p90 / 1e6:.3f}",
            f"{c.candidate.p50 / 1e6:.3f} / {c.candidate.p90 / 1e6:.3f}",
            f"{_fmt(c.ratio, '.3f')} [{_fmt(c.ci_low, '.3f')}, {_fmt(c.ci_high, '.3f')}]",
            f"≤ {c.limit:.2f}", _fmt(c.p_value, ".2g"), _LATENCY_STYLE.get(c.verdict, c.verdict))
    return table


def metrics_table(result: ComparisonResult) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Metrics", title_justify="left", header_style="bold")
    for col, justify in (("output", "left"), ("metric", "left"), ("golden", "right"),
                         ("candidate", "right"), ("change", "right"), ("limit", "left"),
                         ("verdict", "left")):
        table.add_column(col, justify=justify,  # type: ignore[arg-type]
                         no_wrap=col in ("output", "metric", "verdict"))
    for m in result.metrics:
        if not m.limit:
            verdict = "[dim]info[/]" if m.passed else "[bold red]FAIL[/]"
        else:
            verdict = _verdict(m.passed)
        change = "—" if m.delta is None else f"{m.delta:+.4g}"
        name = m.name + ("" if m.direction == "higher" else " ↓")
        table.add_row(escape(m.output), name, _fmt(m.golden, ".4g"), _fmt(m.candidate, ".4g"),
                      change, escape(m.limit) or "[dim]none[/]", verdict)
    return table


def metric_notes(result: ComparisonResult) -> list[str]:
    """Notes of checks that failed or carry a caveat, printed under the table where they
    have the full width (a fix such as "set max_relative_drop = 0.04" must not be cut)."""
    from rich.markup import escape

    return [f"[yellow]{escape(m.output)}:{m.name}:[/] {escape(m.note)}"
            for m in result.metrics if m.note and (not m.passed or m.limit)]


def _verdict(passed: bool) -> str:
    return "[green]PASS[/]" if passed else "[bold red]FAIL[/]"


def _worst(d: TensorDiff) -> str:
    if d.worst_index is None:
        return "—"
    from rich.markup import escape

    idx = ",".join(str(i) for i in d.worst_index)
    return escape(f"[{idx}] {_short(d.worst_golden)} → {_short(d.worst_candidate)}")


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
    from rich.markup import escape
    from rich.table import Table

    multi = len(result.signatures) > 1
    table = Table(title="Outputs", title_justify="left", header_style="bold")
    if multi:
        table.add_column("signature", no_wrap=True)
    for col, justify in (("output", "left"), ("verdict", "left"), ("mismatched", "right"),
                         ("max abs", "right"), ("max rel", "right"),
                         ("worst: golden → candidate", "left"), ("tolerance", "left"),
                         ("atol to pass", "right")):
        # Names and verdicts never fold: two outputs cut to "outpu…" cannot be told apart.
        table.add_column(col, justify=justify,  # type: ignore[arg-type]
                         no_wrap=col in ("output", "verdict"))
    for d in result.outputs:
        if d.status in ("ok", "mismatch"):
            verdict = _verdict(d.passed)
            mism = f"{d.mismatch_count}/{d.size} ({d.mismatch_fraction:.1%})"
            row = [escape(d.name), verdict, mism, _fmt(d.max_abs_diff), _fmt(d.max_rel_diff),
                   _worst(d), _tol(d), _fmt(d.required_atol)]
        else:
            label = d.status.replace("_", " ").upper()
            row = [escape(d.name), f"[bold red]{label}[/]", "—", "—", "—", escape(d.message),
                   "—", "—"]
        table.add_row(*([escape(d.signature)] if multi else []), *row)
    return table


def hints(result: ComparisonResult) -> list[str]:
    """Exact config lines that would accept each failing output, if the change is intended."""
    lines: list[str] = []
    for d in result.outputs:
        if d.status == "mismatch" and d.required_atol is not None \
                and math.isfinite(d.required_atol):
            lines.append(f'[outputs."{d.name}"]\natol = {round_sig(d.required_atol, up=True):g}')
        elif d.status == "mismatch" and d.mismatch_fraction < 0.5:
            # Only as a hint when the bad elements are a minority: allowing most of a tensor
            # to differ is not accepting a change, it is switching the check off.
            lines.append(f'[outputs."{d.name}"]\nmax_mismatch_fraction = '
                         f"{math.ceil(d.mismatch_fraction * 1000) / 1000:g}")
    return lines


def console_renderables(result: ComparisonResult) -> list[RenderableType]:
    from rich.markup import escape

    out: list[RenderableType] = [
        f"[bold]golden[/] {escape(result.golden)}   [bold]candidate[/] {escape(result.model)}",
        outputs_table(result),
    ]
    if result.metrics:
        out.append(metrics_table(result))
        out.extend(metric_notes(result))
    if result.latency:
        out.append(latency_table(result))
        for c in result.latency:
            if c.note and c.verdict != "pass":
                out.append(f"[yellow]latency batch {c.batch_size}:[/] {escape(c.note)}")
    for w in result.warnings:
        out.append(f"[yellow]warning:[/] {escape(w)}")
    if result.latency_verdict == "fail":
        out.append("[bold red]FAIL[/]: latency regressed beyond the limit (\\[latency] in the "
                   "config sets it)")
    elif not result.latency_passed:
        out.append("[bold red]FAIL[/]: latency inconclusive, and --latency-strict treats that "
                   "as a failure")
    fails = [d for d in result.outputs if not d.passed]
    config_name = result.config_source or "snapshot.toml"
    metric_fails = [m for m in result.metrics if not m.passed]
    if metric_fails:
        names = ", ".join(f"{m.output}:{m.name}" for m in metric_fails)
        out.append(f"[bold red]FAIL[/]: {len(metric_fails)} metric check(s) failed ({names}); "
                   "limits are set in the config's \\[metrics] tables")
    if fails:
        kinds = sorted({d.status.replace("_", " ") for d in fails})
        out.append(f"[bold red]FAIL[/]: {len(fails)} of {len(result.outputs)} output(s) failed "
                   f"({', '.join(kinds)})")
        h = hints(result)
        if "tool.snapshot-tool" in config_name:
            # In pyproject.toml the tables live under [tool.snapshot-tool].
            h = [line.replace("[outputs.", "[tool.snapshot-tool.outputs.") for line in h]
        if h:
            out.append(f"If the change is intended, accept it in {escape(config_name)}:\n"
                       + escape("\n".join(h))
                       + "\nor re-record the golden from a model you trust with "
                       f"`snapshot-tool record MODEL --golden {escape(result.golden)} --force`.")
    if result.passed:
        out.append(f"[bold green]PASS[/]: {len(result.outputs)} output(s) within tolerance"
                   + (f", {sum(1 for m in result.metrics if m.limit)} metric limit(s) met"
                      if any(m.limit for m in result.metrics) else "")
                   + (f", latency {result.latency_verdict}" if result.latency else ""))
    return out


def to_junit(result: ComparisonResult) -> str:
    """JUnit XML: one test case per output, metric check and latency batch, so CI systems
    that read JUnit show each regression by name."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="snapshot-tool")
    cases: list[tuple[str, str, bool, str]] = []
    for d in result.outputs:
        detail = d.message or (f"{d.mismatch_count}/{d.size} elements outside atol {d.atol:g} "
                               f"rtol {d.rtol:g}; max abs {_fmt(d.max_abs_diff)}, worst "
                               f"{_worst(d)}")
        cases.append(("outputs", f"{d.signature}/{d.name}" if d.signature else d.name,
                      d.passed, detail))
    for m in result.metrics:
        cases.append(("metrics", f"{m.output}/{m.name}", m.passed,
                      f"golden {_fmt(m.golden, '.6g')} candidate {_fmt(m.candidate, '.6g')} "
                      f"limit {m.limit or 'none'}. {m.note}".strip()))
    for c in result.latency:
        failed = c.verdict == "fail" or (result.latency_strict and c.verdict == "inconclusive")
        cases.append(("latency", f"{c.signature}/batch_{c.batch_size}" if c.signature
                      else f"batch_{c.batch_size}", not failed,
                      f"{c.verdict}: ratio {_fmt(c.ratio)} [{_fmt(c.ci_low)}, "
                      f"{_fmt(c.ci_high)}] limit {c.limit:.2f}. {c.note}".strip()))
    failures = 0
    for group, name, passed, detail in cases:
        case = ET.SubElement(suite, "testcase", classname=f"snapshot_tool.{group}", name=name)
        if not passed:
            failures += 1
            ET.SubElement(case, "failure", message=detail.splitlines()[0][:200]).text = detail
        elif detail:
            ET.SubElement(case, "system-out").text = detail
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") \
        + "\n"


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: ComparisonResult) -> str:
    """A Markdown summary for pull-request comments and CI job summaries."""
    verdict = "✅ PASS" if result.passed else "❌ FAIL"
    lines = [f"## snapshot-tool: {verdict}", "",
             f"golden `{result.golden}` · candidate `{result.model}`", "",
             "| output | verdict | mismatched | max abs | max rel | atol to pass |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for d in result.outputs:
        name = f"{d.signature}/{d.name}" if len(result.signatures) > 1 else d.name
        if d.status in ("ok", "mismatch"):
            lines.append(f"| {_md(name)} | {'pass' if d.passed else '**FAIL**'} | "
                         f"{d.mismatch_count}/{d.size} | {_fmt(d.max_abs_diff)} | "
                         f"{_fmt(d.max_rel_diff)} | {_fmt(d.required_atol)} |")
        else:
            lines.append(f"| {_md(name)} | **{d.status.upper()}** | {_md(d.message)} | | | |")
    if result.metrics:
        lines += ["", "| output | metric | golden | candidate | change | limit | verdict |",
                  "| --- | --- | ---: | ---: | ---: | --- | --- |"]
        for m in result.metrics:
            v = ("pass" if m.limit else "info") if m.passed else "**FAIL**"
            change = "" if m.delta is None else f"{m.delta:+.4g}"
            lines.append(f"| {_md(m.output)} | {m.name} | {_fmt(m.golden, '.4g')} | "
                         f"{_fmt(m.candidate, '.4g')} | {change} | {_md(m.limit)} | {v} |")
    if result.latency:
        lines += ["", f"Latency ({result.latency_mode}):", "",
                  "| batch | baseline p50 ms | candidate p50 ms | ratio [95% CI] | limit | "
                  "verdict |", "| ---: | ---: | ---: | --- | ---: | --- |"]
        for c in result.latency:
            label = f"{c.signature}/{c.batch_size}" if len(result.signatures) > 1 \
                else str(c.batch_size)
            lines.append(f"| {label} | {c.baseline.p50 / 1e6:.3f} | "
                         f"{c.candidate.p50 / 1e6:.3f} | {_fmt(c.ratio)} [{_fmt(c.ci_low)}, "
                         f"{_fmt(c.ci_high)}] | {c.limit:.2f} | {c.verdict} |")
    for w in result.warnings:
        lines += ["", f"> warning: {_md(w)}"]
    return "\n".join(lines) + "\n"
