"""``record --runner beam``: the driver. It reads the model's interface and the first batch
(for the run-to-run spread), lets the pipeline run the model over every shard of rows and
write each shard golden, then writes the manifest with the task metrics merged from the
shards' accumulators, and moves the sharded golden into place.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool.beam import LATENCY_NOTE, pipeline_args, require_beam
from snapshot_tool.beam.work import RecordJob, RecordPartial, Shard, execute
from snapshot_tool.config import Config, load_config
from snapshot_tool.errors import InputsError, SnapshotToolError
from snapshot_tool.golden import sharded
from snapshot_tool.golden.schema import OutputMetrics, OutputRecord
from snapshot_tool.latency.fingerprint import fix_threads
from snapshot_tool.models.load import load_model
from snapshot_tool.models.scan import allowed_ops, refuse_flagged
from snapshot_tool.names import output_prefix
from snapshot_tool.progress import Progress, no_progress
from snapshot_tool.record import (
    Labels,
    RecordedOutput,
    RecordOptions,
    RecordResult,
    check_numbers,
    read_labels,
    root_attrs,
    signatures_to_record,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from snapshot_tool.metrics.tasks import MetricValue
    from snapshot_tool.models.base import Model, SignatureInfo

# Shards per run when not given: a few per worker evens out stragglers.
SHARDS = 8


def record_beam(model_path: str | Path, golden_path: str | Path,
                options: RecordOptions | None = None, *, beam_args: Sequence[str] = (),
                shards: int = SHARDS, progress: Progress = no_progress) -> RecordResult:
    """:func:`snapshot_tool.record.record` as a Beam pipeline writing a sharded golden."""
    options = options or RecordOptions()
    if options.sign or options.allow_ops:
        raise SnapshotToolError("--sign and --allow-ops are not available with "
                                "--runner beam yet")
    require_beam()
    flags = pipeline_args(beam_args)
    golden = Path(golden_path)
    sharded.check_writable_dir(golden, options.force)
    check_numbers(options)
    if shards < 1:
        raise InputsError(f"--shards must be at least 1, got {shards}")
    cfg = options.config if isinstance(options.config, Config) else load_config(options.config)
    labels = read_labels(options)
    threads = fix_threads()
    progress("planning", 0, 1)
    with load_model(model_path, tag=options.tag) as model:
        # Scanned in the driver, before any worker runs it.
        refuse_flagged(model, allowed_ops((), cfg))
        sigs = signatures_to_record(model, options.signature)
        rows, extra_attrs, warnings = _plan(model, sigs, options,
                                            labels.exclude if labels else ())
        kind = model.kind
    if labels is not None and labels.values.shape[0] != rows:
        raise InputsError(f"labels {labels.spec.source} have {labels.values.shape[0]} rows "
                          f"but the inputs have {rows} samples; give one label per sample")
    attrs = root_attrs(kind, model_path, sigs, options, rows, threads)
    recorded, notes = _run(model_path, golden, options, sigs, attrs, extra_attrs, cfg, labels,
                           _shards(rows, shards, options.batch_size), flags, progress)
    if options.latency:
        warnings.append(LATENCY_NOTE.replace("run compare", "record"))
    return RecordResult(golden, str(model_path), tuple(s.name for s in sigs), rows,
                        options.batch_size, tuple(recorded), tuple(warnings + notes))


def _run(model_path: str | Path, golden: Path, options: RecordOptions,
         sigs: list[SignatureInfo], attrs: dict[str, Any],
         extra_attrs: dict[str, dict[str, dict[str, Any]]], cfg: Config, labels: Labels | None,
         items: list[Shard], flags: list[str], progress: Progress
         ) -> tuple[list[RecordedOutput], list[str]]:
    """Every shard golden written by the pipeline into a staging directory, the manifest
    over them, and the sharded golden moved into place (or the staging removed)."""
    multi = len(sigs) > 1
    thresholds = {(s.name, o.name): cfg.decision_threshold(output_prefix(s.name, multi)
                                                           + o.name)
                  for s in sigs for o in s.outputs}
    source = labels.spec.source if labels is not None else ""
    staging = sharded.staging_dir(golden)
    try:
        job = RecordJob(str(model_path), options.tag, tuple(s.name for s in sigs),
                        None if options.inputs is None else str(options.inputs),
                        labels.exclude if labels else (), options.seed, options.num_samples,
                        options.batch_size, options.labels, source, thresholds, extra_attrs,
                        str(staging), attrs)
        progress("running on Beam", 0, len(items))
        results = execute(job, items, flags)
        progress("running on Beam", len(items), len(items))
        infos, recorded, notes = _signature_infos(
            sigs, results, extra_attrs, labels.values if labels else None, source, cfg, multi)
        manifest = sharded.build_manifest(attrs, infos, _entries(results, len(items)))
        sharded.commit(staging, golden, manifest, force=options.force)
    except BaseException:
        sharded.discard(staging)
        raise
    return recorded, notes


def _shards(rows: int, shards: int, batch_size: int) -> list[Shard]:
    """About ``rows / shards`` rows each, rounded up to whole batches, so an output without a
    batch dimension (one entry per batch) splits where its rows do."""
    per = math.ceil(rows / shards)
    step = max(batch_size, math.ceil(per / batch_size) * batch_size)
    starts = list(range(0, rows, step))
    return [Shard(i, len(starts), a, min(a + step, rows)) for i, a in enumerate(starts)]


def _plan(model: Model, sigs: list[SignatureInfo], options: RecordOptions,
          exclude: tuple[str, ...]) -> tuple[int, dict[str, dict[str, dict[str, Any]]], list[str]]:
    """Rows to split, the spread attributes from the first batch, and the warnings."""
    from snapshot_tool.beam import refuse_scalars
    from snapshot_tool.inputs.batching import num_rows, row_slice, scalar_names
    from snapshot_tool.inputs.settings import check_names
    from snapshot_tool.record import measure_spread, signature_feeds, spread_attrs

    batch_size = options.batch_size
    warnings = list(model.notes)
    counts: dict[str, int] = {}
    extra: dict[str, dict[str, dict[str, Any]]] = {}
    check_names(sigs, options.settings)
    for sig in sigs:
        # With --set the scalars are in the feeds, so refuse_scalars below says Beam's limit.
        feeds = signature_feeds(sig, options, exclude)
        counts[sig.name] = num_rows(feeds)
        if not feeds:
            raise InputsError(f"signature {sig.name!r} takes no inputs, so there are no rows "
                              "to split between workers; record it in-process")
        refuse_scalars(scalar_names(feeds), sig.name)
        first = row_slice(feeds, 0, batch_size)
        spreads = measure_spread(model, sig, first, batch_size)
        extra[sig.name] = {}
        if spreads:
            kinds = {k: v.dtype.kind for k, v in model.run(sig.name, first).items()}
            warnings.append(spread_attrs(sig.name, spreads, kinds, extra[sig.name]))
    if len(set(counts.values())) > 1:
        raise InputsError("--runner beam shards every signature alike, so they must take the "
                          f"same number of samples; got {counts}: record them one by one")
    return next(iter(counts.values())), extra, warnings


def _entries(results: dict[tuple[str, str], Any], expected: int) -> list[sharded.ShardEntry]:
    from snapshot_tool.beam.work import shard_entries

    entries = shard_entries(results)
    if len(entries) != expected:
        raise SnapshotToolError(f"the Beam pipeline wrote {len(entries)} of {expected} shards")
    return entries


def _proxy(part: RecordPartial) -> np.ndarray:
    """A two-row stand-in with the output's dtype, shape and "all in [0, 1]" fact: all that
    task inference reads of an output."""
    from snapshot_tool.dtypes import numpy_dtype
    from snapshot_tool.metrics.tasks import is_float

    if part.dtype == "string":
        return np.full((2, *part.tail), b"", dtype=object)
    dtype = numpy_dtype(part.dtype)
    fill = 0.5 if part.unit else (2.0 if is_float(dtype) else 0)
    return np.full((2, *part.tail), fill).astype(dtype)


def _signature_infos(sigs: list[SignatureInfo], results: dict[tuple[str, str], Any],
                     extra: dict[str, dict[str, dict[str, Any]]],
                     label_values: np.ndarray | None, source: str, cfg: Config, multi: bool
                     ) -> tuple[dict[str, dict[str, Any]], list[RecordedOutput], list[str]]:
    from snapshot_tool.metrics.mergeable import finish_task
    from snapshot_tool.record import record_metrics

    infos: dict[str, dict[str, Any]] = {}
    recorded: list[RecordedOutput] = []
    notes: list[str] = []
    for sig in sigs:
        parts: dict[str, RecordPartial] = {out: v for (s, out), v in results.items()
                                           if s == sig.name and isinstance(v, RecordPartial)}
        output_attrs = {out: OutputRecord(batched=p.batched).to_attrs()
                        | extra[sig.name].get(out, {})
                        for out, p in sorted(parts.items())}
        metrics: dict[str, OutputMetrics] = {}
        if label_values is not None:
            def score(name: str, task: str, threshold: float,
                      parts: dict[str, RecordPartial] = parts) -> dict[str, MetricValue]:
                return finish_task(parts[name].tasks[task])

            metrics = record_metrics({o: _proxy(p) for o, p in parts.items()},
                                     {o: p.batched for o, p in parts.items()}, label_values,
                                     cfg, output_prefix(sig.name, multi), score)
            if not metrics:
                notes.append(f"no output of {sig.name!r} could be scored against the labels "
                             "(set [outputs.NAME] task in the config to choose one)")
        infos[sig.name] = sharded.signature_info_of(output_attrs, source if label_values
                                                    is not None else "", metrics)
        recorded.extend(RecordedOutput(sig.name, out, p.dtype, (p.rows, *p.tail))
                        for out, p in sorted(parts.items()))
    return infos, recorded, notes
