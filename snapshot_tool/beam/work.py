"""What one Beam worker does with one range of rows, and how two results merge.

Plain Python, no ``apache_beam``: :mod:`snapshot_tool.beam.pipeline` wraps these functions
in a ``DoFn`` and a ``CombineFn``, and tests can call them directly. A job (everything the
workers share) travels to the workers pickled once; a work item is a few integers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.diff_merge import DiffPartial, merge, partial_diff
from snapshot_tool.errors import SnapshotToolError
from snapshot_tool.golden.schema import OutputRecord, SignatureGolden
from snapshot_tool.golden.sharded import RowRange, ShardEntry, read_range, write_shard
from snapshot_tool.inputs.batching import row_slice
from snapshot_tool.metrics.mergeable import (
    Agreement,
    Task,
    agreement_partial,
    merge_agreement,
    merge_task,
    task_partial,
)
from snapshot_tool.tolerance import Tolerance

# Keys of the values a worker emits besides per-output ones.
ERROR = ("", "error")
SHARDS = ("", "shards")
TASKS = ("classification", "binary", "regression")


class Loaded:
    """A model loaded once per worker process (shared by its threads), with a lock because
    not every runtime (a TFLite interpreter) may run two batches at once, and a cache for
    the inputs file a record worker slices its rows from."""

    def __init__(self, model_path: str, tag: str) -> None:
        from snapshot_tool.latency.fingerprint import fix_threads
        from snapshot_tool.models.load import load_model

        fix_threads()
        self.model = load_model(model_path, tag=tag)
        self.lock = threading.Lock()
        self.cache: dict[tuple[Any, ...], Any] = {}


# --- results -------------------------------------------------------------------------------


@dataclass
class Failure:
    """A user error a worker hit (a corrupt shard, inputs that do not fit): the driver
    raises it as the one-line error the in-process run would give."""

    message: str


@dataclass
class OutputPartial:
    """Everything one range says about one output (compare), merged across ranges."""

    status: str = "ok"  # ok | missing | extra | uneven
    diff: DiffPartial | None = None
    agreement: Agreement | None = None
    task: Task | None = None
    extra_dtype: str = ""
    extra_tail: tuple[int, ...] = ()
    extra_rows: int = 0
    change: str = ""  # uneven: the candidate's batch shapes ("(2, 2) then (1, 2)")


@dataclass
class RecordPartial:
    """Everything one shard says about one output (record), merged across shards."""

    dtype: str
    tail: tuple[int, ...]
    rows: int
    batched: bool
    unit: bool  # every value in [0, 1]: what task inference asks of one-value outputs
    tasks: dict[str, Task] = field(default_factory=dict)


def merge_values(a: Any, b: Any) -> Any:
    """Fold ``b`` into ``a`` (two results for the same key from different ranges)."""
    if isinstance(a, Failure):
        return a
    if isinstance(b, Failure):
        return b
    if isinstance(a, list):
        return a + b
    if isinstance(a, OutputPartial):
        return _merge_output(a, b)
    if isinstance(a, RecordPartial):
        return _merge_record(a, b)
    raise TypeError(f"cannot merge {type(a).__name__}")


def _merge_output(a: OutputPartial, b: OutputPartial) -> OutputPartial:
    if a.status != "ok" or b.status != "ok":
        if a.status == "extra" and b.status == "extra":
            a.extra_rows += b.extra_rows
        return a if a.status != "ok" else b
    assert a.diff is not None and b.diff is not None
    a.diff = merge(a.diff, b.diff)
    if a.agreement is not None and b.agreement is not None:
        a.agreement = merge_agreement(a.agreement, b.agreement)
    if a.task is not None and b.task is not None:
        a.task = merge_task(a.task, b.task)
    return a


def _merge_record(a: RecordPartial, b: RecordPartial) -> RecordPartial:
    a.rows += b.rows
    a.unit = a.unit and b.unit
    a.batched = a.batched and b.batched
    for k, t in b.tasks.items():
        a.tasks[k] = merge_task(a.tasks[k], t) if k in a.tasks else t
    return a


# --- compare -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputPlan:
    """How the driver decided one output is judged, so every worker judges it alike."""

    tol: Tolerance
    spread: float | None
    task: str
    threshold: float
    want_task: bool  # the golden has task metrics for it and labels to score against
    total_rows: int  # axis 0 of the whole golden output
    allow_dtype_change: bool = False
    # The tolerance when the candidate's float dtype differs (the coarser dtype's defaults).
    tol_for_dtype: Mapping[str, Tolerance] = field(default_factory=dict)


@dataclass(frozen=True)
class CompareJob:
    model_path: str
    tag: str
    batch_size: int
    candidate_signatures: Mapping[str, str]  # golden signature -> candidate's name for it
    plans: Mapping[tuple[str, str], OutputPlan]
    renames: Mapping[str, str] = field(default_factory=dict)  # golden name -> candidate's

    def run(self, loaded: Loaded, item: RowRange) -> Iterator[tuple[tuple[str, str], Any]]:
        try:
            yield from self._run(loaded, item)
        except SnapshotToolError as exc:
            yield ERROR, Failure(str(exc))

    def _run(self, loaded: Loaded, r: RowRange) -> Iterator[tuple[tuple[str, str], Any]]:
        from snapshot_tool.matching import fit_inputs, golden_named
        from snapshot_tool.models.base import Uneven, run_signature

        sg = read_range(r, self.batch_size)
        sig = loaded.model.signatures[self.candidate_signatures[r.signature]]
        uneven: dict[str, Uneven] = {}
        with loaded.lock:
            feeds, _ = fit_inputs(sig, sg, loaded.model, renames=self.renames)
            outputs, _ = run_signature(loaded.model, sig, feeds, self.batch_size,
                                       uneven=uneven)
        # The same matching of candidate to golden names as in-process (the driver reports
        # its notes once), the outputs whose batches did not join among them.
        both, _ = golden_named(sg, {**outputs, **uneven}, self.renames)
        outputs = {k: v for k, v in both.items() if isinstance(v, np.ndarray)}
        for name, u in sorted(both.items()):
            if isinstance(u, Uneven):
                yield (r.signature, name), OutputPartial(
                    status="uneven" if name in sg.outputs else "extra", change=u.change,
                    extra_dtype=u.dtype, extra_tail=u.shape[1:], extra_rows=u.shape[0])
        for name in sorted(sg.outputs):
            if name in both and name not in outputs:
                continue  # uneven, above
            if name not in outputs:
                yield (r.signature, name), OutputPartial(status="missing")
                continue
            yield (r.signature, name), self._judge(r, sg, name, outputs[name])
        for name in sorted(set(outputs) - set(sg.outputs)):
            c = outputs[name]
            yield (r.signature, name), OutputPartial(
                status="extra", extra_dtype=_label(c), extra_tail=tuple(c.shape[1:]),
                extra_rows=int(c.shape[0]) if c.ndim else 0)

    def _judge(self, r: RowRange, sg: SignatureGolden, name: str, c: np.ndarray
               ) -> OutputPartial:
        plan = self.plans[(r.signature, name)]
        g = sg.outputs[name]
        batched = sg.info(name).batched
        start = r.global_start if batched else r.global_start // self.batch_size
        tol = plan.tol_for_dtype.get(_label(c), plan.tol)
        diff = partial_diff(name, g, c, tol, row_start=start, total_rows=plan.total_rows,
                            signature=r.signature, spread=plan.spread,
                            allow_dtype_change=plan.allow_dtype_change)
        agreement = agreement_partial(g, c, plan.task, plan.threshold)
        task = None
        if plan.want_task and sg.labels is not None:
            task = task_partial(c, sg.labels, plan.task, plan.threshold)
        return OutputPartial(diff=diff, agreement=agreement, task=task)


def _label(arr: np.ndarray) -> str:
    from snapshot_tool.dtypes import dtype_label

    return dtype_label(arr)


# --- record --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    start: int
    stop: int


@dataclass(frozen=True)
class RecordJob:
    model_path: str
    tag: str
    signatures: tuple[str, ...]
    inputs: str | None
    exclude: tuple[str, ...]
    seed: int
    num_samples: int
    batch_size: int
    labels: str | None
    labels_source: str
    thresholds: Mapping[tuple[str, str], float]
    output_attrs: Mapping[str, Mapping[str, Mapping[str, Any]]]  # spread, from the driver
    staging: str
    attrs: Mapping[str, Any]

    def run(self, loaded: Loaded, item: Shard) -> Iterator[tuple[tuple[str, str], Any]]:
        try:
            yield from self._run(loaded, item)
        except SnapshotToolError as exc:
            yield ERROR, Failure(str(exc))

    def _feeds(self, loaded: Loaded, signature: str) -> dict[str, np.ndarray]:
        """The signature's whole inputs, read or synthesized once per worker process."""
        from snapshot_tool.inputs.files import from_file
        from snapshot_tool.inputs.synthesize import synthesize

        key = ("feeds", signature, self.inputs, self.seed, self.num_samples, self.exclude)
        if key not in loaded.cache:
            sig = loaded.model.signatures[signature]
            loaded.cache[key] = (from_file(sig, self.inputs, exclude=self.exclude)
                                 if self.inputs is not None
                                 else synthesize(sig, self.num_samples, self.seed))
        feeds: dict[str, np.ndarray] = loaded.cache[key]
        return feeds

    def _labels(self, loaded: Loaded) -> np.ndarray | None:
        from snapshot_tool.inputs.labels import load_labels, parse_spec

        if self.labels is None:
            return None
        key = ("labels", self.labels)
        if key not in loaded.cache:
            loaded.cache[key] = load_labels(parse_spec(self.labels))
        labels: np.ndarray = loaded.cache[key]
        return labels

    def _run(self, loaded: Loaded, s: Shard) -> Iterator[tuple[tuple[str, str], Any]]:
        from snapshot_tool.models.base import run_signature

        labels = self._labels(loaded)
        rows = None if labels is None else labels[s.start:s.stop]
        sigs: dict[str, SignatureGolden] = {}
        for name in self.signatures:
            feeds = row_slice(self._feeds(loaded, name), s.start, s.stop)
            with loaded.lock:
                outputs, batched = run_signature(loaded.model, loaded.model.signatures[name],
                                                 feeds, self.batch_size)
            attrs = {k: OutputRecord(batched=bool(b)).to_attrs()
                     | dict(self.output_attrs.get(name, {}).get(k, {}))
                     for k, b in batched.items()}
            sigs[name] = SignatureGolden(name, feeds, outputs, attrs, rows,
                                         self.labels_source if rows is not None else "")
            for out, arr in outputs.items():
                yield (name, out), self._facts(name, out, arr, batched[out], rows)
        entry = write_shard(Path(self.staging), s.index, s.count, s.start, self.attrs, sigs)
        yield SHARDS, [entry]

    def _facts(self, signature: str, name: str, arr: np.ndarray, batched: bool,
               labels: np.ndarray | None) -> RecordPartial:
        from snapshot_tool.metrics.tasks import in_unit_interval, is_float

        unit = is_float(arr.dtype) and in_unit_interval(arr.astype(np.float64))
        part = RecordPartial(_label(arr), tuple(arr.shape[1:]), int(arr.shape[0]) if arr.ndim
                             else 0, batched, unit)
        if labels is not None:
            threshold = self.thresholds.get((signature, name), 0.5)
            part.tasks = {t: task_partial(arr, labels, t, threshold) for t in TASKS}
        return part


# --- running -------------------------------------------------------------------------------


def run_pipeline(job: Any, items: Sequence[Any], flags: Sequence[str]
                 ) -> dict[tuple[str, str], Any]:
    """The Beam pipeline (:func:`snapshot_tool.beam.pipeline.run`), imported on use."""
    from snapshot_tool.beam import pipeline

    return pipeline.run(job, items, flags)


def run_local(job: Any, items: Sequence[Any]) -> dict[tuple[str, str], Any]:
    """What the pipeline computes, in this process and without Beam: the reference the
    pipeline is tested against. Items run last-first, since a merge may see them in any
    order."""
    loaded = Loaded(job.model_path, job.tag)
    results: dict[tuple[str, str], Any] = {}
    for item in reversed(items):
        for key, value in job.run(loaded, item):
            results[key] = value if key not in results else merge_values(results[key], value)
    return results


def execute(job: Any, items: Sequence[Any], flags: Sequence[str]
            ) -> dict[tuple[str, str], Any]:
    """Run the pipeline and raise the user error a worker hit, if any."""
    results = run_pipeline(job, items, flags)
    failure = results.get(ERROR)
    if isinstance(failure, Failure):
        raise SnapshotToolError(failure.message)
    return results


def shard_entries(results: Mapping[tuple[str, str], Any]) -> list[ShardEntry]:
    entries: list[ShardEntry] = results.get(SHARDS, [])
    return sorted(entries, key=lambda e: e.row_start)
