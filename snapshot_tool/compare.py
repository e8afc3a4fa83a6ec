"""``compare``: replay a golden's inputs through a candidate and judge it.

Outputs are diffed with per-output tolerances, task and agreement metrics are checked
against the config's thresholds, and latency is gated side by side or against the golden's
stored samples. The verdict is one :class:`ComparisonResult`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from snapshot_tool.config import Config, load_config
from snapshot_tool.diff import TensorDiff, compare_tensor, extra, missing
from snapshot_tool.dtypes import FLOAT_PRECISION, dtype_label, less_precise
from snapshot_tool.errors import (
    ConfigError,
    InputsError,
    ModelError,
    SignatureError,
    SnapshotToolError,
)
from snapshot_tool.golden import schema
from snapshot_tool.golden.io import read_golden
from snapshot_tool.golden.schema import Golden, SignatureGolden
from snapshot_tool.inputs.batching import num_rows
from snapshot_tool.latency.fingerprint import fix_threads
from snapshot_tool.latency.measure import latency_sizes, slice_batch, timing_sizes
from snapshot_tool.models.base import Model, SignatureInfo, run_signature
from snapshot_tool.models.load import load_model
from snapshot_tool.models.scan import allowed_ops, refuse_flagged
from snapshot_tool.names import output_prefix, qualified_name
from snapshot_tool.progress import Progress, no_progress, stage_progress
from snapshot_tool.tolerance import SPREAD_MARGIN, Tolerance, resolve

if TYPE_CHECKING:
    from snapshot_tool.golden.schema import OutputMetrics
    from snapshot_tool.latency.gate import LatencyCheck
    from snapshot_tool.metrics.thresholds import MetricCheck


SaveObtained = Literal["never", "on_failure", "always"]


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


def _fit_inputs(sig: SignatureInfo, sg: SignatureGolden, model: Model, who: str = "candidate",
                renames: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The golden's stored inputs keyed by the model's input names, checked against its specs.

    One input under another name is accepted with a note: converters and Keras reloads
    rename a lone input (``keras_tensor_3`` vs ``input_layer_3``) without changing what it
    means. A different set of inputs, a different kind of dtype or a different per-sample
    shape is an interface change and an error: feeding the recorded data anyway would be
    casting or reshaping it into something the golden never saw.
    """
    want = {s.name for s in sig.inputs}
    recorded = _apply_renames(sg.inputs, want, renames or {})
    have = set(recorded)
    note = ""
    if want == have:
        feeds = dict(recorded)
    elif len(want) == 1 and len(have) == 1:
        (cand_name,), (gold_name,) = want, have
        feeds = {cand_name: recorded[gold_name]}
        note = (f"{who}'s only input is named {cand_name!r}, the golden's {gold_name!r}; "
                "fed the recorded input to it")
    else:
        raise SignatureError(
            f"signature {sig.name!r} of {who} {model.path} takes inputs "
            f"{', '.join(sorted(want)) or '(none)'} but the golden recorded "
            f"{', '.join(sorted(have)) or '(none)'}; the {who}'s interface changed")
    fitted, cast = _conform(sig, feeds, model, who)
    return fitted, "; ".join(n for n in (note, cast) if n)


def _match_inputs(sig: SignatureInfo, have: set[str], model: Model, who: str
                  ) -> tuple[dict[str, str], str]:
    """The model's input names mapped to the golden's, and a note when a lone input was
    renamed. One input under another name is accepted: converters and Keras reloads rename
    a lone input (``keras_tensor_3`` vs ``input_layer_3``) without changing what it means.
    A different set of inputs is an interface change and an error."""
    want = {s.name for s in sig.inputs}
    if want == have:
        return {n: n for n in want}, ""
    if len(want) == 1 and len(have) == 1:
        (cand_name,), (gold_name,) = want, have
        return {cand_name: gold_name}, (
            f"{who}'s only input is named {cand_name!r}, the golden's {gold_name!r}; "
            "fed the recorded input to it")
    raise SignatureError(
        f"signature {sig.name!r} of {who} {model.path} takes inputs "
        f"{', '.join(sorted(want)) or '(none)'} but the golden recorded "
        f"{', '.join(sorted(have)) or '(none)'}; the {who}'s interface changed")


def _conform(sig: SignatureInfo, feeds: Mapping[str, np.ndarray], model: Model, who: str
             ) -> tuple[dict[str, np.ndarray], str]:
    """Recorded inputs (keyed by the model's names) checked against the model's specs and
    cast to its dtypes. A different kind of dtype or per-sample shape is an interface
    change: feeding the recorded data anyway would be casting or reshaping it into
    something the golden never saw."""
    from snapshot_tool.inputs.files import conform

    fitted: dict[str, np.ndarray] = {}
    note = ""
    for spec in sig.inputs:
        arr = feeds[spec.name]
        try:
            fitted[spec.name] = conform(spec, arr, f"{who} {model.path}")
        except InputsError as exc:
            raise SignatureError(f"{exc} (the golden's recorded input; the {who}'s interface "
                                 "changed)") from None
        if fitted[spec.name].dtype != arr.dtype:
            note = (note + "; " if note else "") + (
                f"{who} input {spec.name!r} is {spec.dtype}, the golden recorded "
                f"{dtype_label(arr)}; the recorded values were cast")
    return fitted, note


def _apply_renames(golden: Mapping[str, np.ndarray], model_names: set[str],
                   renames: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The golden's tensors keyed by the model's names: a rename OLD -> NEW applies where
    the model has NEW and not OLD (so the same mapping serves a candidate that renamed and a
    baseline model that did not)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in golden.items():
        new = renames.get(name)
        out[new if new is not None and new in model_names and name not in model_names
            else name] = arr
    return out


def output_names(sg: SignatureGolden, candidate: set[str], renames: Mapping[str, str]
                 ) -> tuple[dict[str, str], list[str]]:
    """The golden's name for each candidate output whose name differs, and notes on it.

    Explicit renames (``[rename]``, ``--map``) apply first. Then a lone output under another
    name is matched with a note, as a lone input is: converters without a SignatureDef call
    every output ``output_0``.. whatever the SavedModel called it. Several renamed outputs
    are never guessed (the pairing is ambiguous); the note on missing + extra outputs says
    how to map them.
    """
    mapping = {new: old for old, new in renames.items()
               if old in sg.outputs and new in candidate and old not in candidate}
    matched = {mapping.get(name, name) for name in candidate}
    notes: list[str] = []
    missing_names = sorted(set(sg.outputs) - matched)
    extra_names = sorted(matched - set(sg.outputs))
    if len(sg.outputs) == 1 and len(matched) == 1 and missing_names and extra_names:
        (gold,), (cand,) = missing_names, extra_names
        notes.append(f"candidate's only output is named {cand!r}, the golden's {gold!r}; "
                     f"compared them (say so with --map {gold}={cand} to keep this explicit)")
        return {cand: gold}, notes
    if missing_names and extra_names:
        notes.append(
            f"outputs {', '.join(missing_names)} are missing and {', '.join(extra_names)} are "
            "new: if the candidate renamed them, map each golden name to the candidate's with "
            f"--map OLD=NEW (e.g. --map {missing_names[0]}={extra_names[0]}) or a [rename] "
            "table in the config")
    return mapping, notes


def _check_renames(golden: Golden, names: list[str], cfg: Config,
                   explicit: Mapping[str, str]) -> list[str]:
    """``--map`` naming a tensor the golden lacks is an error (it was typed for this
    golden); a config ``[rename]`` entry only a warning, since one config may serve several
    goldens, as for ``[outputs.*]`` tables."""
    known = {t for sig in names for t in (*golden.signatures[sig].inputs,
                                          *golden.signatures[sig].outputs)}
    have = ", ".join(sorted(known))
    for old, new in explicit.items():
        if old not in known:
            raise ConfigError(f"--map {old}={new}: the golden has no input or output {old!r}; "
                              f"it has: {have}")
    return [f"config [rename] {old!r} = {new!r} names no input or output of the golden (it "
            f"has: {have}); check the name" for old, new in cfg.rename.items()
            if old not in known and old not in explicit]


def compare_outputs(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    config: Config, signature: str, prefix: str = "", *,
                    summary: bool | None = None) -> list[TensorDiff]:
    """Per-output diffs; ``summary`` as in :func:`compare_tensor` (True: every numeric
    output gets its error summary, as the HTML report wants)."""
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        g = sg.outputs[name]
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
    return diffs


def output_tolerance(sg: SignatureGolden, name: str, dtype: str, config: Config,
                     prefix: str = "") -> tuple[Tolerance, float | None]:
    """The tolerance an output is judged with, and the run-to-run spread recorded for it."""
    tol = resolve(prefix + name, dtype, config)
    spread = sg.info(name).spread
    if spread is not None and float(spread) > 0 and not tol.exact:
        # The reference itself moved this much between identical calls; a candidate
        # cannot be held to a tighter bound than the golden's own run-to-run noise.
        tol = replace(tol, atol=tol.atol + SPREAD_MARGIN * float(spread),
                      source=f"{tol.source} + {SPREAD_MARGIN:g} x recorded spread")
    return tol, None if spread is None else float(spread)


def judged_tolerance(sg: SignatureGolden, name: str, golden_dtype: str, candidate_dtype: str,
                     config: Config, prefix: str = "") -> tuple[Tolerance, float | None]:
    """:func:`output_tolerance` for a candidate output of ``candidate_dtype``: a float
    precision change is judged with the less precise dtype's defaults."""
    coarse = _tolerance_dtype(golden_dtype, candidate_dtype)
    tol, spread = output_tolerance(sg, name, coarse, config, prefix)
    if coarse != golden_dtype:
        tol = replace(tol, source=tol.source.replace(
            "dtype default", f"{coarse} default (the less precise dtype)"))
    return tol, spread


def _tolerance_dtype(was: str, now: str) -> str:
    """The dtype whose defaults judge an output: its own, or for a float precision change the
    less precise of the two, since the comparison can be no finer than the coarser side
    (config values still win)."""
    if was == now or was not in FLOAT_PRECISION or now not in FLOAT_PRECISION:
        return was
    return less_precise(was, now)


def _prefix(golden: Golden, signature: str) -> str:
    return output_prefix(signature, len(golden.signatures) > 1)


def _proxy(dtype: np.dtype[Any], shape: tuple[int, ...], unit: Callable[[], bool]
           ) -> np.ndarray:
    """One row standing in for a golden output when inferring its task without labels:
    infer_task then looks only at the dtype, the per-row shape and whether the values lie
    in [0, 1] (``unit``, asked only where it matters), so a streamed golden's output need
    not be in memory for it."""
    if not shape:
        return np.zeros((), dtype=dtype)
    rest = shape[1:]
    if dtype.kind == "f" or dtype.name.startswith(("bfloat16", "float8")):
        one_per_row = len(shape) <= 2 and int(np.prod(rest, dtype=np.int64)) == 1
        fill = 0.5 if one_per_row and unit() else 2.0
        return np.full((1, *rest), fill, dtype=dtype)
    return np.zeros((1, *rest), dtype=dtype)


@dataclass
class OutputInfo:
    """What task inference and metric names need of a golden output, without its values:
    dtype, shape, its first row (metric names depend on nothing else) and whether every
    finite value lies in [0, 1] (read lazily, once)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    first: Callable[[], np.ndarray]
    unit_of: Callable[[], bool]
    _unit: bool | None = None

    def unit(self) -> bool:
        if self._unit is None:
            self._unit = self.unit_of()
        return self._unit


def _array_info(arr: np.ndarray) -> OutputInfo:
    from snapshot_tool.metrics.tasks import in_unit_interval

    return OutputInfo(arr.dtype, tuple(arr.shape), lambda: arr[:1] if arr.ndim else arr,
                      lambda: in_unit_interval(arr.astype(np.float64)))


def _output_task(sg: SignatureGolden, name: str, config: Config, key: str = "",
                 info: OutputInfo | None = None) -> tuple[str, float]:
    from snapshot_tool.metrics.tasks import infer_task

    oc = config.output(key or name)
    if name in sg.metrics:
        om = sg.metrics[name]
        return om.task, om.threshold
    threshold = config.decision_threshold(key or name)
    if not sg.info(name).batched and (oc is None or not oc.task):
        return "none", threshold
    if oc is not None and oc.task is not None:
        return infer_task(np.zeros(()), None, oc.task), threshold
    info = info or _array_info(sg.outputs[name])
    return infer_task(_proxy(info.dtype, info.shape, info.unit), None, None), threshold


def _available_metrics(sg: SignatureGolden, config: Config, prefix: str = "",
                       infos: Mapping[str, OutputInfo] | None = None) -> dict[str, set[str]]:
    from snapshot_tool.metrics.agreement import agreement_metrics

    infos = infos if infos is not None else {k: _array_info(v) for k, v in sg.outputs.items()}
    available: dict[str, set[str]] = {}
    for name, info in infos.items():
        task, threshold = _output_task(sg, name, config, prefix + name, info)
        names = set(sg.metrics[name].values) if name in sg.metrics else set()
        # Agreement of the golden with itself yields exactly the names a candidate will
        # get; they depend on the task, dtype and shape only, so one row is enough.
        first = info.first()
        names |= set(agreement_metrics(first, first, task, threshold))
        available[prefix + name] = names
    return available


def _recorded_task_conflicts(golden: Golden, names: list[str], config: Config) -> list[str]:
    """Task and decision threshold are fixed when metrics are recorded; a compare-time
    config that says otherwise has no effect, and the user should hear so."""
    notes: list[str] = []
    for sig in names:
        for out, om in golden.signatures[sig].metrics.items():
            oc = config.output(_prefix(golden, sig) + out)
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


def validate_metric_config(golden: Golden, names: list[str], config: Config,
                           infos: Mapping[str, Mapping[str, OutputInfo]] | None = None
                           ) -> None:
    """Check threshold names against what the golden offers (``infos``: per signature,
    its outputs' metadata when the golden's tensors are not in memory)."""
    from snapshot_tool.metrics.thresholds import validate_thresholds

    available: dict[str, set[str]] = {}
    for sig in names:
        for out, metrics in _available_metrics(golden.signatures[sig], config,
                                               _prefix(golden, sig),
                                               infos[sig] if infos else None).items():
            available.setdefault(out, set()).update(metrics)
    validate_thresholds(config, available)


def compare_metrics(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    diffs: list[TensorDiff], config: Config, prefix: str = ""
                    ) -> list[MetricCheck]:
    """Task metrics on the golden's labels and agreement metrics against its outputs."""
    from snapshot_tool.metrics.agreement import agreement_metrics
    from snapshot_tool.metrics.tasks import MetricValue, task_metrics
    from snapshot_tool.metrics.thresholds import check_all

    comparable = {d.name for d in diffs if d.status in ("ok", "mismatch")}
    checks: list[MetricCheck] = []
    for name in sorted(sg.outputs):
        task, threshold = _output_task(sg, name, config, prefix + name)
        golden_values = {k: MetricValue(k, v.value, v.direction)
                         for k, v in (sg.metrics[name].values.items()
                                      if name in sg.metrics else ())}
        cand_task: dict[str, MetricValue] = {}
        cand_agree: dict[str, MetricValue] = {}
        if name in comparable:
            if golden_values and sg.labels is not None:
                try:
                    cand_task = task_metrics(candidate[name], sg.labels, task, threshold)
                except InputsError:
                    cand_task = {}  # reported by check_all as a metric the candidate lacks
            cand_agree = agreement_metrics(sg.outputs[name], candidate[name], task, threshold)
        if golden_values or cand_agree:
            checks.extend(check_all(prefix + name, golden_values, cand_task, cand_agree,
                                    config))
    return checks


def compare_latency(golden: Golden, sg: SignatureGolden, feeds: Mapping[str, np.ndarray],
                    model: Model, signature: str, baseline: Model | None, config: Config,
                    threads: Mapping[str, int], progress: Progress, *,
                    model_path: str | Path | None = None, tag: str = "serve",
                    self_check: bool = False) -> tuple[list[LatencyCheck], list[str]]:
    """Side by side against ``baseline`` when given, else against the golden's samples.

    In stored mode the candidate is re-loaded from ``model_path`` (default ``model.path``)
    and measured the way ``record`` measured the golden; ``self_check`` re-times the
    golden's own model beside it (see :func:`stored_latency`).
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
                          progress, self_check=self_check)


def _side_by_side_latency(golden: Golden, sg: SignatureGolden,
                          feeds: Mapping[str, np.ndarray], model: Model, signature: str,
                          baseline: Model, config: Config, progress: Progress
                          ) -> tuple[list[LatencyCheck], list[str]]:
    from snapshot_tool.latency.gate import gate_side_by_side

    checks: list[LatencyCheck] = []
    notes: list[str] = []
    bsig, note = _candidate_signature(baseline, sg.signature, single=True)
    if note:
        notes.append(f"baseline model: {note}")
    base_feeds, note = _fit_inputs(bsig, sg, baseline, "baseline model", config.rename)
    if note:
        notes.append(note)
    sizes = sorted(sg.latency) or latency_sizes(None, _batch_size(golden))
    for bs in timing_sizes(sizes, feeds):
        batch = slice_batch(feeds, bs)
        base_batch = slice_batch(base_feeds, bs)
        if batch is None or base_batch is None:
            notes.append(f"latency at batch size {bs} skipped: the golden holds only "
                         f"{num_rows(feeds)} samples")
            continue
        checks.append(gate_side_by_side(
            lambda b=base_batch: baseline.run(bsig.name, b),  # type: ignore[misc]
            lambda b=batch: model.run(signature, b),  # type: ignore[misc]
            bs, config.latency.max_drift,
            progress=stage_progress(progress, f"latency A/B batch {bs}")))
    return [replace(c, signature=sg.signature) for c in checks], notes


def _self_check_source(golden: Golden) -> tuple[Path | None, str]:
    """The golden's own model for ``--self-check``, or why it cannot be used.

    The model must still be where the golden says it was recorded from, with the same
    files: a re-exported or retrained model at that path would make the "machine factor" a
    comparison of two models.
    """
    from snapshot_tool.models.load import model_digest

    where = golden.info.model_path
    if not where:
        return None, "the golden records no model_path"
    path = Path(where)
    if not path.exists():
        return None, f"the golden's model {where} is no longer on disk"
    want = golden.info.model_digest
    if want and model_digest(path) != want:
        return None, (f"the model at {where} is not the one the golden was recorded from "
                      "(its files' sha256 differs)")
    return path, ""


def stored_latency(golden: Golden, sg: SignatureGolden, feeds: Mapping[str, np.ndarray],
                   model_path: str | Path, tag: str, signature: str, kind: str,
                   config: Config, threads: Mapping[str, int], progress: Progress, *,
                   self_check: bool = False) -> tuple[list[LatencyCheck], list[str]]:
    """The candidate's latency against the golden's stored samples, measured as ``record``
    measured them: calibration workload first, then a copy loaded for timing only, batch
    sizes ascending, :func:`~snapshot_tool.latency.measure.model_timer`'s budget.

    With ``self_check`` a copy of the golden's own model (``model_path`` in the golden, if
    its files are unchanged) is then timed side by side with the candidate's copy in ABBA
    rounds; the verdict is the candidate against the golden's model as the machine is now,
    and the machine factor (golden's model now / stored) is reported (see
    :func:`~snapshot_tool.latency.gate.gate_stored`).
    """
    from snapshot_tool.latency.fingerprint import calibrate, environment_fingerprint
    from snapshot_tool.latency.gate import SelfCheck, gate_stored
    from snapshot_tool.latency.measure import from_record, model_timer

    checks: list[LatencyCheck] = []
    notes: list[str] = []
    golden_kind = golden.info.model_kind or kind
    fingerprint = environment_fingerprint(dict(threads))
    own: Path | None = None
    if self_check:
        own, why = _self_check_source(golden)
        if own is None:
            notes.append(f"--self-check skipped: {why}; the stored baseline is used as "
                         "recorded")
    calibration = calibrate()
    with contextlib.ExitStack() as stack:
        copy = stack.enter_context(load_model(model_path, tag=tag))
        mine = stack.enter_context(load_model(own, tag=tag)) if own is not None else None
        for bs in timing_sizes(sorted(sg.latency), feeds):
            rec = sg.latency[bs]
            batch = slice_batch(feeds, bs)
            own_batch = slice_batch(sg.inputs, bs)
            if batch is None or own_batch is None:
                notes.append(f"latency at batch size {bs} skipped: the golden holds only "
                             f"{num_rows(feeds)} samples")
                continue
            stored = from_record(rec)
            stage = stage_progress(progress, f"latency batch {bs}")
            pair: SelfCheck | None = None
            if mine is not None:
                pair = (lambda b=own_batch: mine.run(sg.signature, b),
                        lambda b=batch: copy.run(signature, b))
            check = gate_stored(
                stored, golden.environment, rec.calibration,
                model_timer(copy, signature, batch, bs, progress=stage),
                bs, config.latency.stored_max_drift, fingerprint=fingerprint,
                calibration_s=calibration, self_check=pair,
                progress=stage_progress(progress, f"latency self-check batch {bs}"))
            if golden_kind != kind and check.verdict != "advisory":
                # A TFLite or Keras candidate against a SavedModel's stored timings compares
                # two runtimes, not two versions of a model: report it, never gate on it.
                check = replace(check, verdict="advisory", note=(
                    f"the golden's timings are of a {golden_kind}, the candidate is a "
                    f"{kind}: different runtimes, so this is advisory. "
                    f"Time it side by side with --baseline-model for a gate. "
                    f"{check.note}").strip())
            checks.append(check)
    return [replace(c, signature=sg.signature) for c in checks], notes


def _batch_size(golden: Golden) -> int:
    return golden.info.batch_size  # checked when the golden was read


def compare(model_path: str | Path, golden_path: str | Path, *,
            config: Config | str | Path | None = None, signature: str | None = None,
            tag: str | None = None, latency: bool = True,
            baseline_model: str | Path | None = None, latency_strict: bool = False,
            self_check: bool = False,
            progress: Progress = no_progress, save_obtained: SaveObtained = "never",
            obtained_path: str | Path | None = None,
            error_summaries: bool | None = None,
            rename: Mapping[str, str] | None = None, require_signature: bool = False,
            allow_ops: Sequence[str] = ()) -> ComparisonResult:
    """Replay a golden's inputs through a candidate and judge it against the golden.

    ``self_check`` (stored latency mode) re-times the golden's own model beside the
    candidate and corrects the stored baseline by how much the machine moved since record.

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

    A candidate whose outputs line up with the golden's is judged in one streaming pass
    (:mod:`snapshot_tool.compare_stream`): the golden is read chunk by chunk, so memory
    stays bounded by a few batches whatever its size. What needs whole arrays runs the
    in-memory comparison: an obtained golden and error summaries (of failing outputs, or
    all of them for --html), renamed or missing or retyped outputs, a sharded golden. After
    a streamed pass that needs it, only outputs and metrics are redone; latency is kept.
    """
    from snapshot_tool.compare_stream import compare_streaming, streamable

    cfg = config if isinstance(config, Config) else load_config(config)
    whole = dict(config=cfg, signature=signature, tag=tag, latency_strict=latency_strict,
                 progress=progress, save_obtained=save_obtained, obtained_path=obtained_path,
                 error_summaries=error_summaries, rename=rename,
                 require_signature=require_signature, allow_ops=allow_ops)
    if save_obtained == "always" or error_summaries is True or rename or cfg.rename \
            or not streamable(golden_path):
        return _compare_whole(model_path, golden_path, latency=latency,
                              baseline_model=baseline_model, self_check=self_check,
                              **whole)  # type: ignore[arg-type]
    result = compare_streaming(
        model_path, golden_path, config=cfg, signature=signature, tag=tag, latency=latency,
        baseline_model=baseline_model, latency_strict=latency_strict, progress=progress,
        self_check=self_check, require_signature=require_signature, allow_ops=allow_ops)
    lined_up = all(d.status in ("ok", "mismatch") for d in result.outputs)
    failed = not (result.outputs_passed and result.metrics_passed)
    summaries = any(d.status == "mismatch" and d.max_abs_diff is not None
                    for d in result.outputs)
    if lined_up and not (failed and (save_obtained != "never" or summaries)):
        return result
    again = _compare_whole(model_path, golden_path, latency=False, baseline_model=None,
                           self_check=False, **whole)  # type: ignore[arg-type]
    return replace(again, latency=result.latency, latency_mode=result.latency_mode,
                   warnings=tuple(dict.fromkeys(result.warnings + again.warnings)),
                   baseline_model=result.baseline_model)



def selected_signatures(golden: Golden, signature: str | None) -> list[str]:
    """The golden's signatures a compare judges: all, or the one --signature names."""
    names = sorted(golden.signatures)
    if signature is None or signature == "all":
        return names
    if signature not in golden.signatures:
        raise SignatureError(f"golden {golden.path} has no signature {signature!r}; it "
                             f"holds: {', '.join(names)}")
    return [signature]


def open_models(stack: contextlib.ExitStack[bool | None], model_path: str | Path,
                baseline_model: str | Path | None, *, tag: str, allowed: tuple[str, ...],
                latency: bool, self_check: bool, warnings: list[str]
                ) -> tuple[Model, Model | None]:
    """Load the candidate and, when it will be timed, the baseline; both scanned first.

    Options that latency settings make moot are reported in ``warnings``, not refused.
    """
    model = stack.enter_context(load_model(model_path, tag=tag))
    refuse_flagged(model, allowed)
    if self_check and (baseline_model is not None or not latency):
        warnings.append("--self-check corrects the stored latency baseline; it was "
                        "ignored because " + ("of --no-latency" if not latency else
                                              "--baseline-model times side by side"))
    if baseline_model is None:
        return model, None
    if not latency:
        warnings.append("--baseline-model is only used to time latency; it was "
                        "ignored because of --no-latency")
        return model, None
    try:
        baseline = stack.enter_context(load_model(baseline_model, tag=tag))
        refuse_flagged(baseline, allowed)
    except ModelError as exc:
        raise ModelError(f"--baseline-model: {exc}") from None
    return model, baseline

def _compare_whole(model_path: str | Path, golden_path: str | Path, *,
                   config: Config | str | Path | None, signature: str | None,
                   tag: str | None, latency: bool, baseline_model: str | Path | None,
                   latency_strict: bool, self_check: bool, progress: Progress,
                   save_obtained: SaveObtained, obtained_path: str | Path | None,
                   error_summaries: bool | None, rename: Mapping[str, str] | None,
                   require_signature: bool = False, allow_ops: Sequence[str] = ()
                   ) -> ComparisonResult:
    """The comparison with every tensor of the golden and the candidate in memory."""
    golden: Golden = read_golden(golden_path, require_signature=require_signature)
    if tag is None:
        tag = golden.info.tag
    cfg = config if isinstance(config, Config) else load_config(config)
    if rename:
        cfg = replace(cfg, rename={**cfg.rename, **rename})
    names = selected_signatures(golden, signature)
    warnings_early = _check_renames(golden, names, cfg, rename or {})
    warnings_early += _recorded_task_conflicts(golden, names, cfg)
    qualified = [_prefix(golden, sig) + out for sig in names
                 for out in golden.signatures[sig].outputs]
    warnings_early += [
        f"config table [outputs.{pattern!r}] matches no output of the golden (it has: "
        f"{', '.join(sorted(qualified))}); check the name" for pattern in
        cfg.unmatched_outputs(qualified)]
    # Threshold names are checked against what the golden offers before any model runs.
    try:
        validate_metric_config(golden, names, cfg)
    except ConfigError as exc:
        if warnings_early:
            raise ConfigError(f"{exc} ({warnings_early[0]})") from None
        raise
    metric_checks: list[MetricCheck] = []
    latency_checks: list[LatencyCheck] = []
    threads = fix_threads()
    with contextlib.ExitStack() as stack:
        model, baseline = open_models(stack, model_path, baseline_model, tag=tag,
                                       allowed=allowed_ops(allow_ops, cfg), latency=latency,
                                       self_check=self_check, warnings=warnings_early)
        batch_size = _batch_size(golden)
        diffs: list[TensorDiff] = []
        candidate_outputs: dict[str, tuple[dict[str, np.ndarray], dict[str, bool]]] = {}
        timed: list[tuple[str, str, dict[str, np.ndarray]]] = []
        warnings: list[str] = warnings_early + [
            f"candidate: {n}" for n in model.notes]
        if baseline is not None:
            warnings.extend(f"baseline model: {n}" for n in baseline.notes)
        for name in names:
            sg = golden.signatures[name]
            sig, note = _candidate_signature(model, name, single=len(names) == 1)
            if note:
                warnings.append(note)
            feeds, note = _fit_inputs(sig, sg, model, renames=cfg.rename)
            if note:
                warnings.append(note)
            outputs, batched = run_signature(model, sig, feeds, batch_size, progress,
                                             f"comparing {name}")
            renamed, notes = output_names(sg, set(outputs), cfg.rename)
            warnings.extend(notes)
            outputs = {renamed.get(k, k): v for k, v in outputs.items()}
            batched = {renamed.get(k, k): v for k, v in batched.items()}
            if save_obtained != "never":
                candidate_outputs[name] = (outputs, batched)
            sig_diffs = compare_outputs(sg, outputs, cfg, name, _prefix(golden, name),
                                        summary=error_summaries)
            diffs.extend(sig_diffs)
            metric_checks.extend(compare_metrics(sg, outputs, sig_diffs, cfg,
                                                 _prefix(golden, name)))
            timed.append((name, sig.name, feeds))
        # Latency only once every outputs run is over, as in record.
        for name, sig_name, feeds in timed if latency else []:
            lat, notes = compare_latency(golden, golden.signatures[name], feeds, model,
                                         sig_name, baseline, cfg, threads, progress,
                                         model_path=model_path, tag=tag, self_check=self_check)
            if len(names) > 1:
                notes = [f"{name}: {n}" for n in notes]
            latency_checks.extend(lat)
            warnings.extend(notes)
        result = ComparisonResult(golden=str(golden.path), model=str(model_path),
                                signatures=tuple(names), outputs=tuple(diffs),
                                metrics=tuple(metric_checks), latency=tuple(latency_checks),
                                latency_mode=("side_by_side" if baseline is not None else "stored")
                                if latency_checks else None,
                                latency_strict=latency_strict, warnings=tuple(warnings),
                                config_source=cfg.source, baseline_model=str(baseline_model)
                                if baseline_model is not None else None,
                                multi_signature=len(golden.signatures) > 1)
        if save_obtained == "always" or (save_obtained == "on_failure" and not (
                result.outputs_passed and result.metrics_passed)):
            try:
                written = write_obtained(golden, candidate_outputs, model, model_path,
                                         obtained_path)
            except (SnapshotToolError, OSError) as exc:
                # The obtained golden is a convenience; a read-only goldens folder must not
                # turn the gate's verdict (exit 1) into an input error (exit 2).
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                return replace(result, warnings=(*result.warnings,
                                                 f"obtained golden not written: {why}"))
            result = replace(result, obtained=str(written))
        return result


def write_obtained(golden: Golden,
                   candidate: Mapping[str, tuple[dict[str, np.ndarray], dict[str, bool]]],
                   model: Model, model_path: str | Path,
                   path: str | Path | None = None) -> Path:
    """Write the candidate's golden: the golden's own inputs and labels (the very arrays, so
    ``accept`` can check they match), the candidate's outputs, and its task metrics computed
    as the golden's were (same task and threshold). Signatures that were not compared are
    copied from the golden, so the file is a complete golden of the same signatures.
    Latency is not included: timings belong to ``record``, and ``accept`` keeps the
    golden's."""
    import datetime as _dt

    from snapshot_tool import __version__
    from snapshot_tool.golden.io import write_golden
    from snapshot_tool.golden.schema import RootInfo
    from snapshot_tool.golden.schema import obtained_path as default_path
    from snapshot_tool.models.load import model_digest

    target = Path(path) if path is not None else default_path(golden.path)
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
                   obtained_from=str(golden.path))
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


def _candidate_signature(model: Model, name: str, *, single: bool
                         ) -> tuple[SignatureInfo, str]:
    if name in model.signatures:
        return model.signatures[name], ""
    if single and len(model.signatures) == 1:
        # A converted model (TFLite, Keras file) often names its one signature differently.
        only = next(iter(model.signatures.values()))
        return only, (f"candidate has no signature {name!r}; compared its only signature "
                      f"{only.name!r} instead")
    raise SignatureError(
        f"candidate {model.path} has no signature {name!r} recorded in the golden; it has: "
        f"{', '.join(sorted(model.signatures)) or '(none)'}")
