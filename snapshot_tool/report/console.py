"""Rich console tables and verdict lines for ``compare``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snapshot_tool.diff import TensorDiff
from snapshot_tool.metrics.thresholds import round_sig
from snapshot_tool.report.format import fmt, latency_clocks, worst

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from rich.console import RenderableType

    from snapshot_tool.accept import AcceptPlan
    from snapshot_tool.api import ComparisonResult
    from snapshot_tool.models.base import SignatureInfo, TensorSpec
    from snapshot_tool.status import GoldenStatus


_LATENCY_STYLE = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]",
                  "inconclusive": "[yellow]INCONCLUSIVE[/]", "advisory": "[cyan]ADVISORY[/]"}


def latency_table(result: ComparisonResult) -> RenderableType:
    from rich.markup import escape
    from rich.table import Table

    mode = "side by side" if result.latency_mode == "side_by_side" else "vs stored baseline"
    table = Table(title=f"Latency ({mode})", title_justify="left", header_style="bold")
    for col in ("batch", "baseline p50/p90 ms", "candidate p50/p90 ms", "ratio [95% CI]",
                "judged on", "wall / CPU ratio", "limit", "p", "verdict"):
        table.add_column(col, justify="left" if col in ("verdict", "judged on") else "right",
                         no_wrap=col in ("batch", "verdict"))
    for c in result.latency:
        table.add_row(
            escape(result.qualified(c.signature, str(c.batch_size))),
            f"{c.baseline.p50 / 1e6:.3f} / {c.baseline.p90 / 1e6:.3f}",
            f"{c.candidate.p50 / 1e6:.3f} / {c.candidate.p90 / 1e6:.3f}",
            f"{fmt(c.ratio, '.3f')} [{fmt(c.ci_low, '.3f')}, {fmt(c.ci_high, '.3f')}]",
            c.basis_label, latency_clocks(c),
            f"≤ {c.limit:.2f}", fmt(c.p_value, ".2g"), _LATENCY_STYLE.get(c.verdict, c.verdict))
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
        table.add_row(escape(m.output), name, fmt(m.golden, ".4g"), fmt(m.candidate, ".4g"),
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

    table = Table(title="Outputs", title_justify="left", header_style="bold")
    for col, justify in (("output", "left"), ("verdict", "left"), ("mismatched", "right"),
                         ("max abs", "right"), ("max rel", "right"),
                         ("worst: golden → candidate", "left"), ("tolerance", "left"),
                         ("atol to pass", "right")):
        # Names and verdicts never fold: two outputs cut to "outpu…" cannot be told apart.
        table.add_column(col, justify=justify,  # type: ignore[arg-type]
                         no_wrap=col in ("output", "verdict"))
    for d in result.outputs:
        name = result.qualified(d.signature, d.name)
        if d.status in ("ok", "mismatch") or d.max_abs_diff is not None:
            # A float precision change carries numbers too (compared in the wider dtype).
            verdict = _verdict(d.passed) if d.status != "dtype_changed" else \
                f"[bold red]DTYPE CHANGED[/] {escape(d.golden_dtype)}→{escape(d.candidate_dtype)}"
            mism = f"{d.mismatch_count}/{d.size} ({d.mismatch_fraction:.1%})"
            row = [escape(name), verdict, mism, fmt(d.max_abs_diff), fmt(d.max_rel_diff),
                   escape(worst(d)), _tol(d), fmt(d.required_atol)]
        else:
            label = d.status.replace("_", " ").upper()
            row = [escape(name), f"[bold red]{label}[/]", "—", "—", "—", escape(d.message),
                   "—", "—"]
        table.add_row(*row)
    return table


def hints(result: ComparisonResult) -> list[str]:
    """Exact config lines that would accept each failing output, if the change is intended."""
    lines: list[str] = []
    for d in result.outputs:
        if d.status == "dtype_changed" and d.max_abs_diff is not None:
            line = f'[outputs."{d.name}"]\nallow_dtype_change = true'
            if d.mismatch_count and d.required_atol is not None \
                    and math.isfinite(d.required_atol):
                line += f"\natol = {round_sig(d.required_atol, up=True):g}"
            lines.append(line)
        elif d.status == "mismatch" and d.required_atol is not None \
                and math.isfinite(d.required_atol):
            lines.append(f'[outputs."{d.name}"]\natol = {round_sig(d.required_atol, up=True):g}')
        elif d.status == "mismatch" and d.mismatch_fraction < 0.5:
            # Only as a hint when the bad elements are a minority: allowing most of a tensor
            # to differ is not accepting a change, it is switching the check off.
            lines.append(f'[outputs."{d.name}"]\nmax_mismatch_fraction = '
                         f"{math.ceil(d.mismatch_fraction * 1000) / 1000:g}")
    return lines


def console_renderables(result: ComparisonResult) -> list[RenderableType]:
    """The whole console report: tables, notes, warnings, then :func:`verdict_lines`."""
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
    return out + verdict_lines(result)


def rerecord_command(golden: str) -> str:
    """The record command that replaces ``golden``. A directory is a sharded golden
    (``G.h5.d/``), which only ``--runner beam`` writes; an in-process record refuses it."""
    from pathlib import Path

    beam = " --runner beam" if Path(golden).is_dir() else ""
    return f"snapshot-tool record MODEL --golden {golden} --force{beam}"


def verdict_lines(result: ComparisonResult) -> list[RenderableType]:
    """The verdict and what to do about it; all that ``compare --quiet`` prints."""
    from rich.markup import escape

    out: list[RenderableType] = []
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
                       f"`{escape(rerecord_command(result.golden))}`.")
    if result.obtained:
        run = f" by this run ({escape(result.obtained_run)})" if result.obtained_run else ""
        out.append(f"[bold]obtained golden[/] written to {escape(result.obtained)}{run}: review it "
                   "(compare --html shows the differences), then promote it with "
                   f"`snapshot-tool accept {escape(result.obtained)} --reason \"...\"` "
                   "(--only 'NAME*' for some outputs)")
    if result.passed:
        out.append(f"[bold green]PASS[/]: {len(result.outputs)} output(s) within tolerance"
                   + (f", {sum(1 for m in result.metrics if m.limit)} metric limit(s) met"
                      if any(m.limit for m in result.metrics) else "")
                   + (f", latency {result.latency_verdict}" if result.latency else ""))
    return out


def accept_renderables(plan: AcceptPlan, *, dry_run: bool) -> list[RenderableType]:
    """What ``accept`` changes (or would change, with ``--dry-run``)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{'Would take' if dry_run else 'Took'} from {escape(str(plan.obtained))}",
                  title_justify="left", header_style="bold")
    for col in ("output", "change", "max |Δ|", "detail"):
        table.add_column(col, no_wrap=col == "output")
    style = {"changed": "[yellow]changed[/]", "added": "[green]added[/]",
             "removed": "[red]removed[/]", "unchanged": "[dim]unchanged[/]"}
    for c in plan.selected:
        table.add_row(escape(c.name), style[c.kind], fmt(c.max_abs_diff), escape(c.detail))
    out: list[RenderableType] = [table]
    # Which candidate, and which compare run wrote the file: the run its report named, or
    # another compare of the same golden that replaced the file since.
    origin = [x for x in (plan.obtained_model and f"the candidate {plan.obtained_model}",
                          plan.obtained_run and f"written by compare run {plan.obtained_run}")
              if x]
    if origin:
        out.append(f"obtained golden of {escape(', '.join(origin))}")
    if plan.metrics:
        mt = Table(title="Recorded metrics", title_justify="left", header_style="bold")
        for col in ("output", "metric", "golden", "obtained"):
            mt.add_column(col)
        for m in plan.metrics:
            mt.add_row(escape(m.output), escape(m.metric), fmt(m.golden, ".6g"),
                       fmt(m.obtained, ".6g"))
        out.append(mt)
    if plan.kept:
        out.append(f"kept as they are: {escape(', '.join(plan.kept))}")
    n = len(plan.changes)
    if dry_run:
        out.append(f"[bold]dry run[/]: {n} output(s) would change in {escape(str(plan.golden))}; "
                   "nothing was written")
    else:
        out.append(f"[bold green]accepted[/] {n} changed output(s) into "
                   f"{escape(str(plan.golden))}"
                   + ("" if plan.whole else f"; {escape(str(plan.obtained))} kept for the rest"))
        out.append("latency baselines were kept from the golden; re-record it "
                   "(`snapshot-tool record --force`) to time the new model")
    return out


def status_renderables(found: Sequence[GoldenStatus], root: Path, *, only_stale: bool = False
                       ) -> list[RenderableType]:
    """The ``status`` table; ``only_stale`` keeps the goldens that need attention."""
    from rich.markup import escape
    from rich.table import Table

    rows = [g for g in found if g.stale or not only_stale]
    if not rows:
        return [] if only_stale else [f"no goldens under {escape(str(root))}"]
    table = Table(title=f"Goldens under {escape(str(root))}", title_justify="left",
                  header_style="bold")
    for col in ("golden", "format", "age", "model", "sha256", "state", "pending", "accepts"):
        # Short fixed-width columns never fold; paths and problems may.
        table.add_column(col, no_wrap=col in ("format", "age", "sha256", "accepts"),
                         overflow="fold")
    state = {"matches": "[green]matches[/]", "changed": "[yellow]model changed[/]",
             "missing": "[red]model missing[/]", "unknown": "[dim]unknown[/]"}
    for g in rows:
        name = escape(_relative(g.path, root))
        if g.problem:
            table.add_row(name, "—", "—", "—", "—", f"[red]unreadable[/]: {escape(g.problem)}",
                          "", "")
            continue
        table.add_row(name, f"v{g.format_version}", _age(g.age_days), escape(g.model_path),
                      g.model_digest[:12], state[g.model_state],
                      "[yellow]obtained[/]" if g.obtained else "",
                      str(g.accepted) if g.accepted else "")
    return [table]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _age(days: float | None) -> str:
    if days is None:
        return "—"
    if days >= 1:
        return f"{days:.0f} d"
    hours = days * 24
    return f"{hours:.0f} h" if hours >= 1 else f"{hours * 60:.0f} min"


# --- show and inspect ------------------------------------------------------------------------


def show_renderables(info: Mapping[str, Any]) -> list[RenderableType]:
    """What ``show`` prints of :func:`snapshot_tool.golden.describe.describe_golden`'s dict."""
    from rich.markup import escape
    from rich.table import Table

    from snapshot_tool.golden import schema as s

    # The root attributes as stored (None when an old golden lacks one).
    attr = info["attrs"].get
    items: list[RenderableType] = [
        f"[bold]{escape(str(info['path']))}[/]  format v{attr(s.FORMAT_VERSION_ATTR)}  "
        f"recorded {attr(s.CREATED)} by snapshot-tool {attr(s.TOOL_VERSION)}",
        f"model {escape(str(attr(s.MODEL_PATH)))}  "
        f"(sha256 {str(attr(s.MODEL_DIGEST))[:12]}…)"
        f"  seed {attr(s.SEED)}  samples {attr(s.NUM_SAMPLES)}  "
        f"batch {attr(s.BATCH_SIZE)}  "
        f"inputs {escape(str(attr(s.INPUTS_SOURCE)))}"]
    for sig, entry in info["signatures"].items():
        table = Table(title=f"signature {escape(sig)}", title_justify="left",
                      header_style="bold")
        for col in ("kind", "name", "dtype", "shape", "sha256"):
            table.add_column(col)
        for kind in ("inputs", "outputs"):
            for t in entry[kind]:
                # A scalar input (a setting fed with every batch) shows its value.
                shape = str(tuple(t["shape"])) + (f" = {t['value']}" if "value" in t else "")
                table.add_row(kind[:-1], escape(t["name"]), t["dtype"], escape(shape),
                              t["sha256"][:12])
        if "labels" in entry:
            lab = entry["labels"]
            table.add_row("labels", escape(lab["source"]), lab["dtype"], str(tuple(lab["shape"])),
                          lab.get("sha256", "")[:12])
        items.append(table)
        items.extend(_show_extras(entry))
    return items


def _show_extras(entry: Mapping[str, Any]) -> list[RenderableType]:
    from rich.table import Table

    from snapshot_tool.golden import schema as s

    items: list[RenderableType] = []
    if "metrics" in entry:
        t = Table(title="metrics", title_justify="left", header_style="bold")
        for col in ("output", "task", "metric", "value", "better"):
            t.add_column(col)
        for out_name, m in entry["metrics"].items():
            for name, v in m["values"].items():
                t.add_row(out_name, m["task"], name, f"{v['value']:.6g}", v["direction"])
        items.append(t)
    if "latency" in entry:
        t = Table(title="latency", title_justify="left", header_style="bold")
        for col in ("batch", "samples", "p50 ms", "p90 ms", "p99 ms", "warm-up calls"):
            t.add_column(col, justify="right")
        # Each entry holds a latency dataset's attributes as stored, plus "samples".
        for key, a in sorted(entry["latency"].items(),
                             key=lambda kv: int(kv[0].removeprefix(s.LATENCY_GROUP_PREFIX))):
            t.add_row(key.removeprefix(s.LATENCY_GROUP_PREFIX), str(a.get("samples")),
                      *(f"{float(a.get(p, 0)) / 1e6:.3f}" for p in (s.P50, s.P90, s.P99)),
                      str(a.get(s.WARMUP_CALLS, "")))
        items.append(t)
    return items


# What inspect adds after a shape the model's own signature did not state.
_SHAPE_SOURCES = {
    "graph": "   (shape from the graph: the signature_def has no tensor_shape)",
    "unknown": "   (no tensor_shape in the signature_def, none in the graph: any shape is fed)",
}

# What inspect adds after a scalar input: it is not synthesized, the user gives its value.
_SCALAR_INPUT = ("   (scalar: give its value with record --set NAME=VALUE or as a 0-d array in "
                 "--inputs; fed with every batch)")


def inspect_doc(model: str, kind: str, signatures: Mapping[str, SignatureInfo],
                notes: Sequence[str], *, scanned: bool = False,
                scan: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """``inspect --json``: a model's signatures with their inputs and outputs; with
    ``scanned`` (``--scan``) the flagged ops per signature as ``scan``."""
    doc: dict[str, Any] = {"model": model, "kind": kind, "signatures": {
        name: {"method_name": s.method_name,
               "inputs": [_spec_json(t) for t in s.inputs],
               "outputs": [_spec_json(t) for t in s.outputs]}
        for name, s in sorted(signatures.items())}, "notes": list(notes)}
    if scanned:
        # null: this kind of model is not scanned; [] per signature: nothing flagged.
        doc["scan"] = None if scan is None else dict(scan)
    return doc


def _spec_json(t: TensorSpec) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype,
            "shape": None if t.shape is None else list(t.shape),
            "shape_source": t.shape_source}


def inspect_renderables(model: str, kind: str, signatures: Mapping[str, SignatureInfo],
                        scan_lines: Mapping[str, str] | None = None) -> list[RenderableType]:
    """What ``inspect`` prints: each signature with its inputs and outputs, and with
    ``--scan`` its line of ``scan_lines``."""
    from rich.markup import escape
    from rich.text import Text

    items: list[RenderableType] = [
        f"[bold]{escape(model)}[/] ({kind}): {len(signatures)} signature(s)"]
    for name, s in sorted(signatures.items()):
        method = f"  method {s.method_name}" if s.method_name else ""
        items.append(f"\n[bold]{escape(name)}[/]{method}")
        for io, specs in (("in ", s.inputs), ("out", s.outputs)):
            # Spec text is printed as is: a name such as "x[0]" is not console markup.
            items.extend(Text(f"  {io} {t.describe()}{_SHAPE_SOURCES.get(t.shape_source, '')}"
                              f"{_SCALAR_INPUT if io == 'in ' and t.shape == () else ''}")
                         for t in specs)
        if scan_lines is not None:
            items.append(Text(f"  scan {scan_lines.get(name, '')}"))
    return items
