"""``compare``: replay a golden's inputs through a candidate and judge it.

Outputs are diffed with per-output tolerances, task and agreement metrics are checked
against the config's thresholds, and latency is gated side by side or against the golden's
stored samples. The verdict is one :class:`ComparisonResult`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from snapshot_tool.config import Config, load_config
from snapshot_tool.diff import (
    TensorDiff,
    base_fields,
    compare_tensor,
    extra,
    extra_stored,
    missing,
    structural,
    uneven_changed,
)
from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import ConfigError, InputsError, ModelError, SnapshotToolError
from snapshot_tool.golden import schema
from snapshot_tool.golden.io import read_golden
from snapshot_tool.golden.schema import Golden, SignatureGolden
from snapshot_tool.latency.fingerprint import fix_threads
from snapshot_tool.latency.measure import batches_to_time, latency_sizes
from snapshot_tool.matching import (
    candidate_signature,
    check_renames,
    fit_inputs,
    golden_named,
    select_signatures,
)
from snapshot_tool.metrics.tasks import OutputInfo
from snapshot_tool.metrics.thresholds import (
    compare_metrics,
    recorded_task_conflicts,
    validate_metric_config,
)
from snapshot_tool.models.base import Model, Uneven, run_signature
from snapshot_tool.models.load import check_model_path, load_model
from snapshot_tool.models.scan import allowed_ops, refuse_flagged
from snapshot_tool.names import output_prefix, qualified_name, signature_prefix
from snapshot_tool.progress import Progress, no_progress, stage_progress
from snapshot_tool.tolerance import judged_tolerance

if TYPE_CHECKING:
    from snapshot_tool.golden.schema import OutputMetrics
    from snapshot_tool.latency.gate import LatencyCheck
    from snapshot_tool.metrics.thresholds import MetricCheck


SaveObtained = Literal["never", "on_failure", "always"]


@dataclass(frozen=True)
class CompareOptions:
    """What a compare is asked to do, besides which candidate and which golden: built once
    (by :func:`compare`, the CLI or a caller) and handed whole to the in-memory, streaming
    and Beam runs, so none of them re-forwards a parameter list. The defaults are
    :func:`compare`'s; see it for what each option means."""

    config: Config | str | Path | None = None
    signature: str | None = None
    tag: str | None = None  # None: the tag set the golden was recorded with
    latency: bool = True
    baseline_model: str | Path | None = None
    latency_strict: bool = False
    #: None: self-check whenever the golden's own model is still on disk, unchanged.
    self_check: bool | None = None
    save_obtained: SaveObtained = "never"
    obtained_path: str | Path | None = None
    error_summaries: bool | None = None
    # Golden input/output name -> the candidate's (--map); adds to the config's [rename].
    rename: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    require_signature: bool = False
    allow_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Frozen all the way down: a caller's dict or list changed later must not change
        # what a run (or a second run with the same options) is asked to do.
        object.__setattr__(self, "rename", MappingProxyType(dict(self.rename)))
        object.__setattr__(self, "allow_ops", tuple(self.allow_ops))


@dataclass(frozen=True)
class ComparisonResult:
    golden: str
    model: str
    signatures: tuple[str, ...]
    outputs: tuple[TensorDiff, ...]
    metrics: tuple[MetricCheck, ...] = ()
    latency: tuple[LatencyCheck, ...] = ()
    latency_mode: str | None = None  # "side_by_side" | "stored" | None (not checked)
    latency_strict: bool = False
    warnings: tuple[str, ...] = ()
    config_source: str | None = None
    baseline_model: str | None = None
    obtained: str | None = None  # the obtained golden written for this comparison, if any
    # Which run wrote it (its ``obtained_run`` attribute): another compare of the same
    # golden may replace the file later, and this tells the two apart.
    obtained_run: str | None = None
    # Whether the golden holds several signatures (so names are "sig/out"); None: whether
    # this result covers several.
    multi_signature: bool | None = None

    @property
    def outputs_passed(self) -> bool:
        return all(d.passed for d in self.outputs)

    @property
    def metrics_passed(self) -> bool:
        return all(m.passed for m in self.metrics)

    @property
    def latency_verdict(self) -> str | None:
        """The worst per-batch verdict: fail > inconclusive > advisory > pass."""
        if not self.latency:
            return None
        order = ("fail", "inconclusive", "advisory", "pass")
        return min((c.verdict for c in self.latency), key=order.index)

    @property
    def latency_passed(self) -> bool:
        verdict = self.latency_verdict
        if verdict == "fail":
            return False
        return not (self.latency_strict and verdict == "inconclusive")

    @property
    def passed(self) -> bool:
        return self.outputs_passed and self.metrics_passed and self.latency_passed

    def qualified(self, signature: str, name: str) -> str:
        """How every report names an output (or a latency batch) of ``signature``: the
        names config tables and metric checks use too."""
        multi = self.multi_signature
        return qualified_name(signature, name,
                              len(self.signatures) > 1 if multi is None else multi)


def compare_outputs(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    config: Config, signature: str, prefix: str = "", *,
                    summary: bool | None = None,
                    uneven: Mapping[str, Uneven] | None = None) -> list[TensorDiff]:
    """Per-output diffs; ``summary`` as in :func:`compare_tensor` (True: every numeric
    output gets its error summary, as the HTML report wants). ``uneven``: the candidate's
    outputs whose batches did not join (``run_signature``), each a shape change."""
    uneven = uneven or {}
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        g = sg.outputs[name]
        if name in uneven:
            diffs.append(uneven_diff(sg, name, uneven[name], config, signature, prefix))
            continue
        if name not in candidate:
            diffs.append(missing(name, g, signature))
            continue
        tol, spread = judged_tolerance(sg, name, dtype_label(g), dtype_label(candidate[name]),
                                       config, prefix)
        oc = config.output(prefix + name)
        diffs.append(compare_tensor(name, g, candidate[name], tol, signature, spread, summary,
                                    allow_dtype_change=oc is not None and oc.allow_dtype_change))
    for name in sorted(set(candidate) - set(sg.outputs)):
        diffs.append(extra(name, candidate[name], signature))
    for name in sorted(set(uneven) - set(sg.outputs)):
        diffs.append(extra_stored(name, uneven[name].dtype, uneven[name].shape, signature))
    return diffs


def uneven_diff(sg: SignatureGolden, name: str, u: Uneven, config: Config, signature: str,
                prefix: str = "") -> TensorDiff:
    """The diff of golden output ``name`` against a candidate output whose shape changed
    between batches: a dtype change if it has one too, else a shape change."""
    g = sg.outputs[name]
    tol, spread = judged_tolerance(sg, name, dtype_label(g), u.dtype, config, prefix)
    base = base_fields(name, (dtype_label(g), tuple(g.shape)), (u.dtype, u.shape), tol,
                       signature, spread)
    if base["golden_dtype"] != base["candidate_dtype"]:
        return structural(base) or uneven_changed(base, u.change)
    return uneven_changed(base, u.change)


def compare(model_path: str | Path, golden_path: str | Path, *,
            config: Config | str | Path | None = None, signature: str | None = None,
            tag: str | None = None, latency: bool = True,
            baseline_model: str | Path | None = None, latency_strict: bool = False,
            self_check: bool | None = None,
            progress: Progress = no_progress, save_obtained: SaveObtained = "never",
            obtained_path: str | Path | None = None,
            error_summaries: bool | None = None,
            rename: Mapping[str, str] | None = None, require_signature: bool = False,
            allow_ops: Sequence[str] = ()) -> ComparisonResult:
    """Replay a golden's inputs through a candidate and judge it against the golden.

    ``self_check`` (stored latency mode) re-times the golden's own model beside the
    candidate and corrects the stored baseline by how much the machine moved since record;
    None (the default) does so whenever the golden's model is still on disk with the same
    files, False never.

    ``tag`` defaults to the tag set the golden was recorded with: a TF1 export holds one
    graph per tag set, and comparing another graph than the recorded one is never meant.

    ``save_obtained``: write the candidate's own golden over the same inputs and labels
    (``G.obtained.h5`` beside ``G.h5``, or ``obtained_path``) "always", or "on_failure" of
    the outputs or metrics (what ``accept`` can take from it; a latency failure alone is
    not). ``error_summaries``: True gives every numeric output an error summary (the HTML
    report's plots); None only failing ones.
    ``rename`` maps golden input/output names to the candidate's (``--map``); it extends and
    overrides the config's ``[rename]`` table.

    ``require_signature`` refuses a golden not signed with the key in
    ``SNAPSHOT_TOOL_HMAC_KEY`` (for goldens from untrusted places). A candidate (or
    baseline) whose signatures read, write or list files or print is refused before it
    runs, unless each such op is in ``allow_ops`` or the config's ``[models] allow_ops``.

    The options go into one :class:`CompareOptions`; :func:`compare_with` runs it.
    """
    return compare_with(model_path, golden_path, CompareOptions(
        config=config, signature=signature, tag=tag, latency=latency,
        baseline_model=baseline_model, latency_strict=latency_strict, self_check=self_check,
        save_obtained=save_obtained, obtained_path=obtained_path,
        error_summaries=error_summaries, rename=rename or {},
        require_signature=require_signature, allow_ops=tuple(allow_ops)), progress)


def compare_with(model_path: str | Path, golden_path: str | Path, options: CompareOptions,
                 progress: Progress = no_progress) -> ComparisonResult:
    """:func:`compare`, its options in one value.

    A candidate whose outputs line up with the golden's is judged in one streaming pass
    (:mod:`snapshot_tool.compare_stream`): the golden is read chunk by chunk, so memory
    stays bounded by a few batches whatever its size. What needs whole arrays runs the
    in-memory comparison: an obtained golden and error summaries (of failing outputs, or
    all of them for --html), renamed or missing or retyped outputs, a sharded golden. After
    a streamed pass that needs it, only outputs and metrics are redone; latency is kept.
    """
    from snapshot_tool.compare_stream import compare_streaming

    before = obtained_state(golden_path, options.obtained_path)
    options = replace(options, config=loaded_config(options))  # read once, whatever runs
    if not _streams(golden_path, options):
        return _compare_whole(model_path, golden_path, options, progress, before=before)
    result = compare_streaming(model_path, golden_path, options, progress)
    if not _wants_whole_arrays(result, options):
        return result
    again = _compare_whole(model_path, golden_path, replace(
        options, latency=False, baseline_model=None, self_check=False), progress,
        before=before)
    return replace(again, latency=result.latency, latency_mode=result.latency_mode,
                   warnings=tuple(dict.fromkeys(result.warnings + again.warnings)),
                   baseline_model=result.baseline_model)


def loaded_config(options: CompareOptions) -> Config:
    """The options' config, read from its file (or found) unless it is one already."""
    config = options.config
    return config if isinstance(config, Config) else load_config(config)


def run_allowed_ops(options: CompareOptions) -> tuple[str, ...]:
    """The flagged ops the models of a compare (or of ``calibrate`` and ``localize``, which
    run models as compare does) may run: ``--allow-ops`` plus the config's
    ``[models] allow_ops``, resolved in this one place."""
    return allowed_ops(options.allow_ops, loaded_config(options))


def run_config(options: CompareOptions) -> Config:
    """:func:`loaded_config` with ``--map`` (``options.rename``) merged into its
    ``[rename]`` table: the config a compare (or ``localize``) matches names with."""
    cfg = loaded_config(options)
    return replace(cfg, rename={**cfg.rename, **options.rename}) if options.rename else cfg


def _streams(golden_path: str | Path, options: CompareOptions) -> bool:
    """Whether to stream the golden: not when every array is wanted whole anyway (an obtained
    golden always, error summaries of every output), nor when outputs are renamed (the
    streamed pass pairs outputs by name), nor for a sharded golden."""
    from snapshot_tool.compare_stream import streamable

    whole = (options.save_obtained == "always" or options.error_summaries is True
             or bool(options.rename) or bool(loaded_config(options).rename))
    return not whole and streamable(golden_path)


def _wants_whole_arrays(streamed: ComparisonResult, options: CompareOptions) -> bool:
    """After a streamed pass: outputs that did not line up (missing, extra, retyped) are
    reported from whole arrays, as is a failure that asks for an obtained golden or for the
    error summaries of failing outputs."""
    lined_up = all(d.status in ("ok", "mismatch") for d in streamed.outputs)
    failed = not (streamed.outputs_passed and streamed.metrics_passed)
    summaries = any(d.status == "mismatch" and d.max_abs_diff is not None
                    for d in streamed.outputs)
    return not lined_up or (failed and (options.save_obtained != "never" or summaries))


@dataclass(frozen=True)
class Prepared:
    """What a compare settles from the golden and its options before any model runs."""

    config: Config  # with --map merged into its [rename] table
    tag: str
    names: tuple[str, ...]  # the golden's signatures to compare
    warnings: tuple[str, ...]  # about the config, in the order a user should read them
    multi: bool  # the golden holds several signatures, so outputs are named "sig/out"

    def prefix(self, signature: str) -> str:
        return output_prefix(signature, self.multi)


def prepare(golden: Golden, options: CompareOptions,
            outputs: Mapping[str, Iterable[str]] | None = None,
            infos: Mapping[str, Mapping[str, OutputInfo]] | None = None) -> Prepared:
    """Config, tag set and signatures of a compare, and every config mistake found before a
    model runs: renames and ``[outputs.*]`` tables naming nothing, task settings the golden
    overrides, thresholds no output could meet (an error). ``outputs`` and ``infos``: per
    signature, its output names and metadata, when the golden's tensors are not in memory."""
    cfg = run_config(options)
    tag = options.tag if options.tag is not None else golden.info.tag
    names = select_signatures(golden, options.signature)
    warnings = check_renames(golden, names, cfg, options.rename)
    warnings += recorded_task_conflicts(golden, names, cfg)
    warnings += _unmatched_tables(golden, names, cfg, outputs)
    try:
        validate_metric_config(golden, names, cfg, infos)
    except ConfigError as exc:
        if warnings:
            raise ConfigError(f"{exc} ({warnings[0]})") from None
        raise
    return Prepared(cfg, tag, tuple(names), tuple(warnings), len(golden.signatures) > 1)


def _unmatched_tables(golden: Golden, names: Sequence[str], cfg: Config,
                      outputs: Mapping[str, Iterable[str]] | None) -> list[str]:
    qualified = [signature_prefix(golden, sig) + out for sig in names for out in (
        outputs[sig] if outputs is not None else golden.signatures[sig].outputs)]
    return [f"config table [outputs.{pattern!r}] matches no output of the golden (it has: "
            f"{', '.join(sorted(qualified))}); check the name"
            for pattern in cfg.unmatched_outputs(qualified)]


@dataclass(frozen=True)
class Models:
    """The models of a compare, loaded and scanned, and what a user should hear of them."""

    candidate: Model
    baseline: Model | None  # --baseline-model, when latency is timed side by side
    warnings: tuple[str, ...]
    threads: Mapping[str, int]  # the thread pools' sizes, pinned before any model loaded


def load_models(stack: contextlib.ExitStack, model_path: str | Path, options: CompareOptions,
                prepared: Prepared) -> Models:
    """The candidate and the side-by-side baseline, open until ``stack`` closes; each is
    scanned (refused if it touches files or prints) before it runs."""
    check_model_path(model_path)
    if options.baseline_model is not None and options.latency:
        try:
            check_model_path(options.baseline_model)
        except ModelError as exc:
            raise ModelError(f"--baseline-model: {exc}") from None
    threads = fix_threads()
    model = stack.enter_context(load_model(model_path, tag=prepared.tag))
    allowed = run_allowed_ops(options)
    refuse_flagged(model, allowed)
    notes = _ignored_options(options)
    baseline: Model | None = None
    if options.baseline_model is not None and options.latency:
        try:
            baseline = stack.enter_context(load_model(options.baseline_model, tag=prepared.tag))
            refuse_flagged(baseline, allowed)
        except ModelError as exc:
            raise ModelError(f"--baseline-model: {exc}") from None
    notes += [f"candidate: {n}" for n in model.notes]
    if baseline is not None:
        notes += [f"baseline model: {n}" for n in baseline.notes]
    return Models(model, baseline, tuple(notes), threads)


def _ignored_options(options: CompareOptions) -> list[str]:
    notes: list[str] = []
    if options.self_check and (options.baseline_model is not None or not options.latency):
        notes.append("--self-check corrects the stored latency baseline; it was ignored "
                     "because " + ("of --no-latency" if not options.latency else
                                   "--baseline-model times side by side"))
    if options.baseline_model is not None and not options.latency:
        notes.append("--baseline-model is only used to time latency; it was ignored because "
                     "of --no-latency")
    return notes


# (the golden's signature, its golden, the candidate's signature, the inputs fed to it)
Timed = tuple[str, SignatureGolden, str, Mapping[str, np.ndarray]]


def time_signatures(golden: Golden, timed: Iterable[Timed], models: Models,
                    prepared: Prepared, options: CompareOptions, model_path: str | Path,
                    progress: Progress) -> tuple[list[LatencyCheck], list[str]]:
    """Latency checks of the compared signatures (none with ``latency`` off), once every
    outputs run is over, as in record. ``timed`` is read only when latency is on."""
    checks: list[LatencyCheck] = []
    notes: list[str] = []
    if not options.latency:
        return checks, notes
    digests: dict[Path, str] = {}  # the golden's model is hashed once, not per signature
    for name, sg, signature, feeds in timed:
        lat, more = compare_latency(golden, sg, feeds, models.candidate, signature,
                                    models.baseline, prepared.config, models.threads, progress,
                                    model_path=model_path, tag=prepared.tag,
                                    self_check=options.self_check, digests=digests)
        checks.extend(lat)
        notes.extend(f"{name}: {n}" if len(prepared.names) > 1 else n for n in more)
    return checks, notes


def judged(golden: str, model_path: str | Path, prepared: Prepared, options: CompareOptions,
           *, outputs: Sequence[TensorDiff], metrics: Sequence[MetricCheck],
           warnings: Sequence[str], latency: Sequence[LatencyCheck] = (),
           side_by_side: bool = False) -> ComparisonResult:
    """The :class:`ComparisonResult` of a compare, however it ran."""
    baseline = options.baseline_model
    return ComparisonResult(
        golden=golden, model=str(model_path), signatures=prepared.names,
        outputs=tuple(outputs), metrics=tuple(metrics), latency=tuple(latency),
        latency_mode=("side_by_side" if side_by_side else "stored") if latency else None,
        latency_strict=options.latency_strict, warnings=tuple(warnings),
        config_source=prepared.config.source,
        baseline_model=str(baseline) if baseline is not None else None,
        multi_signature=prepared.multi)


@dataclass(frozen=True)
class _WholeRun:
    """One signature of an in-memory compare: the candidate's outputs, judged."""

    name: str
    signature: str  # the candidate's
    feeds: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]  # by the golden's names; kept for an obtained golden only
    batched: dict[str, bool]
    diffs: list[TensorDiff]
    metrics: list[MetricCheck]
    notes: list[str]
    uneven: tuple[str, ...] = ()  # outputs whose batches did not join: no obtained golden


def _compare_whole(model_path: str | Path, golden_path: str | Path, options: CompareOptions,
                   progress: Progress, *, before: ObtainedState | None = None
                   ) -> ComparisonResult:
    """The comparison with every tensor of the golden and the candidate in memory.
    ``before``: the obtained golden as the compare found it when it began
    (:func:`obtained_state`; default now), to tell one another run wrote meanwhile from an
    older one."""
    if before is None:
        before = obtained_state(golden_path, options.obtained_path)
    golden: Golden = read_golden(golden_path, require_signature=options.require_signature)
    prepared = prepare(golden, options)
    with contextlib.ExitStack() as stack:
        models = load_models(stack, model_path, options, prepared)
        runs = [_run_whole(golden, name, models.candidate, prepared, options, progress)
                for name in prepared.names]
        latency, notes = time_signatures(
            golden, [(r.name, golden.signatures[r.name], r.signature, r.feeds) for r in runs],
            models, prepared, options, model_path, progress)
        result = judged(
            str(golden.path), model_path, prepared, options,
            outputs=[d for r in runs for d in r.diffs],
            metrics=[m for r in runs for m in r.metrics], latency=latency,
            warnings=[*prepared.warnings, *models.warnings, *(n for r in runs for n in r.notes),
                      *notes], side_by_side=models.baseline is not None)
        if not wants_obtained(result, options):
            return result
        return _with_obtained(result, golden, runs, models.candidate, model_path, options,
                              before)


def _run_whole(golden: Golden, name: str, model: Model, prepared: Prepared,
               options: CompareOptions, progress: Progress) -> _WholeRun:
    sg = golden.signatures[name]
    cfg = prepared.config
    sig, note = candidate_signature(model, name, single=len(prepared.names) == 1)
    feeds, fit_note = fit_inputs(sig, sg, model, renames=cfg.rename)
    uneven: dict[str, Uneven] = {}
    outputs, batched = run_signature(model, sig, feeds, golden.info.batch_size, progress,
                                     f"comparing {name}", uneven)
    # Matched by name with the uneven outputs among them, so a lone renamed output is
    # paired whether or not its batches joined.
    both, name_notes = golden_named(sg, {**outputs, **uneven}, cfg.rename)
    outputs = {k: v for k, v in both.items() if isinstance(v, np.ndarray)}
    odd = {k: v for k, v in both.items() if isinstance(v, Uneven)}
    batched, _ = golden_named(sg, {**batched, **{k: u.batched for k, u in uneven.items()}},
                              cfg.rename)
    diffs = compare_outputs(sg, outputs, cfg, name, prepared.prefix(name),
                            summary=options.error_summaries, uneven=odd)
    metrics = compare_metrics(sg, outputs, diffs, cfg, prepared.prefix(name))
    keep = options.save_obtained != "never"  # else the outputs need not outlive this run
    return _WholeRun(name, sig.name, feeds, outputs if keep else {}, batched if keep else {},
                     diffs, metrics, [n for n in (note, fit_note) if n] + name_notes,
                     tuple(sorted(odd)))


def wants_obtained(result: ComparisonResult, options: CompareOptions) -> bool:
    """Whether the run should write the candidate's own golden: always, or on a failure of
    the outputs or metrics (what ``accept`` can take from it; a latency failure alone is
    not)."""
    return options.save_obtained == "always" or (
        options.save_obtained == "on_failure"
        and not (result.outputs_passed and result.metrics_passed))


def _with_obtained(result: ComparisonResult, golden: Golden, runs: Sequence[_WholeRun],
                   model: Model, model_path: str | Path, options: CompareOptions,
                   before: ObtainedState) -> ComparisonResult:
    uneven = [f"{r.name}/{k}" if len(runs) > 1 else k for r in runs for k in r.uneven]
    if uneven:
        # Such an output has no array to store (a golden of it needs one batch), and an
        # obtained golden without it would drop it from the golden on `accept`.
        return replace(result, warnings=(*result.warnings, (
            "obtained golden not written: the candidate's "
            f"{', '.join(repr(k) for k in uneven)} changes shape between batches; record "
            "such a golden with one batch (--batch-size equal to --num-samples)")))
    run = run_id()
    target = obtained_target(golden, options.obtained_path)
    try:
        replaced = _replaced_concurrent(target, before, run)
        written = write_obtained(golden, {r.name: (r.outputs, r.batched) for r in runs},
                                 model, model_path, target, run=run)
    except (SnapshotToolError, OSError) as exc:
        # The obtained golden is a convenience; a read-only goldens folder must not turn the
        # gate's verdict (exit 1) into an input error (exit 2).
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return replace(result, warnings=(*result.warnings,
                                         f"obtained golden not written: {why}"))
    return replace(result, obtained=str(written), obtained_run=run,
                   warnings=(*result.warnings, *replaced))


def run_id() -> str:
    """Names one compare run: who, which process, and a random tag (one process, pytest,
    compares many times)."""
    from snapshot_tool.atomic import who

    return f"{who()} pid {os.getpid()} run {secrets.token_hex(4)}"


def obtained_target(golden: Golden, path: str | Path | None) -> Path:
    """Where a compare writes its obtained golden: ``path``, else ``G.obtained.h5``."""
    return _obtained_path(golden.path, path)


def _obtained_path(golden_path: str | Path, path: str | Path | None) -> Path:
    return Path(path) if path is not None else schema.obtained_path(Path(golden_path))


# The obtained golden's file identity (device, inode, size, mtime) when a compare began, or
# () when there was none: compared with the file found at write time, not with a clock.
ObtainedState = tuple[int, ...]


def obtained_state(golden_path: str | Path, path: str | Path | None = None) -> ObtainedState:
    """The obtained golden of ``golden_path`` (or ``path``) as it is now. Taken before the
    golden is read: a path with no file name (".") has no obtained golden, and is refused
    as a golden right after."""
    try:
        target = _obtained_path(golden_path, path)
    except ValueError:
        return ()
    return _file_state(target)


def _file_state(p: Path) -> ObtainedState:
    """Another compare's rename gives the name a new inode, so a file written meanwhile is
    told apart from the one found at the start by the file alone: a file server whose clock
    runs ahead of or behind this machine's (an NFS goldens folder) cannot make it look older
    or newer."""
    from snapshot_tool.golden.io import file_identity

    try:
        return file_identity(p)
    except OSError:
        return ()


def _replaced_concurrent(target: Path, before: ObtainedState, run: str) -> list[str]:
    """What to say when the obtained golden this run is about to replace was written after
    it started: another compare of the same golden, running at the same time, wrote it and
    reported it as its own. Each run's obtained golden is whole (temp file and rename); the
    later one is kept, and both the file and this report name the run that wrote it."""
    from snapshot_tool.golden.io import root_attrs

    now = _file_state(target)
    if not now or now == before:
        return []  # none yet, or an earlier run's found at the start: replaced as usual
    try:
        other = str(root_attrs(target).get(schema.OBTAINED_RUN_ATTR) or "")
    except SnapshotToolError:
        other = ""  # being replaced right now, or not a golden: the time says enough
    return [f"{target} was written by another compare ({other or 'run unknown'}) after this "
            f"one started, and this run ({run}) has replaced it: that run's report names a "
            "file that now holds this run's candidate. Compare the candidates of one golden "
            "one after another"]


def compare_latency(golden: Golden, sg: SignatureGolden, feeds: Mapping[str, np.ndarray],
                    model: Model, signature: str, baseline: Model | None, config: Config,
                    threads: Mapping[str, int], progress: Progress, *,
                    model_path: str | Path | None = None, tag: str = "serve",
                    self_check: bool | None = None, digests: dict[Path, str] | None = None
                    ) -> tuple[list[LatencyCheck], list[str]]:
    """Side by side against ``baseline`` when given, else against the golden's samples.

    In stored mode the candidate is re-loaded from ``model_path`` (default ``model.path``)
    and measured the way ``record`` measured the golden; ``self_check`` re-times the
    golden's own model beside it (see :func:`stored_latency`; ``digests`` caches the
    model digests that finding it computes, across the signatures of one compare).
    """
    if baseline is not None:
        return _side_by_side_latency(golden, sg, feeds, model, signature, baseline, config,
                                     progress)
    if not sg.latency:
        return [], ["golden has no latency baseline (recorded with --no-latency, or no batch "
                    "size fitted its samples); latency not checked. Use --baseline-model to "
                    "compare side by side"]
    return stored_latency(golden, sg, feeds, model_path if model_path is not None
                          else model.path, tag, signature, model.kind, config, threads,
                          progress, self_check=self_check, digests=digests)


def _side_by_side_latency(golden: Golden, sg: SignatureGolden,
                          feeds: Mapping[str, np.ndarray], model: Model, signature: str,
                          baseline: Model, config: Config, progress: Progress
                          ) -> tuple[list[LatencyCheck], list[str]]:
    from snapshot_tool.latency.gate import gate_side_by_side

    checks: list[LatencyCheck] = []
    notes: list[str] = []
    bsig, note = candidate_signature(baseline, sg.signature, single=True)
    if note:
        notes.append(f"baseline model: {note}")
    base_feeds, note = fit_inputs(bsig, sg, baseline, "baseline model", config.rename)
    if note:
        notes.append(note)
    sizes = sorted(sg.latency) or latency_sizes(None, golden.info.batch_size)
    batches, skipped = batches_to_time(sizes, feeds, base_feeds)
    notes += skipped
    for bs, (batch, base_batch) in batches:
        checks.append(gate_side_by_side(
            lambda b=base_batch: baseline.run(bsig.name, b),  # type: ignore[misc]
            lambda b=batch: model.run(signature, b),  # type: ignore[misc]
            bs, config.latency.max_drift,
            progress=stage_progress(progress, f"latency A/B batch {bs}")))
    return [replace(c, signature=sg.signature) for c in checks], notes


def _self_check_source(golden: Golden, digests: dict[Path, str] | None = None
                       ) -> tuple[Path | None, str]:
    """The golden's own model for ``--self-check``, or why it cannot be used.

    The model must be where the golden says it was recorded from (as given to record:
    :func:`~snapshot_tool.models.load.recorded_model_places`), with the same files: a
    re-exported or retrained model there would make the "machine factor" a comparison of
    two models; without a recorded digest, whatever sits there (the candidate exported over
    it, say) would be the yardstick.
    """
    from snapshot_tool.models.load import locate_recorded_model

    where = golden.info.model_path
    if not where:
        return None, "the golden records no model_path"
    if not golden.info.model_digest:
        return None, (f"the golden records no model digest to confirm that {where} is the "
                      "model it was recorded from")
    found, state = locate_recorded_model(where, golden.info.model_digest, golden.path,
                                         digests=digests)
    if found is not None:
        return found, ""
    if state == "changed":
        return None, (f"the model at {where} is not the one the golden was recorded from "
                      "(its files' sha256 differs)")
    return None, (f"the golden's model {where} is no longer on disk (looked in the current "
                  "folder and the golden's folder and those above it)")


def stored_latency(golden: Golden, sg: SignatureGolden, feeds: Mapping[str, np.ndarray],
                   model_path: str | Path, tag: str, signature: str, kind: str,
                   config: Config, threads: Mapping[str, int], progress: Progress, *,
                   self_check: bool | None = None, digests: dict[Path, str] | None = None
                   ) -> tuple[list[LatencyCheck], list[str]]:
    """The candidate's latency against the golden's stored samples, measured as ``record``
    measured them: calibration workload first, then a copy loaded for timing only, batch
    sizes ascending, :func:`~snapshot_tool.latency.measure.model_timer`'s budget.

    The self-check (``self_check`` True, or None - the default - whenever the golden's own
    model is still on disk with the same files) then loads a copy of the golden's model and
    times it side by side with the candidate's copy in ABBA rounds, batch size by batch
    size; the verdict is the candidate against the golden's model as the machine is now,
    and the machine factor (golden's model now / stored) and the plain stored ratio and
    verdict are reported beside it (see :func:`~snapshot_tool.latency.gate.gate_stored`).
    Every plain measurement is made before the golden's model is even loaded, so the
    candidate is timed in the conditions ``record`` timed the golden's model in.
    """
    from snapshot_tool.latency.fingerprint import calibrate_times, environment_fingerprint
    from snapshot_tool.latency.gate import gate_stored, self_check_stored
    from snapshot_tool.latency.measure import from_record, model_timer

    notes: list[str] = []
    golden_kind = golden.info.model_kind or kind
    fingerprint = environment_fingerprint(dict(threads))
    own, note = _self_check_model(golden, self_check, digests)
    notes += [note] if note else []
    calibration, calibration_cpu = calibrate_times()
    with contextlib.ExitStack() as stack:
        copy = stack.enter_context(load_model(model_path, tag=tag))
        batches, skipped = batches_to_time(sorted(sg.latency), feeds, sg.inputs)
        notes += skipped
        stored = {bs: from_record(sg.latency[bs]) for bs, _ in batches}
        checks = [gate_stored(
            stored[bs], golden.environment, sg.latency[bs].calibration,
            model_timer(copy, signature, batch, bs,
                        progress=stage_progress(progress, f"latency batch {bs}")),
            bs, config.latency.stored_max_drift, fingerprint=fingerprint,
            calibration_s=calibration, calibration_cpu_s=calibration_cpu,
            stored_calibration_cpu_s=sg.latency[bs].calibration_cpu)
            for bs, (batch, _) in batches]
        if own is not None:
            mine = stack.enter_context(load_model(own, tag=tag))
            checks = [self_check_stored(
                check, stored[bs], golden.environment,
                (lambda b=own_batch: mine.run(sg.signature, b),  # type: ignore[misc]
                 lambda b=batch: copy.run(signature, b)),  # type: ignore[misc]
                config.latency.stored_max_drift, fingerprint=fingerprint,
                progress=stage_progress(progress, f"latency self-check batch {bs}"))
                for check, (bs, (batch, own_batch)) in zip(checks, batches, strict=True)]
    if golden_kind != kind:
        checks = [_other_runtime(c, golden_kind, kind) for c in checks]
    return [replace(c, signature=sg.signature) for c in checks], notes


def _self_check_model(golden: Golden, self_check: bool | None,
                      digests: dict[Path, str] | None = None) -> tuple[Path | None, str]:
    """The golden's model to self-check against (None: no self-check) and what to tell
    the user about it: why an asked-for self-check was skipped, or that a default one
    could not run, so the stored verdict carries the machine's drift since record."""
    if self_check is False:
        return None, ""
    own, why = _self_check_source(golden, digests)
    if own is not None:
        return own, ""
    if self_check:
        return None, (f"--self-check skipped: {why}; the stored baseline is used as "
                      "recorded")
    return None, (f"stored latency judged without a self-check ({why}): the stored "
                  "baseline is used as recorded, so the verdict also carries how much this "
                  "machine's speed moved since record (see calibration_cpu_ratio; "
                  "--no-self-check silences this)")


def _other_runtime(check: LatencyCheck, golden_kind: str, kind: str) -> LatencyCheck:
    """A TFLite or Keras candidate against a SavedModel's stored timings compares two
    runtimes, not two versions of a model: reported, never gated on."""
    if check.verdict == "advisory":
        return check
    return replace(check, verdict="advisory", note=(
        f"the golden's timings are of a {golden_kind}, the candidate is a "
        f"{kind}: different runtimes, so this is advisory. "
        f"Time it side by side with --baseline-model for a gate. "
        f"{check.note}").strip())


def write_obtained(golden: Golden,
                   candidate: Mapping[str, tuple[dict[str, np.ndarray], dict[str, bool]]],
                   model: Model, model_path: str | Path,
                   path: str | Path | None = None, *, run: str = "") -> Path:
    """Write the candidate's golden: the golden's own inputs and labels (the very arrays, so
    ``accept`` can check they match), the candidate's outputs, and its task metrics computed
    as the golden's were (same task and threshold). Signatures that were not compared are
    copied from the golden, so the file is a complete golden of the same signatures.
    Latency is not included: timings belong to ``record``, and ``accept`` keeps the
    golden's. ``run``: the compare run writing it (:func:`run_id`), stored as its
    ``obtained_run``."""
    import datetime as _dt

    from snapshot_tool import __version__
    from snapshot_tool.golden.io import write_golden
    from snapshot_tool.golden.schema import RootInfo
    from snapshot_tool.models.load import model_digest

    target = obtained_target(golden, path)
    sigs: dict[str, SignatureGolden] = {}
    for name, sg in golden.signatures.items():
        if name not in candidate:
            sigs[name] = replace(sg, latency={})
            continue
        outputs, batched = candidate[name]
        sigs[name] = SignatureGolden(
            name, dict(sg.inputs), dict(outputs),
            # The golden's per-output notes (run-to-run spread) describe the model family's
            # noise, which a candidate shares; "batched" is the candidate's own.
            {k: {**sg.output_attrs.get(k, {}), **schema.OutputRecord(batched=bool(b)).to_attrs()}
             for k, b in batched.items()},
            labels=sg.labels, labels_source=sg.labels_source,
            metrics=_obtained_metrics(sg, outputs))
    info = replace(RootInfo.from_attrs(golden.attrs, golden.path), history="",
                   created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                   tool_version=__version__, model_path=str(model_path),
                   model_digest=model_digest(model_path), model_kind=model.kind,
                   obtained_from=str(golden.path), obtained_run=run)
    return write_golden(target, info.to_attrs(), sigs, force=True)


def _obtained_metrics(sg: SignatureGolden, outputs: Mapping[str, np.ndarray]
                      ) -> dict[str, OutputMetrics]:
    from snapshot_tool.golden.schema import OutputMetrics, StoredMetric
    from snapshot_tool.metrics.tasks import task_metrics

    metrics: dict[str, OutputMetrics] = {}
    if sg.labels is None:
        return metrics
    for name, om in sg.metrics.items():
        if name not in outputs:
            continue
        try:
            values = task_metrics(outputs[name], sg.labels, om.task, om.threshold)
        except InputsError:
            continue  # the candidate's output no longer fits the task; compare said so
        metrics[name] = OutputMetrics(om.task, om.threshold, {
            k: StoredMetric(v.value, v.direction) for k, v in values.items()})
    return metrics


