"""A Markdown summary (``--markdown``) for pull-request comments and CI job summaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapshot_tool.report.format import fmt, latency_clocks

if TYPE_CHECKING:

    from snapshot_tool.api import ComparisonResult


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
        name = result.qualified(d.signature, d.name)
        if d.status in ("ok", "mismatch"):
            lines.append(f"| {_md(name)} | {'pass' if d.passed else '**FAIL**'} | "
                         f"{d.mismatch_count}/{d.size} | {fmt(d.max_abs_diff)} | "
                         f"{fmt(d.max_rel_diff)} | {fmt(d.required_atol)} |")
        else:
            lines.append(f"| {_md(name)} | **{d.status.upper()}** | {_md(d.message)} | | | |")
    if result.metrics:
        lines += ["", "| output | metric | golden | candidate | change | limit | verdict |",
                  "| --- | --- | ---: | ---: | ---: | --- | --- |"]
        for m in result.metrics:
            v = ("pass" if m.limit else "info") if m.passed else "**FAIL**"
            change = "" if m.delta is None else f"{m.delta:+.4g}"
            lines.append(f"| {_md(m.output)} | {m.name} | {fmt(m.golden, '.4g')} | "
                         f"{fmt(m.candidate, '.4g')} | {change} | {_md(m.limit)} | {v} |")
    if result.latency:
        lines += ["", f"Latency ({result.latency_mode}):", "",
                  "| batch | baseline p50 ms | candidate p50 ms | ratio [95% CI] | judged on | "
                  "wall / CPU ratio | limit | verdict |",
                  "| ---: | ---: | ---: | --- | --- | --- | ---: | --- |"]
        for c in result.latency:
            label = result.qualified(c.signature, str(c.batch_size))
            lines.append(f"| {label} | {c.baseline.p50 / 1e6:.3f} | "
                         f"{c.candidate.p50 / 1e6:.3f} | {fmt(c.ratio)} [{fmt(c.ci_low)}, "
                         f"{fmt(c.ci_high)}] | {c.basis_label} | {latency_clocks(c)} | "
                         f"{c.limit:.2f} | {c.verdict} |")
    for w in result.warnings:
        lines += ["", f"> warning: {_md(w)}"]
    if result.obtained:
        run = f", written by run `{result.obtained_run}`" if result.obtained_run else ""
        lines += ["", f"Obtained golden: `{result.obtained}`{run} (a CI artifact when the job "
                  f"uploads it); review it, then `snapshot-tool accept {result.obtained} "
                  "--reason ...`."]
    return "\n".join(lines) + "\n"

