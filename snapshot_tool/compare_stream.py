"""``compare`` in bounded memory: the golden streamed through the candidate block by block.

The golden's inputs and outputs are read a few MB of rows at a time (whole chunks, see
:func:`snapshot_tool.golden.stream.row_block`), the candidate runs the block's batches (the
very batches an in-memory compare runs), and every per-output figure is folded into the
mergeable accumulators that a Beam run merges across workers:
:mod:`snapshot_tool.diff_merge` for the tensor diff and :mod:`snapshot_tool.metrics.mergeable`
for agreement and task metrics. The verdict is the in-memory one; the mean abs error and
metric averages may differ in their last bits (sums in another order). Every tensor's
sha256 is checked on the same pass, once its last row has been read.

What stays in memory besides a block: outputs without a batch dimension (one value per
batch), labels, and for ROC AUC and the median absolute error the per-row scores or
errors that :mod:`snapshot_tool.metrics.mergeable` keeps (8 bytes per row and class).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from snapshot_tool.compare import (
    CompareOptions,
    ComparisonResult,
    Prepared,
    Timed,
    judged,
    load_models,
    prepare,
    time_signatures,
)
from snapshot_tool.diff import (
    TensorDiff,
    compare_tensor,
    extra_stored,
    missing_stored,
    uneven_changed,
)
from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import InputsError
from snapshot_tool.golden.stream import (
    StoredGolden,
    StoredTensor,
    StreamCheck,
    open_stored,
    row_block,
)
from snapshot_tool.inputs.batching import is_scalar, row_slice
from snapshot_tool.latency.measure import latency_sizes
from snapshot_tool.matching import candidate_signature, conform_inputs, fit_inputs, match_inputs
from snapshot_tool.metrics.tasks import OutputInfo, output_task
from snapshot_tool.metrics.thresholds import output_checks, recorded_values
from snapshot_tool.models.base import (
    Model,
    SignatureInfo,
    UnevenOutputError,
    combine,
    shape_change,
)
from snapshot_tool.progress import Progress
from snapshot_tool.tolerance import Tolerance, output_tolerance

if TYPE_CHECKING:
    from snapshot_tool.diff_merge import DiffPartial
    from snapshot_tool.metrics.mergeable import Agreement, Task
    from snapshot_tool.metrics.tasks import MetricValue
    from snapshot_tool.metrics.thresholds import MetricCheck


def streamable(golden_path: str | Path) -> bool:
    """A single-file golden streams; a sharded one (``G.h5.d/``) is read whole."""
    return not Path(golden_path).is_dir()


def compare_streaming(model_path: str | Path, golden_path: str | Path,
                      options: CompareOptions, progress: Progress) -> ComparisonResult:
    """:func:`snapshot_tool.compare.compare`'s verdict, streamed."""
    # Every input and output is hashed on the streamed pass (StreamCheck), and the rest
    # by check_deferred before the result is built: the bounded validation need not read
    # them first.
    with open_stored(golden_path, require_signature=options.require_signature,
                     defer_tensors=True) as stored:
        return _compare_stored(stored, model_path, options, progress)


def _unit_interval(t: StoredTensor) -> bool:
    """Every finite value of a stored tensor within [0, 1], read block by block."""
    from snapshot_tool.metrics.tasks import in_unit_interval

    if not t.shape:
        return in_unit_interval(np.asarray(t.read(), dtype=np.float64))
    step = max(1, (4 << 20) // t.row_bytes)
    return all(in_unit_interval(t.read(a, a + step).astype(np.float64))
               for a in range(0, t.rows, step))


def _infos(stored: StoredGolden) -> dict[str, dict[str, OutputInfo]]:
    def info(t: StoredTensor) -> OutputInfo:
        return OutputInfo(t.dtype, t.shape, lambda: t.read(0, 1) if t.shape else t.read(),
                          lambda: _unit_interval(t))

    return {sig: {k: info(t) for k, t in ss.outputs.items()}
            for sig, ss in stored.signatures.items()}


def _compare_stored(stored: StoredGolden, model_path: str | Path, options: CompareOptions,
                    progress: Progress) -> ComparisonResult:
    golden = stored.meta
    infos = _infos(stored)
    prepared = prepare(golden, options, {k: s.outputs for k, s in stored.signatures.items()},
                       infos)
    diffs: list[TensorDiff] = []
    metrics: list[MetricCheck] = []
    warnings = list(prepared.warnings)
    timed: list[tuple[str, SignatureInfo]] = []
    with contextlib.ExitStack() as stack:
        models = load_models(stack, model_path, options, prepared)
        warnings += models.warnings
        checked: set[str] = set()
        for name in prepared.names:
            run = _SignatureRun(models.candidate, stored, name, prepared, infos[name])
            sig_diffs, sig_metrics, notes = run.compare(progress)
            checked.update(run.checks)
            diffs += sig_diffs
            metrics += sig_metrics
            warnings += notes
            timed.append((name, run.sig))
        stored.check_deferred(checked)
        latency, notes = time_signatures(golden, _heads(stored, timed, models.candidate),
                                         models, prepared, options, model_path, progress)
        return judged(str(golden.path), model_path, prepared, options, outputs=diffs,
                      metrics=metrics, latency=latency, warnings=warnings + notes,
                      side_by_side=models.baseline is not None)


def _heads(stored: StoredGolden, timed: Iterable[tuple[str, SignatureInfo]], model: Model
           ) -> Iterator[Timed]:
    """What latency times of each signature: it times the first batches only, so just
    those rows of the golden's inputs come back into memory."""
    batch_size = stored.meta.info.batch_size
    for name, sig in timed:
        ss = stored.signatures[name]
        sizes = sorted(ss.meta.latency) or latency_sizes(None, batch_size)
        head = replace(ss.meta, inputs=ss.head(max(sizes)))
        feeds, _ = fit_inputs(sig, head, model)
        yield name, head, sig.name, feeds


@dataclass
class _Output:
    """One golden output while the candidate's batches come in.

    ``streamed`` outputs (a batch dimension over the golden's rows) are folded block by
    block into ``diff``/``agree``/``task``; the others (scalars, one value per batch) are
    small and are joined and diffed whole at the end, as in memory.
    """

    name: str
    golden: StoredTensor
    tol: Tolerance
    spread: float | None
    task: str
    threshold: float
    streamed: bool
    scored: bool  # task metrics against the golden's labels
    diff: DiffPartial | None = None
    agree: Agreement | None = None
    score: Task | None = None
    block: list[np.ndarray] = field(default_factory=list)  # this block's candidate batches
    parts: list[np.ndarray] = field(default_factory=list)  # non-streamed candidate values
    rows: list[int] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    unbatched: bool = False  # the candidate gave a value without the batch dimension
    uneven: bool = False  # the candidate's per-sample shape changed between batches
    label: str = ""


class _SignatureRun:
    """One signature of a compare: the golden streamed through the candidate."""

    def __init__(self, model: Model, golden: StoredGolden, name: str, prepared: Prepared,
                 infos: Mapping[str, OutputInfo]) -> None:
        stored = golden.signatures[name]
        self.sig, sig_note = candidate_signature(model, name, single=len(prepared.names) == 1)
        self.model, self.stored, self.cfg = model, stored, prepared.config
        self.name, self.prefix = name, prepared.prefix(name)
        self.batch_size = golden.meta.info.batch_size
        names, note = match_inputs(self.sig, set(stored.inputs), model, "candidate")
        self.notes = [n for n in (sig_note, note) if n]
        inputs = {c: stored.inputs[g] for c, g in names.items()}
        # Batched inputs are read block by block; scalar ones once, and fed with every batch.
        self.inputs = {c: t for c, t in inputs.items() if not is_scalar(t)}
        self.scalars = {c: t for c, t in inputs.items() if is_scalar(t)}
        self.total = next(iter(self.inputs.values())).rows if self.inputs else 0
        labels = stored.meta.labels
        # Labels of another length fail task metrics in memory too (no candidate values).
        self.labels = labels if labels is not None and labels.ndim and \
            labels.shape[0] == self.total else None
        self.outputs = {k: self._output(k, t, infos[k])
                        for k, t in sorted(stored.outputs.items())}
        self.extras: dict[str, list[tuple[str, tuple[int, ...], int]]] = {}
        self.checks = {t.where: StreamCheck(t, t.path) for t in (
            *inputs.values(), *(o.golden for o in self.outputs.values()))}
        self.whole: dict[str, np.ndarray] = {}

    def _output(self, k: str, t: StoredTensor, info: OutputInfo) -> _Output:
        meta = self.stored.meta
        tol, spread = output_tolerance(meta, k, t.label, self.cfg, self.prefix)
        task, threshold = output_task(meta, k, self.cfg, self.prefix + k, info)
        streamed = (self.total > 0 and len(t.shape) >= 1 and t.shape[0] == self.total
                    and meta.info(k).batched)
        return _Output(k, t, tol, spread, task, threshold, streamed,
                       scored=k in meta.metrics and self.labels is not None)

    def compare(self, progress: Progress
                ) -> tuple[list[TensorDiff], list[MetricCheck], list[str]]:
        notes = list(self.notes)
        for o in self.outputs.values():
            if not o.streamed:
                self.whole[o.name] = o.golden.read()
                self.checks[o.golden.where].feed(self.whole[o.name], 0)
        scalars = {c: self._read(t, 0, 0) for c, t in self.scalars.items()}
        streamed = {k: o.golden for k, o in self.outputs.items() if o.streamed}
        block = row_block({**self.inputs, **streamed}, self.batch_size)
        stage = f"comparing {self.name}"
        progress(stage, 0, self.total)
        for a, b, ins, gold in self._blocks(block, streamed):
            for s in range(a, b, self.batch_size) if self.total else [0]:
                e = min(s + self.batch_size, b)
                batch = row_slice({**ins, **scalars}, s - a, e - a)
                feeds, cast = conform_inputs(self.sig, batch, self.model, "candidate")
                if cast and cast not in notes:
                    notes.append(cast)
                for k, v in self.model.run(self.sig.name, feeds).items():
                    self._take(k, v, e - s)
                progress(stage, e, self.total)
            del ins
            self._fold(a, b, gold)
        for check in self.checks.values():
            check.check()
        diffs, metrics = self._verdicts()
        return diffs, metrics, notes

    def _blocks(self, block: int, streamed: Mapping[str, StoredTensor]) -> Iterator[
            tuple[int, int, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Per block of rows [a, b): the inputs and the streamed golden outputs, read and
        hashed. A helper thread reads the next block while the caller runs the model over
        this one: HDF5's decompression and sha256 release the GIL, so on a machine with a
        spare core the golden's reading hides behind the model's work. It holds one block
        more in memory, and the blocks are read in order, as :class:`StreamCheck` wants."""
        starts = list(range(0, self.total, block)) if self.total else [0]

        def load(a: int) -> tuple[int, int, dict[str, np.ndarray], dict[str, np.ndarray]]:
            b = min(a + block, self.total)
            return (a, b, {c: self._read(t, a, b) for c, t in self.inputs.items()},
                    {k: self._read(t, a, b) for k, t in streamed.items()})

        with ThreadPoolExecutor(1, thread_name_prefix="golden-read-ahead") as pool:
            pending = pool.submit(load, starts[0])
            for following in [*starts[1:], None]:
                ready = pending.result()
                if following is not None:
                    pending = pool.submit(load, following)
                yield ready

    def _read(self, t: StoredTensor, a: int, b: int) -> np.ndarray:
        block = t.read(a, b)
        self.checks[t.where].feed(block, a)
        return block

    def _take(self, k: str, v: np.ndarray, rows: int) -> None:
        o = self.outputs.get(k)
        if o is None:
            self.extras.setdefault(k, []).append((dtype_label(v), tuple(v.shape), rows))
            return
        o.rows.append(rows)
        o.shapes.append(tuple(v.shape))
        o.label = o.label or dtype_label(v)
        if not o.streamed:
            o.parts.append(v)
        elif o.unbatched or v.ndim == 0 or v.shape[0] != rows:
            o.unbatched = True  # no batch dimension after all: a shape change, values aside
            o.block = []
        elif o.uneven or (o.block and v.shape[1:] != o.block[0].shape[1:]):
            o.uneven = True  # padded per batch, say: a shape change, values aside
            o.block = []
        else:
            o.block.append(v)

    def _fold(self, a: int, b: int, gold: Mapping[str, np.ndarray]) -> None:
        """Fold the block's rows [a, b) of every streamed output into its accumulators."""
        from snapshot_tool.diff_merge import merge, partial_diff
        from snapshot_tool.metrics.mergeable import (
            agreement_partial,
            merge_agreement,
            merge_task,
            task_partial,
        )

        for k, g in gold.items():
            o = self.outputs[k]
            if o.unbatched or o.uneven or not o.block:
                continue
            c = o.block[0] if len(o.block) == 1 else np.concatenate(o.block, axis=0)
            o.block = []
            # No error summary: a streamed failure is redone in memory, whose summaries
            # are the ones reported (compare._wants_whole_arrays).
            part = partial_diff(k, g, c, o.tol, row_start=a, total_rows=self.total,
                                signature=self.name, spread=o.spread, summarize=False)
            o.diff = part if o.diff is None else merge(o.diff, part)
            if g.shape != c.shape or dtype_label(g) != dtype_label(c):
                continue  # reported as a structural change; no metric compares such arrays
            agree = agreement_partial(g, c, o.task, o.threshold)
            o.agree = agree if o.agree is None else merge_agreement(o.agree, agree)
            if o.scored and self.labels is not None:
                score = task_partial(c, self.labels[a:b], o.task, o.threshold)
                o.score = score if o.score is None else merge_task(o.score, score)

    def _verdicts(self) -> tuple[list[TensorDiff], list[MetricCheck]]:
        from snapshot_tool.diff_merge import finish
        from snapshot_tool.metrics.agreement import agreement_metrics
        from snapshot_tool.metrics.mergeable import finish_agreement, finish_task
        from snapshot_tool.metrics.tasks import task_metrics

        diffs: list[TensorDiff] = []
        checks: list[MetricCheck] = []
        for k, o in self.outputs.items():
            agree: dict[str, MetricValue] = {}
            task: dict[str, MetricValue] = {}
            if not o.rows:
                diffs.append(missing_stored(k, o.golden.label, o.golden.shape, self.name))
            elif not o.streamed:
                try:
                    cand, _ = combine(k, o.parts, o.rows)
                except UnevenOutputError as exc:
                    diffs.append(self._uneven(o, exc.uneven.change))
                    continue
                diffs.append(compare_tensor(k, self.whole[k], cand, o.tol, self.name,
                                            o.spread, False))
                if diffs[-1].status in ("ok", "mismatch"):
                    agree = agreement_metrics(self.whole[k], cand, o.task, o.threshold)
                    if o.scored and self.labels is not None:
                        with contextlib.suppress(InputsError):
                            task = task_metrics(cand, self.labels, o.task, o.threshold)
            elif o.uneven:
                diffs.append(self._uneven(o, shape_change(o.shapes)))
            elif o.unbatched or o.diff is None:
                diffs.append(self._unbatched(o))
            else:
                diffs.append(finish(o.diff))
                if diffs[-1].status in ("ok", "mismatch"):
                    agree = finish_agreement(o.agree) if o.agree is not None else {}
                    if o.score is not None:
                        # As in memory: labels that do not fit the output give no values,
                        # which check_all reports as metrics the candidate lacks.
                        with contextlib.suppress(InputsError):
                            task = finish_task(o.score)
            checks.extend(self._metric_checks(k, task, agree))
        for k in sorted(self.extras):
            parts = self.extras[k]
            batched = all(len(sh) >= 1 and sh[0] == r for _, sh, r in parts)
            shape = ((sum(r for *_, r in parts), *parts[0][1][1:]) if batched
                     else (len(parts), *parts[0][1]))
            diffs.append(extra_stored(k, parts[0][0], shape, self.name))
        return diffs, checks

    def _unbatched(self, o: _Output) -> TensorDiff:
        """A streamed golden output the candidate returned without its batch dimension: the
        stack of its per-batch values, as the in-memory join makes it, cannot line up."""
        from snapshot_tool.diff import base_fields, structural

        if len(set(o.shapes)) > 1:
            return self._uneven(o, shape_change(o.shapes))
        shape = (len(o.shapes), *o.shapes[0])
        base = base_fields(o.name, (o.golden.label, o.golden.shape), (o.label, shape),
                           o.tol, self.name, o.spread)
        return structural(base) or TensorDiff(
            status="shape_changed", **base,
            message=f"output has no batch dimension in the candidate (shape {shape})")

    def _uneven(self, o: _Output, change: str) -> TensorDiff:
        """A golden output whose candidate batches changed shape from one to the next."""
        from snapshot_tool.diff import base_fields, structural

        base = base_fields(o.name, (o.golden.label, o.golden.shape),
                           (o.label, (len(o.shapes), *o.shapes[0])), o.tol, self.name,
                           o.spread)
        if base["golden_dtype"] != base["candidate_dtype"]:
            return structural(base) or uneven_changed(base, change)
        return uneven_changed(base, change)

    def _metric_checks(self, k: str, task: dict[str, MetricValue],
                       agree: dict[str, MetricValue]) -> list[MetricCheck]:
        return output_checks(self.prefix + k, recorded_values(self.stored.meta, k), task,
                             agree, self.cfg)

