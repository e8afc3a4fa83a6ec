"""Metric thresholds: checking a metric against its limits, and validating the config's
threshold names before any model runs (see the package docstring for the rules).

Every compare (in memory, streamed, on Beam, and ``calibrate``'s verdicts) judges an output's
metrics through :func:`output_checks`; :func:`compare_metrics` is the in-memory one.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

import numpy as np

from snapshot_tool.config import Config, MetricThreshold
from snapshot_tool.errors import ConfigError, InputsError
from snapshot_tool.metrics.agreement import AGREEMENT_METRICS, agreement_metrics
from snapshot_tool.metrics.tasks import (
    KNOWN_METRICS,
    Direction,
    MetricKind,
    MetricValue,
    OutputInfo,
    array_info,
    output_task,
    task_metrics,
)
from snapshot_tool.names import signature_prefix

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from snapshot_tool.diff import TensorDiff
    from snapshot_tool.golden.schema import Golden, SignatureGolden


# A limit written as 0.01 must accept a drop of 0.95 - 0.94 = 0.010000000000000009.
_REL_SLACK = 1e-9
_ABS_SLACK = 1e-12


@dataclass(frozen=True)
class MetricCheck:
    """The verdict on one metric of one output."""

    output: str
    name: str
    kind: MetricKind
    golden: float | None
    candidate: float
    delta: float | None  # candidate - golden, signed; None when there is no golden value
    direction: Direction
    limit: str  # e.g. "drop <= 0.01, min 0.9"; "" when informational
    passed: bool
    note: str = ""


def _num(x: float) -> str:
    return f"{x:g}"


def round_sig(x: float, up: bool, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits, rounded up or down so that a limit suggested
    from it accepts ``x`` (a limit rounded the wrong way would fail the very value it is
    meant to accept). Decimal arithmetic on ``repr(x)``: exact, no float epsilon games."""
    if not math.isfinite(x) or x == 0:
        return x
    d = Decimal(repr(x))
    q = Decimal(1).scaleb(d.adjusted() - digits + 1)
    return float(d.quantize(q, rounding=ROUND_CEILING if up else ROUND_FLOOR))


def _suggest(x: float, up: bool) -> str:
    return repr(round_sig(x, up))


def _within(value: float, limit: float) -> bool:
    return value <= limit or math.isclose(value, limit, rel_tol=_REL_SLACK, abs_tol=_ABS_SLACK)


def _limit_text(t: MetricThreshold) -> str:
    parts = []
    if t.max_drop is not None:
        parts.append(f"drop <= {_num(t.max_drop)}")
    if t.max_relative_drop is not None:
        parts.append(f"relative drop <= {_num(t.max_relative_drop)}")
    if t.min is not None:
        parts.append(f"min {_num(t.min)}")
    if t.max is not None:
        parts.append(f"max {_num(t.max)}")
    return ", ".join(parts)


def _has_drop(t: MetricThreshold) -> bool:
    return t.max_drop is not None or t.max_relative_drop is not None


def _agreement_drop_error(name: str, where: str = "") -> ConfigError:
    prefix = f"{where}: " if where else ""
    return ConfigError(
        f"{prefix}max_drop/max_relative_drop cannot apply to {name!r}: it compares the "
        "candidate's outputs with the golden's directly, so there is no golden value to drop "
        f"from; use min (e.g. {name} = {{ min = 0.99 }})"
    )


def check_metric(
    output: str,
    name: str,
    kind: MetricKind,
    golden: MetricValue | None,
    candidate: MetricValue,
    threshold: MetricThreshold | None,
) -> MetricCheck:
    """Judge one metric against its threshold (see the module docstring for the rules)."""
    g = golden.value if golden is not None else None
    c = candidate.value
    direction = candidate.direction
    delta = None if g is None else (0.0 if g == c else c - g)
    c_nan = math.isnan(c)
    g_finite = g is not None and math.isfinite(g)

    def done(limit: str, passed: bool, notes: Iterable[str]) -> MetricCheck:
        return MetricCheck(output, name, kind, g, c, delta, direction, limit, passed,
                           "; ".join(dict.fromkeys(n for n in notes if n)))

    if threshold is None:
        note = "candidate is NaN (no threshold set, informational)" if c_nan and g_finite else ""
        return done("", True, [note])
    if kind == "agreement" and _has_drop(threshold):
        raise _agreement_drop_error(name)

    nan_note = f"candidate is NaN, golden was {_num(g)}" if g_finite and g is not None \
        else "candidate is NaN"
    drop_ok, drop_notes = _check_drop(name, g, c, direction, threshold, nan_note)
    bound_ok, bound_notes = _check_bounds(name, c, threshold, nan_note)
    return done(_limit_text(threshold), drop_ok and bound_ok, drop_notes + bound_notes)


def _check_drop(name: str, g: float | None, c: float, direction: Direction,
                threshold: MetricThreshold, nan_note: str) -> tuple[bool, list[str]]:
    """``max_drop`` and ``max_relative_drop``: (passed, notes)."""
    if not _has_drop(threshold):
        return True, []
    if g is None:
        return False, [f"the golden has no {name!r} to measure a drop from; re-record the "
                       "golden (record --force) or remove the drop limit"]
    if math.isnan(c) and not math.isnan(g):
        return False, [nan_note]
    if math.isnan(g):
        return True, ["golden is NaN; drop limits not evaluated"]
    passed = True
    notes: list[str] = []
    drop = (g - c if direction == "higher" else c - g) if g != c else 0.0
    if threshold.max_drop is not None and not _within(drop, threshold.max_drop):
        passed = False
        notes.append(f"{name} dropped by {_num(drop)} (limit {_num(threshold.max_drop)});"
                     f" to accept, set max_drop = {_suggest(drop, up=True)}")
    mrd = threshold.max_relative_drop
    if mrd is None:
        return passed, notes
    if g == 0:
        notes.append("golden is 0, so max_relative_drop was applied as an absolute drop limit")
        if not _within(drop, mrd):
            passed = False
            notes.append(f"{name} dropped by {_num(drop)} from 0 (limit {_num(mrd)}); to "
                         f"accept, set max_relative_drop = {_suggest(drop, up=True)}")
        return passed, notes
    rel = drop / abs(g)
    if not _within(rel, mrd):
        passed = False
        notes.append(f"{name} dropped by {_num(rel * 100)}% of {_num(g)} (limit "
                     f"{_num(mrd * 100)}%); to accept, set max_relative_drop = "
                     f"{_suggest(rel, up=True)}")
    return passed, notes


def _check_bounds(name: str, c: float, threshold: MetricThreshold, nan_note: str
                  ) -> tuple[bool, list[str]]:
    """``min`` and ``max`` of the candidate's value: (passed, notes)."""
    if threshold.min is None and threshold.max is None:
        return True, []
    if math.isnan(c):
        return False, [nan_note]
    notes: list[str] = []
    if threshold.min is not None and not _within(threshold.min, c):
        notes.append(f"{name} {_num(c)} is below min {_num(threshold.min)}; to accept, "
                     f"set min = {_suggest(c, up=False)}")
    if threshold.max is not None and not _within(c, threshold.max):
        notes.append(f"{name} {_num(c)} is above max {_num(threshold.max)}; to accept, "
                     f"set max = {_suggest(c, up=True)}")
    return not notes, notes



def check_all(
    output: str,
    golden: dict[str, MetricValue],
    candidate_task: dict[str, MetricValue],
    candidate_agreement: dict[str, MetricValue],
    config: Config,
) -> list[MetricCheck]:
    """Every metric check of one output: golden task metrics first, then agreement metrics.

    A task metric the golden has but the candidate lacks fails (the candidate's output changed
    kind, e.g. probabilities became logits and log_loss vanished). One only the candidate has is
    checked without a golden value.
    """
    checks: list[MetricCheck] = []
    for name, g in golden.items():
        threshold = config.metric_threshold(output, name)
        c = candidate_task.get(name)
        if c is None:
            checks.append(MetricCheck(
                output=output, name=name, kind="task", golden=g.value, candidate=math.nan,
                delta=None, direction=g.direction,
                limit=_limit_text(threshold) if threshold else "", passed=False,
                note=f"the golden has {name!r} but the candidate does not: its output no longer "
                     "fits the recorded task (shape, dtype, or probabilities vs logits changed)",
            ))
        else:
            checks.append(check_metric(output, name, "task", g, c, threshold))
    for name, c in candidate_task.items():
        if name not in golden:
            checks.append(check_metric(output, name, "task", None, c,
                                       config.metric_threshold(output, name)))
    for name, c in candidate_agreement.items():
        checks.append(check_metric(output, name, "agreement", None, c,
                                   config.metric_threshold(output, name)))
    return checks


def _unknown_metric(where: str, metric: str, names: set[str], scope: str) -> ConfigError:
    avail = ", ".join(sorted(names)) or "(none)"
    if metric in KNOWN_METRICS:
        hint = "" if metric in AGREEMENT_METRICS else (
            " (task metrics need labels in the golden and an output whose task has the metric)"
        )
        return ConfigError(f"{where}: threshold for metric {metric!r}, which no output{scope} "
                           f"has; available{scope}: {avail}{hint}")
    msg = f"{where}: threshold for unknown metric {metric!r}; available{scope}: {avail}"
    close = difflib.get_close_matches(metric, sorted(names | set(KNOWN_METRICS)), n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return ConfigError(msg)


def _check_limits(where: str, metric: str, t: MetricThreshold) -> None:
    if metric in AGREEMENT_METRICS and _has_drop(t):
        raise _agreement_drop_error(metric, where)
    if t.min is not None and t.max is not None and t.min > t.max:
        raise ConfigError(f"{where}: min {_num(t.min)} is above max {_num(t.max)}; "
                          "no value can pass")


def validate_thresholds(config: Config, available: dict[str, set[str]]) -> None:
    """Refuse thresholds that could never apply, before any model runs.

    ``available`` maps every output name to the metrics it has (task and agreement; an empty set
    for task ``none``). A threshold in ``[metrics]`` must name a metric some output has; one in
    ``[outputs.X.metrics]`` must name a metric every output it governs has. Otherwise a typo such
    as ``acuracy`` would leave the gate silently open.
    """
    src = config.source or "config"
    everything = set().union(*available.values()) if available else set()
    for metric, t in config.metrics.items():
        where = f"{src}: [metrics.{metric}]"
        _check_limits(where, metric, t)
        if metric not in everything:
            raise _unknown_metric(where, metric, everything, "")
    governed: set[int] = set()
    for out_name in sorted(available):
        oc = config.output(out_name)
        if oc is None:
            continue
        governed.add(id(oc))
        for metric, t in oc.metrics.items():
            where = f"{src}: [outputs.{oc.pattern!r}.metrics.{metric}]"
            _check_limits(where, metric, t)
            if metric not in available[out_name]:
                raise _unknown_metric(where, metric, available[out_name],
                                      f" for output {out_name!r}")
    # Tables that govern no output still get their names checked, so a typo never hides.
    for oc in config.outputs:
        if id(oc) in governed:
            continue
        for metric, t in oc.metrics.items():
            where = f"{src}: [outputs.{oc.pattern!r}.metrics.{metric}]"
            _check_limits(where, metric, t)
            if metric not in KNOWN_METRICS:
                raise _unknown_metric(where, metric, set(KNOWN_METRICS), "")


def recorded_values(sg: SignatureGolden, output: str) -> dict[str, MetricValue]:
    """The task metrics the golden recorded for ``output`` (none without labels)."""
    if output not in sg.metrics:
        return {}
    return {k: MetricValue(k, v.value, v.direction)
            for k, v in sg.metrics[output].values.items()}


def output_checks(key: str, recorded: dict[str, MetricValue],
                  candidate_task: dict[str, MetricValue],
                  candidate_agreement: dict[str, MetricValue], config: Config
                  ) -> list[MetricCheck]:
    """Every metric check of the output named ``key``, however its candidate values were
    computed (whole arrays, merged accumulators): an output with neither recorded task
    metrics nor agreement metrics has none."""
    if not (recorded or candidate_agreement):
        return []
    return check_all(key, recorded, candidate_task, candidate_agreement, config)


def compare_metrics(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    diffs: Sequence[TensorDiff], config: Config, prefix: str = ""
                    ) -> list[MetricCheck]:
    """Task metrics on the golden's labels and agreement metrics against its outputs."""
    comparable = {d.name for d in diffs if d.status in ("ok", "mismatch")}
    checks: list[MetricCheck] = []
    for name in sorted(sg.outputs):
        task, threshold = output_task(sg, name, config, prefix + name)
        recorded = recorded_values(sg, name)
        cand_task: dict[str, MetricValue] = {}
        cand_agree: dict[str, MetricValue] = {}
        if name in comparable:
            if recorded and sg.labels is not None:
                try:
                    cand_task = task_metrics(candidate[name], sg.labels, task, threshold)
                except InputsError:
                    cand_task = {}  # reported by check_all as a metric the candidate lacks
            cand_agree = agreement_metrics(sg.outputs[name], candidate[name], task, threshold)
        checks.extend(output_checks(prefix + name, recorded, cand_task, cand_agree, config))
    return checks


def _available_metrics(sg: SignatureGolden, config: Config, prefix: str = "",
                       infos: Mapping[str, OutputInfo] | None = None) -> dict[str, set[str]]:
    infos = infos if infos is not None else {k: array_info(v) for k, v in sg.outputs.items()}
    available: dict[str, set[str]] = {}
    for name, info in infos.items():
        task, threshold = output_task(sg, name, config, prefix + name, info)
        names = set(sg.metrics[name].values) if name in sg.metrics else set()
        # Agreement of the golden with itself yields exactly the names a candidate will
        # get; they depend on the task, dtype and shape only, so one row is enough.
        first = info.first()
        names |= set(agreement_metrics(first, first, task, threshold))
        available[prefix + name] = names
    return available


def recorded_task_conflicts(golden: Golden, names: Sequence[str], config: Config
                            ) -> list[str]:
    """Task and decision threshold are fixed when metrics are recorded; a compare-time
    config that says otherwise has no effect, and the user should hear so."""
    notes: list[str] = []
    for sig in names:
        for out, om in golden.signatures[sig].metrics.items():
            oc = config.output(signature_prefix(golden, sig) + out)
            if oc is None:
                continue
            if oc.task is not None and oc.task != om.task:
                notes.append(f"output {out!r}: the config says task {oc.task!r} but the golden's "
                             f"metrics were recorded as {om.task!r}; re-record with --config "
                             "to change it")
            if oc.threshold is not None and oc.threshold != om.threshold:
                notes.append(f"output {out!r}: the config's threshold {oc.threshold:g} differs "
                             f"from the {om.threshold:g} the golden's metrics were recorded "
                             "with; the recorded one applies (re-record with --config)")
    return notes


def validate_metric_config(golden: Golden, names: Sequence[str], config: Config,
                           infos: Mapping[str, Mapping[str, OutputInfo]] | None = None
                           ) -> None:
    """Check threshold names against what the golden offers (``infos``: per signature,
    its outputs' metadata when the golden's tensors are not in memory)."""
    available: dict[str, set[str]] = {}
    for sig in names:
        for out, metrics in _available_metrics(golden.signatures[sig], config,
                                               signature_prefix(golden, sig),
                                               infos[sig] if infos else None).items():
            available.setdefault(out, set()).update(metrics)
    validate_thresholds(config, available)
