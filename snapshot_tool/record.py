"""``record``: run a known-good model over fixed inputs and write its golden file.

Outputs, the reference's own run-to-run spread, task metrics against labels and latency
baselines all go into one golden, written atomically by :mod:`snapshot_tool.golden`.
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool import __version__
from snapshot_tool.config import Config, load_config
from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import InputsError, SignatureError
from snapshot_tool.golden.io import _write_tensor as write_tensor
from snapshot_tool.golden.io import (
    check_writable,
    golden_writer,
    signature_group,
    signing_key,
    write_extras,
    write_root_attrs,
)
from snapshot_tool.golden.schema import (
    INPUTS,
    OUTPUTS,
    LatencyRecord,
    OutputMetrics,
    OutputRecord,
    RootInfo,
    SignatureGolden,
    StoredMetric,
)
from snapshot_tool.golden.stream import TensorAppender
from snapshot_tool.inputs.batching import batches, num_rows
from snapshot_tool.inputs.files import from_file
from snapshot_tool.inputs.labels import LabelsSpec, load_labels, parse_spec
from snapshot_tool.inputs.settings import Settings, as_settings, check_names, values_for
from snapshot_tool.inputs.settings import describe as describe_settings
from snapshot_tool.inputs.synthesize import synthesize, synthesized_text_note
from snapshot_tool.latency.fingerprint import environment, fix_threads
from snapshot_tool.latency.measure import latency_sizes
from snapshot_tool.models.base import Model, SignatureInfo, Uneven, combine
from snapshot_tool.models.load import check_model_path, load_model, model_digest
from snapshot_tool.models.scan import allowed_ops, refuse_flagged
from snapshot_tool.names import first_unstorable, graph_key, output_prefix, unstorable
from snapshot_tool.progress import Progress, no_progress, stage_progress

if TYPE_CHECKING:
    from snapshot_tool.metrics.tasks import MetricValue


# score(output name, task, decision threshold) -> that output's task metrics
Scorer = Callable[[str, str, float], "dict[str, MetricValue]"]


@dataclass(frozen=True)
class RecordedOutput:
    signature: str
    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class RecordResult:
    golden: Path
    model: str
    signatures: tuple[str, ...]
    num_samples: int
    batch_size: int
    outputs: tuple[RecordedOutput, ...]
    warnings: tuple[str, ...] = ()


def signatures_to_record(model: Model, signature: str | None) -> list[SignatureInfo]:
    if signature == "all":
        sigs = [model.signatures[n] for n in sorted(model.signatures)]
    else:
        sigs = [model.signature(signature)]
    for sig in sigs:
        _check_storable_names(sig, multi=len(sigs) > 1)
    return sigs


def _check_storable_names(sig: SignatureInfo, multi: bool) -> None:
    """Refuse, before anything runs, tensor names a golden cannot hold (``head/probs``)."""
    bad = first_unstorable((s.name for s in sig.inputs), (s.name for s in sig.outputs))
    if bad:
        kind, name, why = bad
        suggestion = graph_key(name).strip(".") or f"{kind}_0"
        raise SignatureError(
            f"signature {sig.name!r} has an {kind} named {name!r}, which a golden cannot store "
            f"({why}); rename it in the exported signature (e.g. {suggestion!r})")
    if multi and unstorable(sig.name):
        raise SignatureError(
            f"signature {sig.name!r} cannot be recorded with --signature all: in a golden of "
            f"several signatures outputs are named 'signature/output'; record it alone with "
            f"--signature {sig.name!r}")


@dataclass(frozen=True)
class RecordOptions:
    """What a record is asked to do, besides which model and which golden: built once (by
    :func:`record`, the CLI or a caller) and handed whole to the in-process and Beam runs.
    The defaults are :func:`record`'s and the CLI's; see :func:`record` for their meaning."""

    signature: str | None = None  # None: the model's default; "all": every signature
    inputs: str | Path | None = None  # None: synthesized from the signature with ``seed``
    seed: int = 0
    num_samples: int = 64
    batch_size: int = 16
    force: bool = False
    tag: str = "serve"
    labels: str | None = None  # FILE[:KEY]
    config: Config | str | Path | None = None
    latency: bool = True
    latency_batch_sizes: tuple[int, ...] | None = None  # None: 1 and batch_size
    sign: bool = False
    allow_ops: tuple[str, ...] = ()
    # Scalar inputs given by value (--set NAME=VALUE), as (name, text) pairs.
    settings: Settings = ()

    def __post_init__(self) -> None:
        # Frozen all the way down: a caller's list changed later must not change the run.
        if self.latency_batch_sizes is not None:
            object.__setattr__(self, "latency_batch_sizes", tuple(self.latency_batch_sizes))
        object.__setattr__(self, "allow_ops", tuple(self.allow_ops))
        object.__setattr__(self, "settings", as_settings(self.settings))


def record(model_path: str | Path, golden_path: str | Path, *, signature: str | None = None,
           inputs: str | Path | None = None, seed: int = 0, num_samples: int = 64,
           batch_size: int = 16, force: bool = False, tag: str = "serve",
           labels: str | None = None, config: Config | str | Path | None = None,
           latency: bool = True, latency_batch_sizes: Sequence[int] | None = None,
           progress: Progress = no_progress, sign: bool = False,
           allow_ops: Sequence[str] = (),
           settings: Mapping[str, object] | None = None) -> RecordResult:
    """Run a known-good model over fixed inputs and write its golden file.

    ``labels`` (``FILE[:KEY]``) adds task metrics per output, computed with scikit-learn;
    ``config`` supplies ``[outputs.NAME] task``/``threshold`` overrides for them. ``sign``
    signs the golden with the HMAC key in ``SNAPSHOT_TOOL_HMAC_KEY``. A model whose
    signatures read, write or list files or print is refused before it runs, unless each
    such op is in ``allow_ops`` or the config's ``[models] allow_ops``. ``settings`` gives
    scalar (rank-0) inputs by value, ``{"keep_prob": 1.0}`` (the CLI's ``--set``).

    The options go into one :class:`RecordOptions`; :func:`record_with` runs it.
    """
    return record_with(model_path, golden_path, RecordOptions(
        signature=signature, inputs=inputs, seed=seed, num_samples=num_samples,
        batch_size=batch_size, force=force, tag=tag, labels=labels, config=config,
        latency=latency, sign=sign, allow_ops=tuple(allow_ops), settings=as_settings(settings),
        latency_batch_sizes=None if latency_batch_sizes is None else tuple(latency_batch_sizes),
    ), progress)


def record_with(model_path: str | Path, golden_path: str | Path, options: RecordOptions,
                progress: Progress = no_progress) -> RecordResult:
    """:func:`record`, its options in one value. Every check that needs no model runs
    first: a mistake is reported before the (possibly long) model run, not after it."""
    golden = Path(golden_path)
    check_request(golden, options)
    cfg = options.config if isinstance(options.config, Config) else load_config(options.config)
    labels = read_labels(options)
    check_model_path(model_path)
    threads = fix_threads()
    with load_model(model_path, tag=options.tag) as model:
        refuse_flagged(model, allowed_ops(options.allow_ops, cfg))
        return _record_loaded(model, model_path, golden, options, cfg, labels, threads,
                              progress)


def check_request(golden: Path, options: RecordOptions) -> None:
    """The golden can be written and the numbers make sense (``record --runner beam``
    checks its own golden directory)."""
    check_writable(golden, options.force)
    signing_key(options.sign)  # asked for and missing: said now, not after the model ran
    check_numbers(options)


def check_numbers(options: RecordOptions) -> None:
    if options.batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {options.batch_size}")
    # The golden stores both as int64 attributes; past that HDF5 fails with a TypeError.
    for option, value in (("--batch-size", options.batch_size),
                          ("--num-samples", options.num_samples)):
        if value >= 2**63:
            raise InputsError(f"{option} must be below 2**63, got {value}")
    if not 0 <= options.seed < 2**63:
        # numpy's generators take non-negative seeds, and HDF5 stores the attr as int64.
        raise InputsError(f"--seed must be between 0 and 2**63-1, got {options.seed}")


@dataclass(frozen=True)
class Labels:
    """Ground truth for task metrics (``--labels FILE[:KEY]``), read before any model runs."""

    spec: LabelsSpec
    values: np.ndarray
    exclude: tuple[str, ...]  # the --inputs array that holds the labels is not fed


def read_labels(options: RecordOptions) -> Labels | None:
    if options.labels is None:
        return None
    if options.inputs is None:
        raise InputsError("--labels needs --inputs: labels describe particular samples, "
                          "and synthesized inputs have no ground truth")
    spec = parse_spec(options.labels)
    values = load_labels(spec)
    same_file = Path(options.inputs).resolve() == spec.path.resolve()
    return Labels(spec, values, (spec.key or "labels",) if same_file else ())


Append = Callable[[np.ndarray], None]
_ENTRY_BYTES = 256


class _Appends:
    """A golden's appends (sha256, HDF5's compression, the write) run on one helper thread,
    in the order submitted, so they overlap the model's next batches: hashlib and HDF5
    release the GIL, so on a machine with a spare core the writing hides behind the model.
    Small appends are handed over in bundles of about ``bundle_bytes`` (a cheap model's
    batches are ~100 KB: one hand-over each, with its future and thread wake-up, cost the
    model's own thread ~10 us per tensor per batch). At most ``depth`` bundles wait (a few
    MB, or a few batches when batches are larger); an append's error surfaces when a later
    hand-over waits for it, or at :meth:`drain` (always before the golden is published).
    ``threaded=False`` runs each append at once."""

    def __init__(self, threaded: bool = True, depth: int = 16,
                 bundle_bytes: int = 1 << 20) -> None:
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="golden-writer") if threaded
                      else None)
        self._pending: deque[Future[None]] = deque()
        self._depth = depth
        self._bundle: list[tuple[Append, np.ndarray]] = []
        self._bundle_bytes = 0
        self._bundle_limit = bundle_bytes

    def submit(self, append: Append, block: np.ndarray) -> None:
        if self._pool is None:
            append(block)
            return
        self._bundle.append((append, block))
        # Each entry also holds a tuple, a bound method and an array view (~250 bytes): a
        # model of tiny (or empty) batches hands over by count as well as by bytes.
        self._bundle_bytes += block.nbytes + _ENTRY_BYTES
        if self._bundle_bytes >= self._bundle_limit:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._pool is None or not self._bundle:
            return
        bundle, self._bundle, self._bundle_bytes = self._bundle, [], 0
        self._pending.append(self._pool.submit(_run_bundle, bundle))
        while len(self._pending) > self._depth:
            self._pending.popleft().result()

    def drain(self) -> None:
        """Wait for every submitted append (before anything else touches the file)."""
        self._hand_over()
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Drop what has not started and wait for what has: after this, nothing writes."""
        self._bundle = []
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _run_bundle(bundle: list[tuple[Append, np.ndarray]]) -> None:
    for append, block in bundle:
        append(block)


_INLINE = _Appends(threaded=False)


class _OutputSink:
    """One output of a signature being recorded, written as its batches come.

    Outputs with a batch dimension are appended row block by row block to the golden (never
    held whole); outputs without one (scalars, per-batch summaries) are kept and stacked, one
    entry per batch. That is the decision run_signature's join makes, taken on the fly: an
    output is batched while every batch's leading dimension equals the batch's rows.
    """

    def __init__(self, group: Any, name: str, rows: int, keep: bool,
                 appends: _Appends = _INLINE) -> None:
        self.name = name
        self.appender = TensorAppender(group, name, rows)
        self.appends = appends
        self.group = group
        self.stacked: list[np.ndarray] | None = None
        self.rows: list[int] = []
        self.kept: list[np.ndarray] | None = [] if keep else None
        self.kind = ""
        # (dtype label, per-row shape) of the first batch, kept here because the appender
        # learns it on the writer thread, later.
        self.form: tuple[str, tuple[int, ...]] | None = None

    @property
    def batched(self) -> bool:
        return self.stacked is None

    def add(self, value: np.ndarray, rows: int) -> None:
        self.kind = self.kind or value.dtype.kind
        self.rows.append(rows)
        if self.kept is not None:
            self.kept.append(value)
        if self.stacked is None and value.ndim >= 1 and value.shape[0] == rows:
            form = (dtype_label(value), tuple(value.shape[1:]))
            self.form = self.form or form
            if form != self.form:
                first = (self.rows[0], *self.form[1])
                raise SignatureError(Uneven(self.name, form[0], (first, value.shape),
                                            (self.rows[0], rows), True).record_error())
            self.appends.submit(self.appender.append, value)
            return
        if self.stacked is None:
            # Not batched after all: the batches so far become entries of a stack.
            self.appends.drain()
            done = self.appender.rows_so_far()
            self.appender.discard()
            prior = self.rows[:-1]
            self.stacked = list(np.split(done, np.cumsum(prior)[:-1])) if prior else []
        if any(p.shape != value.shape for p in self.stacked):
            shapes = tuple(tuple(int(d) for d in p.shape) for p in [*self.stacked, value])
            raise SignatureError(Uneven(self.name, dtype_label(value), shapes,
                                        tuple(self.rows), False).record_error())
        self.stacked.append(value)

    def whole(self) -> np.ndarray:
        """The output as one array (only when kept, for task metrics)."""
        assert self.kept is not None
        joined, _ = combine(self.name, self.kept, self.rows)
        return joined

    def finish(self, attrs: Mapping[str, Any]) -> RecordedOutput:
        self.appends.drain()
        if self.stacked is None:
            self.appender.finish(attrs)
            return RecordedOutput("", self.name, self.appender.label, self.appender.shape)
        arr = np.stack(self.stacked, axis=0)
        write_tensor(self.group, self.name, arr, attrs)
        return RecordedOutput("", self.name, dtype_label(arr), tuple(arr.shape))


def _stream_outputs(model: Model, sig: SignatureInfo, feeds: Mapping[str, np.ndarray],
                    batch_size: int, root: Any, keep: bool, progress: Progress
                    ) -> tuple[dict[str, _OutputSink], dict[str, np.ndarray]]:
    """Run ``sig`` batch by batch, appending every input and output under ``root`` as it
    comes, on a writer thread (:class:`_Appends`) while the model runs the next batches.
    Returns the output sinks (to finish once their attrs are known) and the first batch's
    outputs (the determinism check reruns that batch against them)."""
    appends = _Appends()
    try:
        ins = _InputSinks(root.create_group(INPUTS), feeds, appends)
        group = root.create_group(OUTPUTS)
        total = num_rows(feeds)
        sinks: dict[str, _OutputSink] = {}
        first: dict[str, np.ndarray] = {}
        done = 0
        stage = f"recording {sig.name}"
        progress(stage, 0, total)
        for i, batch in enumerate(batches(feeds, batch_size)):
            out = model.run(sig.name, batch)
            ins.add(batch)
            n = num_rows(batch)
            if i == 0:
                first = out
            for k, v in out.items():
                if k not in sinks:
                    if i:
                        raise SignatureError(
                            f"output {k!r} appeared only after the first batch")
                    sinks[k] = _OutputSink(group, k, total, keep, appends)
                sinks[k].add(v, n)
            done += n
            progress(stage, done, total)
        appends.drain()
        ins.finish()
    finally:
        appends.close()
    for sink in sinks.values():
        sink.appends = _INLINE
    return sinks, first


class _InputSinks:
    """A signature's inputs, written to the golden batch by batch beside its outputs (numeric
    inputs with rows; the others, strings and empty tensors, are written whole at once)."""

    def __init__(self, group: Any, feeds: Mapping[str, np.ndarray], appends: _Appends
                 ) -> None:
        self.appends = appends
        self.appenders: dict[str, TensorAppender] = {}
        for name, arr in sorted(feeds.items()):
            if arr.ndim >= 1 and arr.shape[0] > 0 and dtype_label(arr) != "string":
                self.appenders[name] = TensorAppender(group, name, arr.shape[0])
            else:
                write_tensor(group, name, arr)

    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        for name, appender in self.appenders.items():
            self.appends.submit(appender.append, batch[name])

    def finish(self) -> None:
        for appender in self.appenders.values():
            appender.finish()


def _record_loaded(model: Model, model_path: str | Path, golden: Path,
                   options: RecordOptions, cfg: Config, labels: Labels | None,
                   threads: dict[str, int], progress: Progress) -> RecordResult:
    sigs = signatures_to_record(model, options.signature)
    check_names(sigs, options.settings)
    # The golden is written while the model runs (temp file, renamed into place at the end),
    # so outputs go to disk batch by batch instead of piling up in memory.
    with golden_writer(golden, force=options.force, sign=options.sign) as f:
        written = [_record_signature(f, model, sig, options, cfg, labels, len(sigs) > 1,
                                     progress) for sig in sigs]
        latency_notes: list[str] = []
        if options.latency:
            written, latency_notes = _with_latency(written, model_path, options, progress)
        for w in written:
            write_extras(w.group, w.golden)
        # With --signature all the signatures may see different data; report the most.
        rows = max(w.rows for w in written)
        write_root_attrs(f, root_attrs(model.kind, model_path, sigs, options, rows, threads))
    return RecordResult(golden, str(model_path), tuple(s.name for s in sigs), rows,
                        options.batch_size, tuple(o for w in written for o in w.outputs),
                        (*model.notes, *(n for w in written for n in w.notes), *latency_notes))


@dataclass(frozen=True)
class _Written:
    """One signature recorded into the open golden; its extras are written last."""

    group: Any  # its HDF5 group
    golden: SignatureGolden  # labels, metrics, latency (inputs and outputs are on disk)
    outputs: tuple[RecordedOutput, ...]
    rows: int
    notes: tuple[str, ...]


def _record_signature(f: Any, model: Model, sig: SignatureInfo, options: RecordOptions,
                      cfg: Config, labels: Labels | None, several: bool, progress: Progress
                      ) -> _Written:
    """Inputs, outputs (with the run-to-run spread of a nondeterministic model), labels and
    task metrics of one signature."""
    feeds = signature_feeds(sig, options, labels.exclude if labels else ())
    text_note = (None if options.inputs is not None
                 else synthesized_text_note(sig, dict(options.settings)))
    group = signature_group(f, sig.name, several)
    sinks, first = _stream_outputs(model, sig, feeds, options.batch_size, group,
                                   labels is not None, progress)
    attrs = {k: OutputRecord(batched=s.batched).to_attrs() for k, s in sinks.items()}
    notes: list[str] = [text_note] if text_note else []
    spreads = measure_spread(model, sig, feeds, options.batch_size, first_outputs=first)
    if spreads:
        notes.append(spread_attrs(sig.name, spreads, {k: s.kind for k, s in sinks.items()},
                                  attrs))
    outputs = tuple(replace(sinks[k].finish(attrs[k]), signature=sig.name)
                    for k in sorted(sinks))
    sg = _labels_and_metrics(sig, sinks, num_rows(feeds), labels, cfg, several, notes)
    return _Written(group, sg, outputs, num_rows(feeds), tuple(notes))


def signature_feeds(sig: SignatureInfo, options: RecordOptions, exclude: tuple[str, ...]
                    ) -> dict[str, np.ndarray]:
    """The inputs a record feeds ``sig``: read from ``--inputs`` or synthesized, and the
    scalar ones given by ``--set``, in the signature's order."""
    given = values_for(sig, options.settings)
    if options.inputs is not None:
        feeds = from_file(sig, options.inputs, exclude=exclude, given=given)
    else:
        feeds = synthesize(sig, options.num_samples, options.seed, given=given)
    feeds |= given
    return {s.name: feeds[s.name] for s in sig.inputs if s.name in feeds}


def _with_latency(written: list[_Written], model_path: str | Path, options: RecordOptions,
                  progress: Progress) -> tuple[list[_Written], list[str]]:
    """Latency baselines of every signature, measured once every outputs run is over."""
    sizes = latency_sizes(options.latency_batch_sizes, options.batch_size)
    timed: list[_Written] = []
    notes: list[str] = []
    for w in written:
        # Latency times batches of at most max(sizes) rows: only those come back.
        lat, more = record_latency(model_path, options.tag, w.golden.signature,
                                   _read_inputs(w.group, max(sizes)), sizes, progress)
        notes.extend(more)
        timed.append(replace(w, golden=replace(w.golden, latency=lat)))
    return timed, notes


def root_attrs(model_kind: str, model_path: str | Path, sigs: Sequence[SignatureInfo],
               options: RecordOptions, rows: int, threads: Mapping[str, int]) -> dict[str, Any]:
    """The golden's root info (the Beam driver's sharded golden holds the same), less the
    attributes its writer sets itself."""
    return RootInfo(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
        model_path=str(model_path),
        model_digest=model_digest(model_path),
        model_kind=model_kind,
        signature=sigs[0].name if len(sigs) == 1 else "all",
        tag=options.tag,
        seed=options.seed,
        num_samples=rows,
        batch_size=options.batch_size,
        inputs_source=_inputs_source(options),
        environment=environment(threads),
    ).writer_attrs()


def _inputs_source(options: RecordOptions) -> str:
    """The inputs file, or "synthesized(seed=N)", and the settings: "... with keep_prob=1.0"."""
    source = (str(options.inputs) if options.inputs is not None
              else f"synthesized(seed={options.seed})")
    return f"{source} with {describe_settings(options.settings)}" if options.settings else source


def _read_inputs(group: Any, rows: int) -> dict[str, np.ndarray]:
    """The first ``rows`` rows of a signature's inputs as written: latency times batches of
    at most that many, and the rest need not come back into memory."""
    from snapshot_tool.golden.io import _decode as decode

    g = group[INPUTS]
    return {k: decode(g[k], g[k][:rows] if g[k].ndim else g[k][()]) for k in g}


def _labels_and_metrics(sig: SignatureInfo, sinks: Mapping[str, _OutputSink], rows: int,
                        labels: Labels | None, cfg: Config, several: bool,
                        warnings: list[str]) -> SignatureGolden:
    """The signature's labels and task metrics (its inputs and outputs are on disk)."""
    metrics: dict[str, OutputMetrics] = {}
    label_spec = labels.spec if labels is not None else None
    label_values = labels.values if labels is not None else None
    sig_labels = label_values
    if label_values is not None and label_spec is not None:
        if label_values.shape[0] != rows and several:
            # --signature all: labels describe the samples of the signatures that take them;
            # a signature over other data (or none) is recorded without metrics.
            warnings.append(f"labels {label_spec.source} have {label_values.shape[0]} rows "
                            f"but signature {sig.name!r} ran {rows} samples; recorded it "
                            "without labels or task metrics")
            sig_labels = None
        elif label_values.shape[0] != rows:
            raise InputsError(
                f"labels {label_spec.source} have {label_values.shape[0]} rows but the "
                f"inputs have {rows} samples; give one label per sample")
        else:
            # Labels come from a file already in memory; the outputs scored against them are
            # kept for scikit-learn, which needs them whole.
            outputs = {k: s.whole() for k, s in sinks.items()}
            metrics = record_metrics(outputs, {k: s.batched for k, s in sinks.items()},
                                     label_values, cfg, prefix=output_prefix(sig.name, several))
            if not metrics:
                warnings.append(f"no output of {sig.name!r} could be scored against the "
                                "labels (set [outputs.NAME] task in the config to choose one)")
    return SignatureGolden(
        sig.name, {}, {}, labels=sig_labels,
        labels_source=label_spec.source if label_spec and sig_labels is not None else "",
        metrics=metrics)


def record_latency(model_path: str | Path, tag: str, signature: str,
                   inputs: Mapping[str, np.ndarray], sizes: list[int], progress: Progress
                   ) -> tuple[dict[int, LatencyRecord], list[str]]:
    """Latency baselines of one signature, measured the way ``compare`` measures a candidate.

    The outputs run is over and nothing is being written: a copy of the model loaded for
    timing only (honest cold-start figures; a stateful model's outputs never depend on how
    long it was timed) is measured by :func:`~snapshot_tool.latency.measure.time_model`,
    after the calibration workload, exactly as ``compare`` does in stored mode.
    """
    from snapshot_tool.latency.fingerprint import calibrate_times
    from snapshot_tool.latency.measure import time_model, to_record

    calibration, calibration_cpu = calibrate_times()
    with load_model(model_path, tag=tag) as copy:
        measured, notes = time_model(
            copy, signature, inputs, sizes,
            progress=lambda bs: stage_progress(progress, f"latency {signature} batch {bs}"))
    records: dict[int, LatencyRecord] = {}
    for bs, m in measured.items():
        if not m.warmup_stable:
            notes.append(f"latency at batch size {bs}: warm-up did not settle within its time "
                         "cap; the machine may be busy")
        records[bs] = to_record(m, calibration, calibration_cpu)
    return records, notes


def record_metrics(outputs: Mapping[str, np.ndarray], batched: Mapping[str, bool],
                   labels: np.ndarray, config: Config, prefix: str = "",
                   score: Scorer | None = None) -> dict[str, OutputMetrics]:
    """Task metrics of every output that has a task against ``labels``.

    Outputs whose task was inferred but whose shape does not fit the labels are skipped (a
    model's auxiliary outputs); an output whose task the config sets explicitly must fit, so
    its error is raised. ``score(name, task, threshold)`` computes an output's metrics
    (default: :func:`task_metrics` of ``outputs[name]``); a sharded run passes one that
    finishes merged accumulators, with ``outputs`` standing in for the task inference.
    """
    from snapshot_tool.metrics.tasks import infer_task, task_metrics

    if score is None:
        def score(name: str, task: str, threshold: float) -> dict[str, MetricValue]:
            return task_metrics(outputs[name], labels, task, threshold)

    result: dict[str, OutputMetrics] = {}
    for name in sorted(outputs):
        oc = config.output(prefix + name)  # "sig/out" tables apply in multi-signature goldens
        override = oc.task if oc is not None else None
        threshold = config.decision_threshold(prefix + name)
        out = outputs[name]
        if not batched.get(name, True) and override is None:
            continue
        task = infer_task(out, labels, override)
        if task == "none":
            continue
        try:
            values = score(name, task, threshold)
        except InputsError as exc:
            if override is not None:
                raise InputsError(f"output {name!r} (task {task}): {exc}") from None
            continue
        result[name] = OutputMetrics(task, threshold, {
            k: StoredMetric(v.value, v.direction) for k, v in values.items()})
    return result


# Runs of the first batch when it changed between two: enough to see the noise's range.
SPREAD_RUNS = 5


def measure_spread(model: Model, sig: SignatureInfo, feeds: Mapping[str, np.ndarray],
                   batch_size: int, first_outputs: Mapping[str, np.ndarray] | None = None
                   ) -> dict[str, float | None]:
    """Run the first batch again; if any output changes, run it a few more times and
    return, per changed output, the largest difference seen between any two runs (None
    for non-numeric outputs, which have no distance).

    ``first_outputs``, the first batch's outputs from the recording pass, stand in for one
    run: a deterministic model then costs one extra batch, not two.

    A stateful or nondeterministic reference (dropout left on, unseeded random ops,
    counters) would otherwise fail every comparison, including against itself.
    """
    first = next(iter(batches(feeds, batch_size)), None)
    if first is None:
        return {}
    runs = [dict(first_outputs) if first_outputs else model.run(sig.name, first),
            model.run(sig.name, first)]
    changed = {k for k in runs[0] if not _same(runs[0][k], runs[1].get(k))}
    if not changed:
        return {}
    runs.extend(model.run(sig.name, first) for _ in range(SPREAD_RUNS - 2))
    spreads: dict[str, float | None] = {}
    for k in sorted(changed):
        arrays = [r[k] for r in runs if k in r]
        if arrays[0].dtype.kind in "fiu" and all(a.shape == arrays[0].shape for a in arrays):
            stacked = np.stack([a.astype(np.float64) for a in arrays])
            spread = float(np.nanmax(np.ptp(stacked, axis=0))) if stacked.size else 0.0
            spreads[k] = spread
        else:
            spreads[k] = None
    return spreads


def spread_attrs(signature: str, spreads: Mapping[str, float | None],
                 kinds: Mapping[str, str], attrs: dict[str, dict[str, Any]]) -> str:
    """Mark the outputs ``spreads`` found nondeterministic in ``attrs`` (in place), and
    return the warning that says what compare will do about them. ``kinds`` maps an output
    to its numpy dtype kind."""
    for k, spread in spreads.items():
        attrs.setdefault(k, {}).update(OutputRecord.noise_attrs(spread))
    widened = sorted(k for k in spreads if kinds[k] in "fc")
    exact = sorted(k for k in spreads if kinds[k] not in "fc")
    msg = (f"signature {signature!r} is not deterministic: output(s) "
           f"{', '.join(sorted(spreads))} changed between two runs of the same batch")
    if widened:
        msg += (f"; the observed spread is stored and compare widens the atol of "
                f"{', '.join(widened)} by twice it")
    if exact:
        # Integer, bool and string outputs compare exactly: their run-to-run change
        # fails every compare unless the user loosens them on purpose.
        msg += (f"; {', '.join(exact)} compare exactly and will fail every compare: "
                "set atol (integers) or max_mismatch_fraction in [outputs.NAME]")
    return msg


def _same(a: np.ndarray, b: np.ndarray | None) -> bool:
    if b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))
