"""A self-contained HTML page of one comparison (``compare --html``) or one golden
(``show --html``): the verdict first, then per-output plots, the metrics and latency.

One file, no network: CSS is inline, plots are matplotlib SVG inlined into the page, and
there is no script. matplotlib is imported inside the plotting functions (it is the ``html``
extra), with the object-oriented API only, so no GUI backend or global pyplot state is
touched. Every number a plot shows comes from the bounded :class:`ErrorSummary` that
``diff`` attaches to an output, never from the tensors, so a page stays small whatever
the size of the model's outputs.
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool.dtypes import scalar_value
from snapshot_tool.errors import SnapshotToolError
from snapshot_tool.report.format import latency_clocks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from snapshot_tool.compare import ComparisonResult
    from snapshot_tool.diagnose.divergence import Localization
    from snapshot_tool.diff import ErrorSummary, TensorDiff
    from snapshot_tool.golden.schema import Golden, SignatureGolden
    from snapshot_tool.latency.gate import LatencyCheck

# The extra's own package, not 'snapshot-tool[html]': the package of that name on PyPI is
# another project's.
INSTALL_HINT = "the HTML report needs matplotlib: pip install 'matplotlib>=3.8' (the html extra)"

GOOD, BAD, NEUTRAL, WARN = "#2e7d32", "#c62828", "#1f5f99", "#b26a00"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
color:#1d1d1f;background:#fff}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
.verdict{padding:14px 18px;border-radius:6px;color:#fff;font-size:20px;font-weight:600}
.verdict.v-pass{background:#2e7d32}.verdict.v-fail{background:#c62828}
.verdict small{display:block;font-size:14px;font-weight:400;opacity:.95}
ul.reasons{margin:8px 0 0 0}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #d7d7d7;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:700}
.warn{color:#b26a00}.dim{color:#777}
.plots{display:flex;flex-wrap:wrap;gap:12px}
figure.plot{margin:0;border:1px solid #e4e4e4;border-radius:4px;padding:4px;background:#fff}
figure.plot svg{display:block;max-width:100%;height:auto}
figure.plot figcaption{font-size:12px;color:#555;padding:2px 4px}
pre{background:#f6f6f6;padding:8px 10px;border-radius:4px;overflow-x:auto;font-size:12.5px}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}
section.output{border-left:4px solid #ddd;padding-left:12px;margin:14px 0}
section.output.failed{border-left-color:#c62828}section.output.ok{border-left-color:#2e7d32}
footer{margin-top:36px;color:#777;font-size:12px}
"""


# --- small text helpers -----------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return format(value, spec)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
           ) -> str:
    """``rows`` hold ready HTML (callers escape); ``numeric`` columns align right."""
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _verdict_cell(passed: bool, label: str | None = None) -> str:
    return (f'<span class="pass">{label or "PASS"}</span>' if passed
            else f'<span class="fail">{label or "FAIL"}</span>')


def _version() -> str:
    # From the installed metadata, not `snapshot_tool.__version__`: importing the package
    # root would reach the api (and TensorFlow) through its lazy exports.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("snapshot-tool")
    except PackageNotFoundError:
        return "(not installed)"


def _page(title: str, body: list[str]) -> str:
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            + "\n".join(body)
            + f"<footer>snapshot-tool {_e(_version())} · generated {_e(now)}</footer>"
            "</main></body></html>\n")


# --- matplotlib ---------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Fail with the install hint (a usage error) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SnapshotToolError(INSTALL_HINT) from None


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SnapshotToolError(INSTALL_HINT) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


_XML_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)([^)"]+)')


def _scope_ids(svg: str, prefix: str) -> str:
    """Prefix every element id of one plot, and the references to them (clip paths, marker
    uses), so that several plots in one document never share an id: matplotlib numbers
    its groups from 1 in every figure."""
    ids = set(_ID.findall(svg))
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return _REF.sub(lambda m: m.group(1) + (f"{prefix}-{m.group(2)}" if m.group(2) in ids
                                            else m.group(2)), svg)


def _svg(fig: Figure, salt: str, caption: str, label: str) -> str:
    """The figure as inline SVG inside a <figure>. Text stays text (smaller, searchable);
    ``salt`` keeps the element ids of different plots on one page apart."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _scope_ids(_XML_PROLOG.sub("", buf.getvalue(), count=1), salt)
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_e(label)}" ', 1)
    return (f'<figure class="plot" data-plot="{_e(label)}">{svg}'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _plain_log_ticks(ax: Axes) -> None:
    """Log-axis labels as plain numbers (0.2, 0.5, 1, 2) without minor labels, which
    collide on a short axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _log10_ticks(ax: Axes, lo: float, hi: float) -> None:
    """Ticks of an x axis that holds log10 values, labelled with the plain values."""
    pad = max(0.05, (hi - lo) * 0.08)
    ax.set_xlim(lo - pad, hi + pad)
    nice = [m * 10.0 ** e for e in range(math.floor(lo) - 1, math.ceil(hi) + 2)
            for m in (1.0, 2.0, 5.0)]
    ticks = [v for v in nice if lo - pad <= math.log10(v) <= hi + pad]
    if len(ticks) > 8:
        ticks = [v for v in ticks if f"{v:g}".lstrip("0.").startswith("1")]
    ax.set_xticks([math.log10(v) for v in ticks], [f"{v:g}" for v in ticks])


def _style(ax: Axes) -> None:
    ax.grid(True, which="major", alpha=0.25)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# --- per-output plots ---------------------------------------------------------------------------


def _legend(ax: Any, loc: str) -> None:
    # An exact output (ints, atol 0) that did not change draws nothing with a label, and an
    # empty legend makes matplotlib warn on stderr.
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc=loc, framealpha=0.9)


def error_histogram(d: TensorDiff, s: ErrorSummary, salt: str) -> str:
    """|c - g| on a log axis over the summary's fixed bins; elements outside tolerance in
    red, atol as a dashed line and the band up to atol + rtol·max|g| shaded."""
    from snapshot_tool.diff import hist_edges

    edges = hist_edges()
    counts = np.asarray(s.counts, dtype=float)
    bad = np.asarray(s.bad_counts, dtype=float)
    fig, (ax,) = _new_figure(5.6, 3.0)
    used = np.flatnonzero(counts)
    tol_hi = d.atol + d.rtol * s.max_abs_golden
    if used.size:
        lo = max(0, int(used[0]) - 2)
        hi = min(len(counts), int(used[-1]) + 3)
        ax.stairs(counts[lo:hi], edges[lo:hi + 1], fill=True, color=NEUTRAL, alpha=0.55,
                  baseline=0.7, label="all elements")
        if bad.any():
            ax.stairs(bad[lo:hi], edges[lo:hi + 1], fill=True, color=BAD, alpha=0.85,
                      baseline=0.7, label="outside tolerance")
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.7)
        x_lo, x_hi = edges[lo], edges[hi]
    else:
        x_lo, x_hi = 1e-9, 1.0
        ax.text(0.5, 0.5, "no non-zero difference", transform=ax.transAxes, ha="center",
                va="center", color="#555")
    ax.set_xscale("log")
    # The limits are set below. Left on, autoscaling would fit the atol line alone when no
    # difference is drawn (all equal, or all infinite) and matplotlib warns on stderr.
    ax.autoscale(enable=False, axis="x")
    if d.atol > 0:
        ax.axvline(d.atol, color=GOOD, linestyle="--", linewidth=1.4,
                   label=f"atol {d.atol:.2g}")
        x_lo = min(x_lo, d.atol / 3)
    if d.rtol > 0 and tol_hi > d.atol:
        ax.axvspan(max(d.atol, x_lo), tol_hi, color=GOOD, alpha=0.12,
                   label=f"atol + rtol·|g| up to {tol_hi:.2g}")
        x_hi = max(x_hi, tol_hi * 3)
    ax.set_xlim(x_lo, x_hi)
    ax.set_xlabel("|candidate − golden|", fontsize=9)
    ax.set_ylabel("elements", fontsize=9)
    _style(ax)
    _legend(ax, "upper right")
    extra = [f"{s.zero} exactly equal"]
    if s.underflow:
        extra.append(f"{s.underflow} below {edges[0]:.0e}")
    if s.overflow:
        extra.append(f"{s.overflow} above {edges[-1]:.0e}")
    if s.nonfinite:
        extra.append(f"{s.nonfinite} non-finite (NaN on one side or ±inf)")
    return _svg(fig, salt, "Error histogram: " + ", ".join(extra) + " (not drawn).",
                f"error histogram {d.name}")


def scatter_plots(d: TensorDiff, s: ErrorSummary, salt: str) -> str:
    """Golden against candidate, and golden against the difference with the tolerance
    envelope, for the summary's sampled elements (all of them when the output is small)."""
    g = np.asarray(s.sample_golden, dtype=float)
    c = np.asarray(s.sample_candidate, dtype=float)
    fig, (ax1, ax2) = _new_figure(8.4, 3.2, ncols=2)
    with np.errstate(invalid="ignore"):
        diff = c - g
        allowed = d.atol + d.rtol * np.abs(g)
        bad = ~(np.abs(diff) <= allowed) & ~(np.isnan(g) & np.isnan(c) & d.nan_equal)
    ok = ~bad
    for ax, y, ylabel in ((ax1, c, "candidate"), (ax2, diff, "candidate − golden")):
        ax.scatter(g[ok], y[ok], s=6, color=NEUTRAL, alpha=0.6, linewidths=0,
                   label="within tolerance", rasterized=False)
        if bad.any():
            ax.scatter(g[bad], y[bad], s=10, color=BAD, alpha=0.9, linewidths=0,
                       label="outside tolerance")
        ax.set_xlabel("golden", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        _style(ax)
    finite = np.isfinite(g)
    if finite.any():
        lo, hi = float(g[finite].min()), float(g[finite].max())
        ax1.plot([lo, hi], [lo, hi], color="#444", linewidth=0.8, linestyle=":",
                 label="candidate = golden")
        xs = np.linspace(lo, hi, 200)
        env = d.atol + d.rtol * np.abs(xs)
        ax2.fill_between(xs, -env, env, color=GOOD, alpha=0.15, label="tolerance")
    _legend(ax1, "upper left")
    _legend(ax2, "upper left")
    n = len(s.sample_index)
    caption = (f"all {n} elements" if n >= d.size else
               f"{n} of {d.size} elements, sampled uniformly with a fixed seed")
    return _svg(fig, salt, f"Golden vs candidate: {caption}; red points are outside tolerance.",
                f"scatter {d.name}")


def _worst_rows_table(d: TensorDiff, s: ErrorSummary) -> str:
    rows = []
    for r in s.worst_rows:
        rows.append([str(r.row), f"{r.mismatched}/{r.size}", _num(r.max_abs_diff),
                     _e(",".join(map(str, r.worst_index))), _num(r.golden, ".6g"),
                     _num(r.candidate, ".6g")])
    label = "row (axis 0)" if d.golden_shape and len(d.golden_shape) > 1 else "element"
    return ("<h3>Worst rows</h3>"
            + _table([label, "outside tolerance", "max |c−g|", "worst element", "golden",
                      "candidate"], rows, numeric=(0, 1, 2, 4, 5)))


def _tolerance_text(d: TensorDiff) -> str:
    text = "exact" if d.exact and d.atol == 0 else f"atol {d.atol:.3g}, rtol {d.rtol:.3g}"
    if d.max_mismatch_fraction:
        text += f", up to {d.max_mismatch_fraction:.2%} of elements may differ"
    if d.tolerance_source and d.tolerance_source != text:
        text += f" ({d.tolerance_source})"
    return text


def output_section(d: TensorDiff, index: int, multi: bool) -> str:
    name = f"{d.signature}/{d.name}" if multi and d.signature else d.name
    structural = d.status not in ("ok", "mismatch")
    label = d.status.replace("_", " ").upper() if structural else None
    parts = [f'<section class="output {"ok" if d.passed else "failed"}" id="output-{index}">',
             f"<h3>{_e(name)} — {_verdict_cell(d.passed, label)}</h3>"]
    if structural:
        parts.append(f"<p>{_e(d.message)}</p></section>")
        return "".join(parts)
    parts.append(
        f"<p>{d.mismatch_count} of {d.size} elements outside tolerance "
        f"({d.mismatch_fraction:.2%}); max |c−g| {_num(d.max_abs_diff)}, mean "
        f"{_num(d.mean_abs_diff)}, max relative {_num(d.max_rel_diff)}. Tolerance: "
        f"{_e(_tolerance_text(d))}."
        + (f" The smallest atol that passes: <code>{_num(d.required_atol)}</code>."
           if d.required_atol else "") + "</p>")
    if d.worst_index is not None:
        parts.append(f"<p>Worst element [{_e(','.join(map(str, d.worst_index)))}]: golden "
                     f"<code>{_e(d.worst_golden)}</code> → candidate "
                     f"<code>{_e(d.worst_candidate)}</code></p>")
    s = d.summary
    if d.size == 0:
        # A zero-size output (tf.zeros([n, 0]), an empty detection list) has nothing to draw,
        # and empty plots make matplotlib warn on stderr.
        parts.append('<p class="dim">No error plots: the output has no elements to plot.</p>')
    elif s is not None:
        parts.append('<div class="plots">' + error_histogram(d, s, f"h{index}")
                     + scatter_plots(d, s, f"s{index}") + "</div>")
        if s.worst_rows:
            parts.append(_worst_rows_table(d, s))
    elif d.golden_dtype not in ("string", "bool"):
        parts.append('<p class="dim">No error plots: the output passed and the run did not '
                     "collect its error summary.</p>")
    parts.append("</section>")
    return "".join(parts)


# --- comparison page ----------------------------------------------------------------------------


def _reasons(result: ComparisonResult) -> list[str]:
    reasons: list[str] = []
    fails = [d for d in result.outputs if not d.passed]
    if fails:
        reasons.append(f"{len(fails)} of {len(result.outputs)} output(s) failed: "
                       + ", ".join(f"{d.name} ({d.status.replace('_', ' ')})" for d in fails))
    metric_fails = [m for m in result.metrics if not m.passed]
    if metric_fails:
        reasons.append(f"{len(metric_fails)} metric check(s) failed: "
                       + ", ".join(f"{m.output}:{m.name}" for m in metric_fails))
    if result.latency_verdict == "fail":
        reasons.append("latency regressed beyond the limit")
    elif not result.latency_passed:
        reasons.append("latency inconclusive, and --latency-strict treats that as a failure")
    return reasons


def _verdict_banner(result: ComparisonResult) -> str:
    if result.passed:
        bits = [f"{len(result.outputs)} output(s) within tolerance"]
        if any(m.limit for m in result.metrics):
            bits.append(f"{sum(1 for m in result.metrics if m.limit)} metric limit(s) met")
        if result.latency:
            bits.append(f"latency {result.latency_verdict}")
        return (f'<div class="verdict v-pass" id="verdict">PASS<small>{_e(", ".join(bits))}'
                "</small></div>")
    items = "".join(f"<li>{_e(r)}</li>" for r in _reasons(result))
    return (f'<div class="verdict v-fail" id="verdict">FAIL<small><ul class="reasons">{items}'
            "</ul></small></div>")


def _next_steps(result: ComparisonResult, obtained: str | None) -> str:
    if result.passed:
        return ""
    parts = ["<h2>If the change is intended</h2>"]
    if obtained:
        parts.append(f"<p>The candidate's outputs were saved as an obtained golden "
                     f"<code>{_e(obtained)}</code>. Review this page, then promote it:</p>"
                     f"<pre>snapshot-tool accept {_e(obtained)} --reason '...'</pre>"
                     "<p>or only some outputs: <code>--only 'NAME*'</code>.</p>")
    from snapshot_tool.report.console import hints

    h = hints(result)
    if h:
        config_name = result.config_source or "snapshot.toml"
        parts.append(f"<p>Or widen the tolerance in <code>{_e(config_name)}</code>:</p>"
                     f"<pre>{_e(chr(10).join(h))}</pre>")
    return "".join(parts) if len(parts) > 1 else ""


def _outputs_overview(result: ComparisonResult) -> str:
    multi = len(result.signatures) > 1
    rows = []
    for i, d in enumerate(result.outputs):
        name = f"{d.signature}/{d.name}" if multi and d.signature else d.name
        link = f'<a href="#output-{i}">{_e(name)}</a>'
        if d.status in ("ok", "mismatch"):
            rows.append([link, _verdict_cell(d.passed), f"{d.mismatch_count}/{d.size}",
                         _num(d.max_abs_diff), _num(d.max_rel_diff), _e(_tolerance_text(d)),
                         _num(d.required_atol)])
        else:
            rows.append([link, _verdict_cell(False, d.status.replace("_", " ").upper()),
                         "—", "—", "—", _e(d.message), "—"])
    return _table(["output", "verdict", "outside tolerance", "max abs", "max rel",
                   "tolerance", "atol to pass"], rows, numeric=(2, 3, 4, 6))


def metrics_section(result: ComparisonResult) -> str:
    if not result.metrics:
        return ""
    rows = []
    for m in result.metrics:
        verdict = (_verdict_cell(True) if m.limit else '<span class="dim">info</span>') \
            if m.passed else _verdict_cell(False)
        rows.append([_e(m.output), _e(m.name + ("" if m.direction == "higher" else " ↓")),
                     _num(m.golden, ".4g"), _num(m.candidate, ".4g"),
                     "—" if m.delta is None else f"{m.delta:+.4g}",
                     _e(m.limit) or '<span class="dim">none</span>', verdict,
                     _e(m.note) if m.note and (not m.passed or m.limit) else ""])
    return ("<h2>Metrics</h2>"
            + _table(["output", "metric", "golden", "candidate", "change", "limit", "verdict",
                      "note"], rows, numeric=(2, 3, 4)))


def _latency_samples(check: LatencyCheck, side: str) -> np.ndarray | None:
    # Samples are a bounded extra of a LatencyCheck that a caller may leave empty; the plot
    # then falls back to the percentiles every check carries.
    raw = check.baseline_samples_ns if side == "baseline" else check.candidate_samples_ns
    if len(raw) < 2:
        return None
    return np.asarray(raw, dtype=float) / 1e6


def latency_plot(check: LatencyCheck, mode: str | None, salt: str) -> str:
    """Baseline and candidate per-call latency (their distributions, or p50/p90/p99 only
    when the check carries no samples) beside the ratio's confidence interval against the
    limit.

    Latency tails are long (a busy machine's p99 is many times its p50), so times are drawn
    on a log scale; the violins are estimated on log10(ms) too, where latency distributions
    are closer to symmetric, rather than warped from a linear-scale estimate."""
    fig, (ax1, ax2) = _new_figure(8.4, 2.6, ncols=2)
    base_name = "baseline model" if mode == "side_by_side" else "golden (stored)"
    seen: list[float] = []
    for y, side, stats, color in ((1, "baseline", check.baseline, NEUTRAL),
                                  (0, "candidate", check.candidate, WARN)):
        samples = _latency_samples(check, side)
        if samples is not None:
            logs = np.log10(samples[samples > 0])
            if logs.size > 1 and np.ptp(logs) > 0:
                parts = ax1.violinplot([logs], positions=[y], vert=False, widths=0.8,
                                       showextrema=False)
                for body in parts["bodies"]:  # type: ignore[attr-defined]
                    body.set_facecolor(color)
                    body.set_alpha(0.45)
                seen += [float(logs.min()), float(logs.max())]
        marks = [stats.p50 / 1e6, stats.p90 / 1e6, stats.p99 / 1e6]
        if not all(math.isfinite(v) and v > 0 for v in marks):
            continue
        p50, p90, p99 = (math.log10(v) for v in marks)
        seen += [p50, p99]
        ax1.plot([p50, p99], [y, y], color=color, linewidth=1.2)
        ax1.plot([p50, p90], [y, y], color=color, linewidth=6, alpha=0.8, solid_capstyle="butt")
        ax1.plot([p50], [y], marker="o", color="#111", markersize=5)
        ax1.text(p99, y + 0.25, "p50 {:.3g} · p90 {:.3g} · p99 {:.3g} ms".format(*marks),
                 fontsize=7, ha="right", color="#333")
    if seen:
        _log10_ticks(ax1, min(seen), max(seen))
    ax1.set_yticks([0, 1], ["candidate", base_name], fontsize=8)
    ax1.set_ylim(-0.6, 1.7)
    ax1.set_xlabel("ms per call, log scale (bar: p50–p90, line to p99)", fontsize=8.5)
    _style(ax1)
    ratio, lo, hi = check.ratio, check.ci_low, check.ci_high
    if all(math.isfinite(v) for v in (ratio, lo, hi)):
        color = BAD if check.verdict == "fail" else GOOD if check.verdict == "pass" else WARN
        ax2.errorbar([ratio], [0], xerr=[[ratio - lo], [hi - ratio]], fmt="o", color=color,
                     capsize=5, linewidth=2, label=f"ratio {ratio:.3f} [{lo:.3f}, {hi:.3f}]")
        left = min(lo, 1.0, check.limit)
        right = max(hi, check.limit)
        pad = (right - left) * 0.25 or 0.05
        ax2.set_xlim(left - pad, right + pad)
    ax2.axvline(1.0, color="#444", linestyle=":", linewidth=1, label="equal (1.0)")
    ax2.axvline(check.limit, color=BAD, linestyle="--", linewidth=1.3,
                label=f"limit {check.limit:.2f}")
    ax2.set_yticks([])
    ax2.set_ylim(-1, 1)
    ax2.set_xlabel("candidate / baseline latency (95% CI)", fontsize=8.5)
    _style(ax2)
    ax2.legend(fontsize=7, loc="upper left", framealpha=0.9)
    return _svg(fig, salt, f"batch size {check.batch_size}: {check.verdict.upper()}",
                f"latency batch {check.batch_size}")


def latency_section(result: ComparisonResult) -> str:
    if not result.latency:
        return ""
    mode = "side by side" if result.latency_mode == "side_by_side" else "vs stored baseline"
    parts = [f"<h2>Latency ({_e(mode)})</h2>"]
    rows = []
    for c in result.latency:
        failed = c.verdict == "fail" or (result.latency_strict and c.verdict == "inconclusive")
        rows.append([_e(f"{c.signature}/{c.batch_size}" if len(result.signatures) > 1
                        else c.batch_size),
                     f"{c.baseline.p50 / 1e6:.3f} / {c.baseline.p90 / 1e6:.3f}",
                     f"{c.candidate.p50 / 1e6:.3f} / {c.candidate.p90 / 1e6:.3f}",
                     f"{_num(c.ratio, '.3f')} [{_num(c.ci_low, '.3f')}, {_num(c.ci_high, '.3f')}]",
                     _e(c.basis_label), _e(latency_clocks(c)),
                     f"≤ {c.limit:.2f}", _verdict_cell(not failed, c.verdict.upper()),
                     _e(c.note)])
    parts.append(_table(["batch", "baseline p50/p90 ms", "candidate p50/p90 ms",
                         "ratio [95% CI]", "judged on", "wall / CPU ratio", "limit", "verdict",
                         "note"], rows, numeric=(0, 1, 2, 3, 6)))
    parts.append('<div class="plots">' + "".join(
        latency_plot(c, result.latency_mode, f"l{i}") for i, c in enumerate(result.latency))
        + "</div>")
    return "".join(parts)


def localization_plot(loc: Localization, salt: str) -> str:
    """Error by depth along the path from the first diverging tensor to the output: the
    relative error (max|c-g| / max|g|) and its multiple of the scaled tolerance, both on a
    log axis, with the tolerance (1x) marked."""
    depth = [i for i, st in enumerate(loc.path) if st.relative_error is not None]
    rel = [max(loc.path[i].relative_error or 0.0, 1e-12) for i in depth]
    ratio = [max(loc.path[i].ratio or 0.0, 1e-12) for i in depth]
    fig, (left, right) = _new_figure(9.0, 2.8, ncols=2)
    left.plot(depth, rel, marker="o", color=BAD)
    left.set_ylabel("max|c−g| / max|g|", fontsize=9)
    right.plot(depth, ratio, marker="o", color=NEUTRAL)
    right.axhline(1.0, color=GOOD, linestyle="--", linewidth=1.2, label="scaled tolerance")
    right.set_ylabel("× scaled tolerance", fontsize=9)
    right.legend(fontsize=7.5, loc="best", framealpha=0.9)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("depth from the first diverging tensor", fontsize=9)
        ax.set_xticks(range(len(loc.path)))
        _style(ax)
    return _svg(fig, salt, "Error by depth; depth 0 is the first diverging tensor, the last "
                "the output.", f"error by depth {loc.output}")


def localization_section(loc: Localization | None) -> str:
    """``--localize``: the first diverging tensor, changed parameters, and error by depth."""
    if loc is None:
        return ""
    from snapshot_tool.diagnose.divergence import display_name

    head = f"<h2>Where it diverges: <code>{_e(loc.output)}</code></h2>" if loc.output \
        else "<h2>Where it diverges</h2>"
    if loc.status != "localized" or loc.first is None:
        return f"{head}<p>Not localized: {_e(loc.reason)}</p>"
    first = loc.first
    op = first.op_type if first.candidate_op_type in ("", first.op_type) \
        else f"{first.op_type} → {first.candidate_op_type} in the candidate"
    parts = [head, f"<p>First diverging tensor <code>{_e(display_name(first.name))}</code> "
             f"({_e(op)}{', layer ' + _e(first.layer) if first.layer else ''}), rows "
             f"{_e(loc.rows[0] if loc.rows else '')}–{_e(loc.rows[1] if loc.rows else '')}"
             f" of the golden's inputs; golden's model <code>{_e(loc.golden_model)}</code> "
             f"({_e(loc.golden_kind)}).</p>"]
    if loc.changed_parameters:
        parts.append("<p>Changed parameters: " + ", ".join(
            f"<code>{_e(p)}</code>" for p in loc.changed_parameters) + "</p>")
    parts.append('<div class="plots">' + localization_plot(loc, "loc") + "</div>")
    parts.append(_table(
        ["depth", "tensor", "op", "layer", "rel. error", "× tolerance"],
        ([str(i), f"<code>{_e(display_name(st.name))}</code>", _e(st.op_type),
          _e(st.layer or "—"), _num(st.relative_error), _num(st.ratio)]
         for i, st in enumerate(loc.path)), numeric=(0, 4, 5)))
    parts.extend(f'<p class="dim">{_e(n)}</p>' for n in loc.notes)
    return "".join(parts)


def comparison_page(result: ComparisonResult, *, obtained: str | None = None,
                    localization: Localization | None = None) -> str:
    """The whole page for one comparison. Failing outputs come first: they are what the
    reader opened the page for."""
    multi = len(result.signatures) > 1
    order = sorted(range(len(result.outputs)), key=lambda i: result.outputs[i].passed)
    body = [f"<h1>snapshot-tool compare: {'PASS' if result.passed else 'FAIL'}</h1>",
            _verdict_banner(result),
            f"<p>golden <code>{_e(result.golden)}</code> · candidate "
            f"<code>{_e(result.model)}</code>"
            + (f" · baseline model <code>{_e(result.baseline_model)}</code>"
               if result.baseline_model else "")
            + f" · config <code>{_e(result.config_source or 'defaults')}</code></p>",
            _next_steps(result, obtained),
            "<h2>Outputs</h2>", _outputs_overview(result), localization_section(localization),
            *(output_section(result.outputs[i], i, multi) for i in order),
            metrics_section(result), latency_section(result)]
    if result.warnings:
        body.append("<h2>Warnings</h2><ul>"
                    + "".join(f'<li class="warn">{_e(w)}</li>' for w in result.warnings)
                    + "</ul>")
    title = f"snapshot-tool: {'PASS' if result.passed else 'FAIL'} {result.model}"
    return _page(title, body)


# --- golden page (show --html) ------------------------------------------------------------------


def value_histogram(name: str, arr: np.ndarray, salt: str) -> str | None:
    """The distribution of an output's recorded values (numeric outputs only)."""
    if arr.dtype.kind not in "fiu" and not arr.dtype.name.startswith(("bfloat16", "float8")):
        return None
    values = np.asarray(arr, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    fig, (ax,) = _new_figure(4.2, 2.5)
    ax.hist(values, bins=min(60, max(5, int(np.sqrt(values.size)))), color=NEUTRAL,
            alpha=0.75)
    ax.set_xlabel(f"{name} values", fontsize=8.5)
    ax.set_ylabel("elements", fontsize=8.5)
    _style(ax)
    return _svg(fig, salt, f"{name}: {values.size} finite values, min {values.min():.4g}, "
                f"max {values.max():.4g}", f"values {name}")


def stored_latency_plot(sg: SignatureGolden, salt: str) -> str | None:
    if not sg.latency:
        return None
    fig, (ax,) = _new_figure(6.0, 0.8 + 0.55 * len(sg.latency))
    sizes = sorted(sg.latency)
    data = [np.asarray(sg.latency[bs].samples_ns, dtype=float) / 1e6 for bs in sizes]
    parts = ax.violinplot(data, positions=list(range(len(sizes))), vert=False,
                          showmedians=True, widths=0.8)
    for body in parts["bodies"]:  # type: ignore[attr-defined]
        body.set_facecolor(NEUTRAL)
        body.set_alpha(0.5)
    ax.set_xscale("log")  # long tails: see latency_plot
    _plain_log_ticks(ax)
    ax.set_yticks(list(range(len(sizes))), [f"batch {bs}" for bs in sizes], fontsize=8)
    ax.set_xlabel("ms per call (stored samples)", fontsize=8.5)
    _style(ax)
    return _svg(fig, salt, "Recorded latency distribution per batch size",
                f"stored latency {sg.signature}")


def history_rows(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    from snapshot_tool.golden.schema import read_history

    return read_history(attrs)


def golden_page(golden: Golden) -> str:
    from snapshot_tool.golden.schema import SUMMARY_ROOT, HistoryEntry

    attrs = golden.info.to_attrs()
    body = [f"<h1>Golden {_e(golden.path)}</h1>",
            _table(["attribute", "value"], [
                [_e(k), _e(attrs[k])] for k in SUMMARY_ROOT if k in attrs])]
    history = history_rows(attrs)
    if history:
        body.append("<h2>History</h2>" + _table(
            ["when", "who", "action", "outputs", "reason"],
            [[_e(h.when), _e(h.who), _e(h.action), _e(", ".join(h.outputs)), _e(h.reason)]
             for h in map(HistoryEntry.from_json, history)]))
    for si, (sig_name, sg) in enumerate(sorted(golden.signatures.items())):
        body.append(f"<h2>Signature {_e(sig_name)}</h2>")
        # A scalar input (a setting fed with every batch) shows its value, as `show` does.
        rows = [[kind, _e(n), _e(arr.dtype),
                 _e(tuple(arr.shape)) + (f" = {_e(scalar_value(arr))}" if kind == "input"
                                         and arr.ndim == 0 else "")]
                for kind, group in (("input", sg.inputs), ("output", sg.outputs))
                for n, arr in sorted(group.items())]
        if sg.labels is not None:
            rows.append(["labels", _e(sg.labels_source), _e(sg.labels.dtype),
                         _e(tuple(sg.labels.shape))])
        body.append(_table(["kind", "name", "dtype", "shape"], rows))
        plots = [p for i, (n, arr) in enumerate(sorted(sg.outputs.items()))
                 if (p := value_histogram(n, arr, f"v{si}_{i}")) is not None]
        if plots:
            body.append('<div class="plots">' + "".join(plots) + "</div>")
        if sg.metrics:
            body.append("<h3>Metrics</h3>" + _table(
                ["output", "task", "metric", "value", "better"],
                [[_e(out), _e(om.task), _e(m), f"{v.value:.6g}", _e(v.direction)]
                 for out, om in sorted(sg.metrics.items())
                 for m, v in sorted(om.values.items())], numeric=(3,)))
        lat = stored_latency_plot(sg, f"t{si}")
        if lat:
            body.append("<h3>Latency</h3>" + _table(
                ["batch", "samples", "p50 ms", "p90 ms", "p99 ms"],
                [[str(bs), str(rec.samples_ns.size),
                  *(f"{p / 1e6:.3f}" for p in (rec.p50, rec.p90, rec.p99))]
                 for bs, rec in sorted(sg.latency.items())], numeric=(0, 1, 2, 3, 4))
                + f'<div class="plots">{lat}</div>')
    return _page(f"snapshot-tool golden {golden.path}", body)
