"""``compare --runner beam``: the driver. It plans the run from the golden's first rows and
whole-run values (never its data), lets the pipeline diff and score every range, and turns
the merged results into the :class:`ComparisonResult` the in-process run would give.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool.beam import LATENCY_NOTE, pipeline_args, refuse_scalars, require_beam
from snapshot_tool.beam.work import CompareJob, OutputPartial, OutputPlan, execute
from snapshot_tool.compare import (
    CompareOptions,
    ComparisonResult,
    Prepared,
    judged,
    prepare,
    wants_obtained,
)
from snapshot_tool.config import Config
from snapshot_tool.diff import (
    TensorDiff,
    base_fields,
    extra,
    missing,
    structural,
    uneven_changed,
)
from snapshot_tool.diff_merge import finish
from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import InputsError, SnapshotToolError
from snapshot_tool.golden.schema import Golden, SignatureGolden
from snapshot_tool.matching import candidate_signature, fit_inputs, output_names
from snapshot_tool.metrics.tasks import output_task
from snapshot_tool.metrics.thresholds import output_checks, recorded_values
from snapshot_tool.names import signature_prefix
from snapshot_tool.progress import Progress, no_progress
from snapshot_tool.tolerance import judged_tolerance, output_tolerance

if TYPE_CHECKING:
    from collections.abc import Sequence

    from snapshot_tool.metrics.tasks import MetricValue
    from snapshot_tool.metrics.thresholds import MetricCheck

# Ranges per worker when splitting a single-file golden: enough to even out stragglers.
RANGES = 16
OBTAINED_NOTE = ("no obtained golden was written: --runner beam does not write one yet; "
                 "compare in-process to get G.obtained.h5 for review and `accept`")


def compare_beam(model_path: str | Path, golden_path: str | Path,
                 options: CompareOptions | None = None, *, beam_args: Sequence[str] = (),
                 ranges: int = RANGES, progress: Progress = no_progress) -> ComparisonResult:
    """:func:`snapshot_tool.compare.compare` as a Beam pipeline (see the package doc).
    ``options.save_obtained`` is not carried out yet: a run that would write an obtained
    golden says so in a warning instead."""
    options = options or CompareOptions()
    if options.require_signature or options.allow_ops:
        raise SnapshotToolError("--require-signature and --allow-ops are not available "
                                "with --runner beam yet")
    require_beam()
    flags = pipeline_args(beam_args)
    from snapshot_tool.golden.sharded import row_ranges

    p = Path(golden_path)
    head, shapes = _read_head(p)
    prepared = prepare(head, options)
    batch_size = head.info.batch_size
    progress("planning", 0, 1)
    candidate_sigs, notes = _candidate(model_path, head, prepared)
    plans = {(sig, out): _plan(head, sig, out, prepared.config, shapes)
             for sig in prepared.names for out in head.signatures[sig].outputs}
    job = CompareJob(str(model_path), prepared.tag, batch_size, candidate_sigs, plans,
                     prepared.config.rename)
    step = _range_rows(head, prepared.names, ranges, batch_size)
    items = [r for name in prepared.names for r in row_ranges(p, name, step)]
    progress("running on Beam", 0, len(items))
    results = execute(job, items, flags)
    progress("running on Beam", len(items), len(items))
    diffs: list[TensorDiff] = []
    checks: list[MetricCheck] = []
    for name in prepared.names:
        sig_diffs = _diffs(head.signatures[name], name, results, shapes, options.error_summaries,
                           plans)
        diffs.extend(sig_diffs)
        checks.extend(_metric_checks(head, name, sig_diffs, results, prepared))
    result = judged(str(p), model_path, prepared, options, outputs=diffs, metrics=checks,
                    warnings=[*prepared.warnings, *notes, *_skipped(options)])
    if wants_obtained(result, options):
        result = replace(result, warnings=(*result.warnings, OBTAINED_NOTE))
    return result


def _read_head(p: Path) -> tuple[Golden, Shapes]:
    """The golden's first rows and whole-run values, and every tensor's whole shape."""
    from snapshot_tool.golden.describe import describe_golden
    from snapshot_tool.golden.io import verify_golden
    from snapshot_tool.golden.sharded import is_sharded, read_head

    if not is_sharded(p):
        # A range of a single file cannot check whole-tensor checksums; check them here,
        # streaming (a sharded golden's workers check their own shards).
        verify_golden(p)
    shapes = _shapes(describe_golden(p))
    for sig in sorted({sig for sig, _, _ in shapes}):
        refuse_scalars(sorted(name for (s, grp, name), shape in shapes.items()
                              if s == sig and grp == "inputs" and shape == ()), sig)
    head = read_head(p, 64)
    return _with_facts(head, shapes, p), shapes


def _skipped(options: CompareOptions) -> list[str]:
    """What a Beam run leaves out, said where the in-process run would do it."""
    notes: list[str] = []
    if options.baseline_model is not None:
        notes.append("--baseline-model is only used to time latency; it was ignored "
                     "because of " + ("--runner beam" if options.latency else "--no-latency"))
    if options.latency:
        notes.append(LATENCY_NOTE)
    return notes


def _candidate(model_path: str | Path, head: Golden, prepared: Prepared
               ) -> tuple[dict[str, str], list[str]]:
    """The candidate's signature for each of the golden's, and the notes an in-process run
    gives on its interface, checked on the golden's first rows before any worker starts."""
    from snapshot_tool.models.load import load_model
    from snapshot_tool.models.scan import allowed_ops, refuse_flagged

    candidate_sigs: dict[str, str] = {}
    warnings: list[str] = []
    renames = prepared.config.rename
    with load_model(model_path, tag=prepared.tag) as model:
        # Scanned in the driver, before any worker runs it.
        refuse_flagged(model, allowed_ops((), prepared.config))
        warnings += [f"candidate: {n}" for n in model.notes]
        for name in prepared.names:
            sig, note = candidate_signature(model, name, single=len(prepared.names) == 1)
            candidate_sigs[name] = sig.name
            _, fit_note = fit_inputs(sig, head.signatures[name], model, renames=renames)
            _, name_notes = output_names(head.signatures[name], {o.name for o in sig.outputs},
                                         renames)
            warnings += [n for n in (note, fit_note) if n] + name_notes
    return candidate_sigs, warnings


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
    prefix = signature_prefix(head, sig)
    label = dtype_label(sg.outputs[out])
    tol, spread = output_tolerance(sg, out, label, cfg, prefix)
    # Which tolerance applies to a float precision change depends on the candidate's dtype,
    # which only the workers see: they pick from these.
    tols = {d: judged_tolerance(sg, out, label, d, cfg, prefix)[0] for d in FLOAT_PRECISION
            if d != label} if label in FLOAT_PRECISION else {}
    task, threshold = output_task(sg, out, cfg, prefix + out)
    want = bool(out in sg.metrics and sg.metrics[out].values and sg.labels is not None)
    shape = shapes[(sig, "outputs", out)]
    oc = cfg.output(prefix + out)
    return OutputPlan(tol, spread, task, threshold, want, shape[0] if shape else 1,
                      oc is not None and oc.allow_dtype_change, tols)


def _range_rows(head: Golden, names: Sequence[str], ranges: int, batch_size: int) -> int:
    """Rows per range of a single-file golden: about ``ranges`` ranges, whole batches."""
    rows = max((next(iter(head.signatures[n].inputs.values())).shape[0]
                if head.signatures[n].inputs else 0) for n in names)
    total = head.info.num_samples or rows
    per = math.ceil(max(total, 1) / max(ranges, 1))
    return max(batch_size, math.ceil(per / batch_size) * batch_size)


def _diffs(sg: SignatureGolden, sig: str, results: dict[tuple[str, str], Any],
           shapes: Shapes, summaries: bool | None,
           plans: Mapping[tuple[str, str], OutputPlan]) -> list[TensorDiff]:
    """The diffs in the in-process order: golden outputs by name, then extra outputs."""
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        part: OutputPartial = results[(sig, name)]
        if part.status == "missing":
            diffs.append(replace(missing(name, sg.outputs[name], sig),
                                 golden_shape=shapes[(sig, "outputs", name)]))
        elif part.status == "uneven":
            diffs.append(_uneven(sg, sig, name, part, shapes, plans[(sig, name)]))
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


def _uneven(sg: SignatureGolden, sig: str, name: str, part: OutputPartial, shapes: Shapes,
            plan: OutputPlan) -> TensorDiff:
    """A golden output whose candidate changed shape between the batches of a range: a
    shape change, as in-process (``compare.uneven_diff``)."""
    base = base_fields(name, (dtype_label(sg.outputs[name]), shapes[(sig, "outputs", name)]),
                       (part.extra_dtype, (part.extra_rows, *part.extra_tail)), plan.tol, sig,
                       plan.spread)
    if base["golden_dtype"] != base["candidate_dtype"]:
        return structural(base) or uneven_changed(base, part.change)
    return uneven_changed(base, part.change)


def _metric_checks(head: Golden, sig: str, diffs: list[TensorDiff],
                   results: dict[tuple[str, str], Any], prepared: Prepared
                   ) -> list[MetricCheck]:
    """:func:`snapshot_tool.metrics.thresholds.compare_metrics` from merged accumulators."""
    from snapshot_tool.metrics.mergeable import finish_agreement, finish_task

    sg = head.signatures[sig]
    prefix = prepared.prefix(sig)
    comparable = {d.name for d in diffs if d.status in ("ok", "mismatch")}
    checks: list[MetricCheck] = []
    for name in sorted(sg.outputs):
        recorded = recorded_values(sg, name)
        cand_task: dict[str, MetricValue] = {}
        cand_agree: dict[str, MetricValue] = {}
        part: OutputPartial = results[(sig, name)]
        if name in comparable:
            if recorded and part.task is not None:
                with contextlib.suppress(InputsError):
                    cand_task = finish_task(part.task)
            if part.agreement is not None:
                cand_agree = finish_agreement(part.agreement)
        checks.extend(output_checks(prefix + name, recorded, cand_task, cand_agree,
                                    prepared.config))
    return checks
