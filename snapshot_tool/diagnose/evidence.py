"""Calibration evidence, pure numpy: error distributions of acceptable candidates, the limits
that accept all of them with a margin, the cost of element error in decisions, and the
commented ``snapshot.toml`` that states all of it.

How the limits are chosen (per output, over every candidate declared acceptable):

- ``rtol`` = margin x the p99.9 of ``|c - g| / |g|`` over the *significant* elements (those
  with ``|g|`` at least 1% of the output's largest magnitude). Near-zero elements make
  relative error meaningless (softmax tails, ReLU zeros); they are left to ``atol``.
- ``atol`` = margin x the largest ``|c - g| - rtol * |g|`` over all elements: what an
  element still needs once the proposed ``rtol`` has been applied.
- Neither goes below the dtype default: a limit tighter than the golden's own precision
  would fail a re-run of the golden model itself.
- Task metrics: ``max_drop`` = margin x the worst drop; agreement metrics: ``min`` =
  1 - margin x (1 - the worst value).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from snapshot_tool.dtypes import dtype_label, less_precise, precision_change
from snapshot_tool.metrics.agreement import AGREEMENT_LOWEST
from snapshot_tool.metrics.thresholds import MetricCheck, round_sig
from snapshot_tool.tolerance import FLOAT_DEFAULTS

# Elements below this share of the output's largest magnitude do not vote on rtol.
SIGNIFICANT = 0.01
QUANTILE = 99.9


@dataclass(frozen=True)
class ErrorStats:
    """One candidate's error on one output."""

    candidate: str  # its label, "[1] path"
    output: str
    size: int
    max_abs: float
    p999_abs: float
    max_rel: float  # over significant elements
    p999_rel: float
    worst_index: tuple[int, ...]
    comparable: bool = True
    note: str = ""  # why not comparable (dtype or shape changed)
    precision_change: str = ""  # "float32 -> float16": compared in float64, needs allowing
    # Elements no tolerance accepts: an infinity or NaN on one side only (log(0) moved).
    # They count as mismatches; the other statistics are over the finite differences.
    nonfinite: int = 0


def _labels(golden: np.ndarray, candidate: np.ndarray) -> tuple[str, str]:
    return dtype_label(golden), dtype_label(candidate)


def error_stats(label: str, output: str, golden: np.ndarray, candidate: np.ndarray
                ) -> ErrorStats:
    was, now = _labels(golden, candidate)
    # A float precision change (a mixed-precision build returning float16) is measured in
    # float64, which holds every float format exactly; compare accepts it only with
    # allow_dtype_change, which the proposal then sets.
    precision = precision_change(was, now)
    if (was != now and not precision) or golden.shape != candidate.shape:
        what = (f"dtype {golden.dtype} -> {candidate.dtype}" if golden.dtype != candidate.dtype
                else f"shape {golden.shape} -> {candidate.shape}")
        return ErrorStats(label, output, int(golden.size), math.inf, math.inf, math.inf,
                          math.inf, (), False, f"{what}: no tolerance accepts it")
    if golden.size == 0:
        return ErrorStats(label, output, 0, 0.0, 0.0, 0.0, 0.0, ())
    diff, mag = _absdiff(golden, candidate)
    finite = np.isfinite(diff)
    rel = _significant_rel(np.where(finite, diff, 0.0), mag)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), golden.shape))
    p999 = float(np.percentile(diff[finite], QUANTILE)) if finite.any() else 0.0
    return ErrorStats(label, output, int(golden.size), float(diff.max()), p999,
                      float(rel.max()) if rel.size else 0.0,
                      float(np.percentile(rel, QUANTILE)) if rel.size else 0.0, worst,
                      precision_change=f"{was} -> {now}" if precision else "",
                      nonfinite=int(diff.size - np.count_nonzero(finite)))


def _absdiff(golden: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|c - g| and |g| in float64, NaN matching NaN (the config's default)."""
    if golden.dtype.kind not in "iufc" and dtype_label(golden) != "bfloat16":
        differ = np.asarray(golden != candidate, dtype=np.float64)
        return differ.reshape(golden.shape), np.ones(golden.shape)
    g = golden.astype(np.float64)
    c = candidate.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(c - g)
        diff[g == c] = 0.0
        diff[np.isnan(g) & np.isnan(c)] = 0.0
        diff[np.isnan(diff)] = np.inf
    mag = np.abs(g)
    mag[~np.isfinite(mag)] = 0.0
    return diff, mag


def _significant_rel(diff: np.ndarray, mag: np.ndarray) -> np.ndarray:
    top = float(mag.max()) if mag.size else 0.0
    keep = mag >= SIGNIFICANT * top
    if top == 0 or not keep.any():
        return np.zeros(0)
    rel: np.ndarray = diff[keep] / mag[keep]
    return rel


def _up(x: float) -> float:
    """Round up to 2 significant digits, after dropping float noise: 2 x (1 - 0.98) is
    0.04000000000000004, and must propose 0.04, not 0.041."""
    return round_sig(float(f"{x:.12g}"), up=True, digits=2)


@dataclass(frozen=True)
class ToleranceProposal:
    output: str
    dtype: str
    atol: float
    rtol: float
    max_mismatch_fraction: float | None
    comments: dict[str, str]  # key -> evidence comment
    stats: tuple[ErrorStats, ...]
    allow_dtype_change: bool = False


def propose_tolerance(output: str, golden: np.ndarray,
                      candidates: Sequence[tuple[str, np.ndarray]], margin: float
                      ) -> ToleranceProposal | None:
    """Limits for one output accepting every candidate with ``margin``; ``None`` when every
    candidate matches it exactly (the defaults already accept them)."""
    stats = tuple(error_stats(label, output, golden, c) for label, c in candidates)
    ok = [(s, c) for s, (_, c) in zip(stats, candidates, strict=True) if s.comparable]
    dtype = dtype_label(golden)
    changed = [s for s, _ in ok if s.precision_change]
    if all(s.max_abs == 0 for s, _ in ok) and not changed:
        return None
    if dtype not in FLOAT_DEFAULTS:
        return _exact_kind_proposal(output, dtype, golden, ok, margin, stats)
    # compare judges a precision change by the coarser dtype's defaults; so does the floor.
    coarse = dtype
    for s in changed:
        coarse = less_precise(coarse, s.precision_change.split(" -> ")[1])
    d_rtol, d_atol = FLOAT_DEFAULTS[coarse]
    worst_rel = max(ok, key=lambda sc: sc[0].p999_rel)[0]
    rtol = max(d_rtol, _up(margin * worst_rel.p999_rel))
    need, need_by = 0.0, ok[0][0]
    need_at: tuple[int, ...] = ()
    for s, c in ok:
        diff, mag = _absdiff(golden, c)
        n = np.where(np.isfinite(diff), diff - rtol * mag, 0.0)
        i = int(np.argmax(n))
        if float(n.flat[i]) > need:
            need, need_by = float(n.flat[i]), s
            need_at = tuple(int(k) for k in np.unravel_index(i, golden.shape))
    atol = max(d_atol, _up(margin * need))
    worst_abs = max(ok, key=lambda sc: sc[0].max_abs)[0]
    rtol_note = (f"p99.9 of |c-g|/|g| (elements with |g| >= {SIGNIFICANT:g} x max|g|): "
                 f"{worst_rel.p999_rel:.3g} ({worst_rel.candidate}); x{margin:g}")
    where = (f" ({need_by.candidate}{', element ' + str(need_at) if need_at else ''}); "
             f"x{margin:g}") if need > 0 else " (the rtol covers every element)"
    atol_note = (f"largest |c-g| - rtol*|g|: {need:.3g}{where}; max |c-g| "
                 f"{worst_abs.max_abs:.3g} ({worst_abs.candidate})")
    if rtol == d_rtol:
        rtol_note += f"; kept at the {coarse} default {d_rtol:g}"
    if atol == d_atol:
        atol_note += f"; kept at the {coarse} default {d_atol:g}"
    comments = {"rtol": rtol_note, "atol": atol_note}
    if changed:
        comments["allow_dtype_change"] = ", ".join(
            f"{s.candidate} returns {s.precision_change.split(' -> ')[1]}" for s in changed) \
            + f" (the golden {dtype}); compared in the wider dtype"
    share = _nonfinite_share(ok, margin, comments)
    return ToleranceProposal(output, dtype, atol, rtol, share, comments, stats, bool(changed))


def _nonfinite_share(ok: Sequence[tuple[ErrorStats, np.ndarray]], margin: float,
                     comments: dict[str, str]) -> float | None:
    """The share of mismatches to allow for elements whose infinity or NaN moved (no atol
    accepts -inf -> 0), or None when every difference is finite."""
    worst = max((s for s, _ in ok), key=lambda s: s.nonfinite / max(s.size, 1))
    if not worst.nonfinite:
        return None
    frac = worst.nonfinite / worst.size
    comments["max_mismatch_fraction"] = (
        f"{worst.nonfinite} of {worst.size} elements move an infinity or NaN "
        f"({worst.candidate}), which no atol accepts; x{margin:g}")
    return min(1.0, _up(margin * frac))


def _exact_kind_proposal(output: str, dtype: str, golden: np.ndarray,
                         ok: Sequence[tuple[ErrorStats, np.ndarray]], margin: float,
                         stats: tuple[ErrorStats, ...]) -> ToleranceProposal:
    worst = max(ok, key=lambda sc: sc[0].max_abs)[0]
    if dtype in ("string", "bool"):
        frac = max(float(np.mean(_absdiff(golden, c)[0] > 0)) for _, c in ok)
        share = min(1.0, _up(margin * frac))
        return ToleranceProposal(output, dtype, 0.0, 0.0, share, {
            "max_mismatch_fraction": f"worst share of differing elements {frac:.3g} "
                                     f"({worst.candidate}); x{margin:g}"}, stats)
    atol = float(math.ceil(worst.max_abs))
    return ToleranceProposal(output, dtype, atol, 0.0, None, {
        "atol": f"integers moved by up to {worst.max_abs:g} ({worst.candidate}); "
                "integer steps are not scaled by the margin"}, stats)


@dataclass(frozen=True)
class MetricProposal:
    output: str
    metric: str
    kind: str  # "task" | "agreement"
    key: str  # "max_drop" | "min"
    limit: float
    comment: str


# Metrics that are the share of rows a decision got right: they move by 1/rows at a time.
ROW_SHARES = frozenset({"accuracy", "top3_accuracy", "top5_accuracy", "top1_agreement"})


def propose_metric(output: str, metric: str, checks: Sequence[tuple[str, MetricCheck]],
                   margin: float, rows: int) -> MetricProposal | None:
    """A limit on one metric that every candidate's value meets with ``margin``."""
    values = [(label, c) for label, c in checks if math.isfinite(c.candidate)]
    if not values:
        return None
    kind = values[0][1].kind
    # A share of rows moves in steps of 1/rows; other metrics (log_loss, roc_auc) do not.
    step = f"; one of {rows} rows is {1 / rows:.3g}" if rows and metric in ROW_SHARES else ""
    if kind == "agreement":
        label, worst = min(values, key=lambda lc: lc[1].candidate)
        gap = 1.0 - worst.candidate
        # Rounding the gap up, not the limit down: 0.99999994 must not become 0.999.
        # Floored at the metric's lowest value (0 for a share, -1 for a cosine), which never
        # lies above the worst value seen.
        floor = AGREEMENT_LOWEST.get(metric, 0.0)
        limit = max(floor, 1.0 - _up(margin * gap)) if gap > 0 else 1.0
        note = (f"worst {worst.candidate:.8g} ({label}); 1 - {margin:g} x (1 - worst)"
                + (f"{step}" if gap == 0 and metric == "top1_agreement" else ""))
        return MetricProposal(output, metric, kind, "min", limit, note)
    drops = [(label, c, _drop(c)) for label, c in values if c.golden is not None]
    if not drops:
        return None
    label, worst, drop = max(drops, key=lambda lcd: lcd[2])
    limit = _up(margin * drop) if drop > 0 else 0.0
    note = (f"worst drop {drop:.3g} ({label}: {worst.golden:.4g} -> {worst.candidate:.4g}); "
            f"x{margin:g}")
    if drop <= 0:
        note = f"no candidate worsened it ({label}: {worst.golden:.4g} -> {worst.candidate:.4g})" \
               f"; 0 fails any drop{step}"
    return MetricProposal(output, metric, kind, "max_drop", limit, note)


def _drop(c: MetricCheck) -> float:
    if c.golden is None:
        return 0.0
    d = c.golden - c.candidate if c.direction == "higher" else c.candidate - c.golden
    return max(0.0, float(d))


@dataclass(frozen=True)
class CostRow:
    """Rows whose largest element error falls in one decade, and what they cost."""

    output: str
    level: float  # upper edge of the decade; rows with max |c-g| in (level/10, level]
    rows: int
    flips: int  # rows whose top-1 decision differs from the golden's
    top1_agreement: float
    accuracy_delta: float | None  # candidate - golden accuracy on those rows (with labels)
    cumulative_agreement: float  # over every row up to this level


def cost_table(output: str, golden: np.ndarray,
               candidates: Sequence[np.ndarray], labels: np.ndarray | None) -> list[CostRow]:
    """Decisions by element-error decade, pooled over ``candidates`` (classification-shaped
    float outputs: one row per sample, the decision its argmax, or ``> 0.5`` / ``> 0`` for a
    single score)."""
    errs: list[np.ndarray] = []
    agree: list[np.ndarray] = []
    gain: list[np.ndarray] = []
    g_dec = _decisions(golden)
    for c in candidates:
        if c.shape != golden.shape or golden.dtype.kind != "f" or golden.ndim < 1:
            continue
        diff, _ = _absdiff(golden, c)
        errs.append(diff.reshape(diff.shape[0], -1).max(axis=1))
        c_dec = _decisions(c)
        agree.append(c_dec == g_dec)
        if labels is not None and labels.shape[0] == golden.shape[0]:
            lab = labels.reshape(labels.shape[0], -1)[:, 0] if labels.ndim > 1 \
                and labels.shape[1] == 1 else labels
            if lab.ndim == 1:
                gain.append((c_dec == lab).astype(float) - (g_dec == lab).astype(float))
    if not errs:
        return []
    e = np.concatenate(errs)
    a = np.concatenate(agree)
    acc = np.concatenate(gain) if len(gain) == len(errs) else None
    with np.errstate(divide="ignore"):
        decade = np.where(e > 0, np.ceil(np.log10(np.where(e > 0, e, 1.0))), -np.inf)
    rows: list[CostRow] = []
    for d in sorted(set(decade.tolist())):
        sel = decade == d
        upto = decade <= d
        level = 0.0 if d == -np.inf else float(10.0 ** d)
        rows.append(CostRow(output, level, int(sel.sum()), int((~a[sel]).sum()),
                            float(a[sel].mean()),
                            None if acc is None else float(acc[sel].mean()),
                            float(a[upto].mean())))
    return rows


def _decisions(scores: np.ndarray) -> np.ndarray:
    flat = scores.reshape(scores.shape[0], -1).astype(np.float64)
    if flat.shape[1] > 1:
        top: np.ndarray = np.argmax(flat, axis=1)
        return top
    in_unit = bool(np.all((flat >= 0) & (flat <= 1)))
    return (flat[:, 0] > (0.5 if in_unit else 0.0)).astype(np.int64)


# --- the proposed snapshot.toml ------------------------------------------------------------


def _key(name: str) -> str:
    # A TOML basic string is JSON-compatible for the names outputs have.
    return json.dumps(name)


def _value(x: float) -> str:
    return repr(float(x))


def render_toml(header: Sequence[str], tolerances: Sequence[ToleranceProposal],
                metrics: Sequence[MetricProposal], rename: Mapping[str, str] | None = None
                ) -> str:
    """The proposal as a ``snapshot.toml``, every limit commented with its evidence."""
    lines = [f"# {h}" if h else "#" for h in header]
    if rename:
        lines += ["", "[rename]  # the golden's name = the candidates' (given with --map)"]
        lines += [f"{_key(old)} = {_key(new)}" for old, new in sorted(rename.items())]
    by_output: dict[str, list[MetricProposal]] = {}
    for m in metrics:
        by_output.setdefault(m.output, []).append(m)
    names = sorted({t.output for t in tolerances} | set(by_output))
    tol_by = {t.output: t for t in tolerances}
    for name in names:
        t = tol_by.get(name)
        lines += ["", f"[outputs.{_key(name)}]"]
        if t is None:
            lines.append("# every candidate matched this output exactly; the dtype defaults "
                         "apply")
        else:
            if t.dtype in FLOAT_DEFAULTS or t.atol:
                lines.append(f"atol = {_value(t.atol)}  # {t.comments.get('atol', '')}")
            if t.dtype in FLOAT_DEFAULTS:
                lines.append(f"rtol = {_value(t.rtol)}  # {t.comments.get('rtol', '')}")
            if t.allow_dtype_change:
                lines.append(f"allow_dtype_change = true  "
                             f"# {t.comments.get('allow_dtype_change', '')}")
            if t.max_mismatch_fraction is not None:
                lines.append(f"max_mismatch_fraction = {_value(t.max_mismatch_fraction)}  "
                             f"# {t.comments.get('max_mismatch_fraction', '')}")
        ms = by_output.get(name, [])
        if ms:
            lines += ["", f"[outputs.{_key(name)}.metrics]"]
            for m in sorted(ms, key=lambda m: (m.kind, m.metric)):
                lines.append(f"{m.metric} = {{ {m.key} = {_value(m.limit)} }}  # {m.comment}")
    return "\n".join(lines) + "\n"


def format_cost(rows: Sequence[CostRow], rows_total: Mapping[str, int] | None = None
                ) -> list[str]:
    """The cost table as console lines: per error decade, rows and what they lose."""
    if not rows:
        return []
    out = ["cost of element error (rows of every candidate, acceptable and rejected, by their "
           "largest |c-g|):"]
    table = [["output", "max |c-g| <=", "rows", "top-1 flips", "top-1 agreement",
              "accuracy delta", "agreement up to here"]]
    for r in rows:
        table.append([r.output, "0" if r.level == 0 else f"{r.level:.0e}", str(r.rows),
                      str(r.flips), f"{r.top1_agreement:.4f}",
                      "-" if r.accuracy_delta is None else f"{r.accuracy_delta:+.4f}",
                      f"{r.cumulative_agreement:.4f}"])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table]
    return out
