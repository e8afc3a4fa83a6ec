"""``compare --runner beam``: the driver. It plans the run from the golden's first rows and
whole-run values (never its data), lets the pipeline diff and score every range, and turns
the merged results into the :class:`ComparisonResult` the in-process run would give.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool.beam import LATENCY_NOTE, pipeline_args, require_beam
from snapshot_tool.beam.work import CompareJob, OutputPartial, OutputPlan, execute
from snapshot_tool.compare import (
    ComparisonResult,
    SaveObtained,
    _batch_size,
    _candidate_signature,
    _check_renames,
    _fit_inputs,
    _output_task,
    _prefix,
    _recorded_task_conflicts,
    judged_tolerance,
    output_names,
    output_tolerance,
    validate_metric_config,
)
from snapshot_tool.config import Config, load_config
from snapshot_tool.diff import TensorDiff, extra, missing
from snapshot_tool.diff_merge import finish
from snapshot_tool.errors import ConfigError, InputsError, SignatureError
from snapshot_tool.golden.schema import Golden, SignatureGolden
from snapshot_tool.progress import Progress, no_progress

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from snapshot_tool.metrics.tasks import MetricValue
    from snapshot_tool.metrics.thresholds import MetricCheck

# Ranges per worker when splitting a single-file golden: enough to even out stragglers.
RANGES = 16
OBTAINED_NOTE = ("no obtained golden was written: --runner beam does not write one yet; "
                 "compare in-process to get G.obtained.h5 for review and `accept`")


def compare_beam(model_path: str | Path, golden_path: str | Path, *,
                 config: Config | str | Path | None = None, signature: str | None = None,
                 tag: str | None = None, latency: bool = True,
                 baseline_model: str | Path | None = None, latency_strict: bool = False,
                 beam_args: Sequence[str] = (), ranges: int = RANGES,
                 progress: Progress = no_progress,
                 rename: Mapping[str, str] | None = None,
                 error_summaries: bool | None = None,
                 save_obtained: SaveObtained = "never") -> ComparisonResult:
    """:func:`snapshot_tool.compare.compare` as a Beam pipeline (see the package doc).
    ``save_obtained`` is not carried out yet: a run that would write an obtained golden
    says so in a warning instead."""
    require_beam()
    flags = pipeline_args(beam_args)
    from snapshot_tool.golden.describe import describe_golden
    from snapshot_tool.golden.io import verify_golden
    from snapshot_tool.golden.sharded import is_sharded, read_head, row_ranges

    p = Path(golden_path)
    if not is_sharded(p):
        # A range of a single file cannot check whole-tensor checksums; check them here,
        # streaming (a sharded golden's workers check their own shards).
        verify_golden(p)
    head = read_head(p, 64)
    shapes = _shapes(describe_golden(p))
    head = _with_facts(head, shapes, p)
    if tag is None:
        tag = head.info.tag
    cfg = config if isinstance(config, Config) else load_config(config)
    if rename:
        cfg = replace(cfg, rename={**cfg.rename, **rename})
    names = _signatures(head, signature)
    warnings = _check_renames(head, names, cfg, rename or {}) + _early_warnings(head, names,
                                                                               cfg)
    batch_size = _batch_size(head)
    progress("planning", 0, 1)
    candidate_sigs, notes = _candidate(model_path, tag, head, names, cfg)
    warnings += notes
    if baseline_model is not None:
        warnings.append("--baseline-model is only used to time latency; it was ignored "
                        "because of " + ("--runner beam" if latency else "--no-latency"))
    if latency:
        warnings.append(LATENCY_NOTE)
    plans = {(sig, out): _plan(head, sig, out, cfg, shapes) for sig in names
             for out in head.signatures[sig].outputs}
    job = CompareJob(str(model_path), tag, batch_size, candidate_sigs, plans, cfg.rename)
    step = _range_rows(head, names, ranges, batch_size)
    items = [r for name in names for r in row_ranges(p, name, step)]
    progress("running on Beam", 0, len(items))
    results = execute(job, items, flags)
    progress("running on Beam", len(items), len(items))
    diffs: list[TensorDiff] = []
    checks: list[MetricCheck] = []
    for name in names:
        sig_diffs = _diffs(head.signatures[name], name, results, shapes, error_summaries)
        diffs.extend(sig_diffs)
        checks.extend(_metric_checks(head, name, sig_diffs, results, cfg))
    result = ComparisonResult(golden=str(p), model=str(model_path), signatures=tuple(names),
                              outputs=tuple(diffs), metrics=tuple(checks), latency=(),
                              latency_mode=None, latency_strict=latency_strict,
                              warnings=tuple(warnings), config_source=cfg.source,
                              baseline_model=str(baseline_model)
                              if baseline_model is not None else None,
                              multi_signature=len(head.signatures) > 1)
    if save_obtained == "always" or (save_obtained == "on_failure" and not result.passed):
        result = replace(result, warnings=(*result.warnings, OBTAINED_NOTE))
    return result


def _candidate(model_path: str | Path, tag: str, head: Golden, names: list[str], cfg: Config
               ) -> tuple[dict[str, str], list[str]]:
    """The candidate's signature for each of the golden's, and the notes an in-process run
    gives on its interface, checked on the golden's first rows before any worker starts."""
    from snapshot_tool.models.load import load_model
    from snapshot_tool.models.scan import allowed_ops, refuse_flagged

    candidate_sigs: dict[str, str] = {}
    warnings: list[str] = []
    with load_model(model_path, tag=tag) as model:
        # Scanned in the driver, before any worker runs it.
        refuse_flagged(model, allowed_ops((), cfg))
        warnings += [f"candidate: {n}" for n in model.notes]
        for name in names:
            sig, note = _candidate_signature(model, name, single=len(names) == 1)
            candidate_sigs[name] = sig.name
            _, fit_note = _fit_inputs(sig, head.signatures[name], model, renames=cfg.rename)
            _, name_notes = output_names(head.signatures[name], {o.name for o in sig.outputs},
                                         cfg.rename)
            warnings += [n for n in (note, fit_note) if n] + name_notes
    return candidate_sigs, warnings


def _signatures(head: Golden, signature: str | None) -> list[str]:
    names = sorted(head.signatures)
    if signature is not None and signature != "all":
        if signature not in head.signatures:
            raise SignatureError(f"golden {head.path} has no signature {signature!r}; it "
                                 f"holds: {', '.join(names)}")
        names = [signature]
    return names


def _early_warnings(head: Golden, names: list[str], cfg: Config) -> list[str]:
    """The config checks the in-process compare makes before any model runs."""
    warnings = _recorded_task_conflicts(head, names, cfg)
    qualified = [_prefix(head, sig) + out for sig in names for out in head.signatures[sig].outputs]
    warnings += [
        f"config table [outputs.{pattern!r}] matches no output of the golden (it has: "
        f"{', '.join(sorted(qualified))}); check the name" for pattern in
        cfg.unmatched_outputs(qualified)]
    try:
        validate_metric_config(head, names, cfg)
    except ConfigError as exc:
        if warnings:
            raise ConfigError(f"{exc} ({warnings[0]})") from None
        raise
    return warnings


# (signature, "inputs" | "outputs" | "labels", name) -> the whole golden's shape
Shapes = dict[tuple[str, str, str], tuple[int, ...]]


def _shapes(info: dict[str, Any]) -> Shapes:
    shapes: Shapes = {}
    for sig, entry in info["signatures"].items():
        for grp in ("inputs", "outputs"):
            for t in entry[grp]:
                shapes[(sig, grp, t["name"])] = tuple(t["shape"])
        if "labels" in entry:
            shapes[(sig, "labels", "")] = tuple(entry["labels"]["shape"])
    return shapes


def _with_facts(head: Golden, shapes: Shapes, path: Path) -> Golden:
    """``head`` whose one-value-per-row float outputs stand for the whole output in task
    inference, which asks whether *every* value is in [0, 1]: that one fact is read from the
    whole output (a float per row), the rest of inference needs only dtype and shape."""
    from snapshot_tool.golden.sharded import output_blocks
    from snapshot_tool.metrics.tasks import in_unit_interval, is_float, per_row

    sigs: dict[str, SignatureGolden] = {}
    for name, sg in head.signatures.items():
        outputs = dict(sg.outputs)
        for out, arr in sg.outputs.items():
            shape = shapes[(name, "outputs", out)]
            if is_float(arr.dtype) and len(shape) <= 2 and per_row(shape) == 1 and arr.ndim:
                unit = all(in_unit_interval(b.astype(np.float64))
                           for b in output_blocks(path, name, out))
                outputs[out] = np.full(arr.shape, 0.5 if unit else 2.0, dtype=arr.dtype)
        sigs[name] = replace(sg, outputs=outputs)
    return replace(head, signatures=sigs)


def _plan(head: Golden, sig: str, out: str, cfg: Config, shapes: Shapes) -> OutputPlan:
    from snapshot_tool.dtypes import FLOAT_PRECISION, dtype_label

    sg = head.signatures[sig]
    prefix = _prefix(head, sig)
    label = dtype_label(sg.outputs[out])
    tol, spread = output_tolerance(sg, out, label, cfg, prefix)
    # Which tolerance applies to a float precision change depends on the candidate's dtype,
    # which only the workers see: they pick from these.
    tols = {d: judged_tolerance(sg, out, label, d, cfg, prefix)[0] for d in FLOAT_PRECISION
            if d != label} if label in FLOAT_PRECISION else {}
    task, threshold = _output_task(sg, out, cfg, prefix + out)
    want = bool(out in sg.metrics and sg.metrics[out].values and sg.labels is not None)
    shape = shapes[(sig, "outputs", out)]
    oc = cfg.output(prefix + out)
    return OutputPlan(tol, spread, task, threshold, want, shape[0] if shape else 1,
                      oc is not None and oc.allow_dtype_change, tols)


def _range_rows(head: Golden, names: list[str], ranges: int, batch_size: int) -> int:
    """Rows per range of a single-file golden: about ``ranges`` ranges, whole batches."""
    rows = max((next(iter(head.signatures[n].inputs.values())).shape[0]
                if head.signatures[n].inputs else 0) for n in names)
    total = head.info.num_samples or rows
    per = math.ceil(max(total, 1) / max(ranges, 1))
    return max(batch_size, math.ceil(per / batch_size) * batch_size)


def _diffs(sg: SignatureGolden, sig: str, results: dict[tuple[str, str], Any],
           shapes: Shapes, summaries: bool | None) -> list[TensorDiff]:
    """The diffs in the in-process order: golden outputs by name, then extra outputs."""
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        part: OutputPartial = results[(sig, name)]
        if part.status == "missing":
            diffs.append(replace(missing(name, sg.outputs[name], sig),
                                 golden_shape=shapes[(sig, "outputs", name)]))
        else:
            assert part.diff is not None
            diffs.append(finish(part.diff, summaries))
    extras = sorted(out for (s, out), part in results.items()
                    if s == sig and isinstance(part, OutputPartial) and part.status == "extra")
    for name in extras:
        part = results[(sig, name)]
        d = extra(name, np.empty((0,), np.float32), sig)
        diffs.append(replace(d, candidate_dtype=part.extra_dtype,
                             candidate_shape=(part.extra_rows, *part.extra_tail)))
    return diffs


def _metric_checks(head: Golden, sig: str, diffs: list[TensorDiff],
                   results: dict[tuple[str, str], Any], cfg: Config) -> list[MetricCheck]:
    """:func:`snapshot_tool.compare.compare_metrics` from merged accumulators."""
    from snapshot_tool.metrics.mergeable import finish_agreement, finish_task
    from snapshot_tool.metrics.tasks import MetricValue
    from snapshot_tool.metrics.thresholds import check_all

    sg = head.signatures[sig]
    prefix = _prefix(head, sig)
    comparable = {d.name for d in diffs if d.status in ("ok", "mismatch")}
    checks: list[MetricCheck] = []
    for name in sorted(sg.outputs):
        golden_values = {k: MetricValue(k, v.value, v.direction)
                         for k, v in (sg.metrics[name].values.items()
                                      if name in sg.metrics else ())}
        cand_task: dict[str, MetricValue] = {}
        cand_agree: dict[str, MetricValue] = {}
        part: OutputPartial = results[(sig, name)]
        if name in comparable:
            if golden_values and part.task is not None:
                with contextlib.suppress(InputsError):
                    cand_task = finish_task(part.task)
            if part.agreement is not None:
                cand_agree = finish_agreement(part.agreement)
        if golden_values or cand_agree:
            checks.extend(check_all(prefix + name, golden_values, cand_task, cand_agree, cfg))
    return checks
