"""The library API: ``record`` and ``compare``, which the CLI and pytest users call alike.

Both return frozen dataclasses and raise :class:`SnapshotToolError` for anything the user can
fix. Nothing here prints; progress goes through an optional callback.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool import __version__
from snapshot_tool.config import Config, load_config
from snapshot_tool.diff import TensorDiff, compare_tensor, extra, missing
from snapshot_tool.errors import (
    ConfigError,
    GoldenError,
    InputsError,
    ModelError,
    SignatureError,
)
from snapshot_tool.golden import (
    Golden,
    LatencyRecord,
    OutputMetrics,
    SignatureGolden,
    StoredMetric,
    check_writable,
    read_golden,
    write_golden,
)
from snapshot_tool.inputs import batches, from_file, num_rows, synthesize
from snapshot_tool.labels import LabelsSpec, load_labels, parse_spec
from snapshot_tool.model import Model, SignatureInfo, load_model, model_digest
from snapshot_tool.tolerance import resolve

if TYPE_CHECKING:
    from snapshot_tool.latency import LatencyCheck
    from snapshot_tool.metrics import MetricCheck

# progress(stage, done, total): the CLI draws bars from it; the library never prints.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


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


def environment(thread_settings: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Where a golden was recorded: enough to explain a difference, not to reproduce one."""
    import h5py

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        env["tensorflow"] = getattr(tf, "__version__", "")
    if thread_settings:
        env["threads"] = dict(thread_settings)
    return env


def _combine(name: str, parts: list[np.ndarray], rows: list[int]) -> tuple[np.ndarray, bool]:
    """Join per-batch outputs. Outputs with a batch dimension are concatenated; outputs
    without one (scalars, per-batch summaries) are stacked, one entry per batch."""
    batched = all(p.ndim >= 1 and p.shape[0] == r for p, r in zip(parts, rows, strict=True))
    if batched:
        try:
            return np.concatenate(parts, axis=0), True
        except ValueError:
            shapes = sorted({p.shape[1:] for p in parts})
            raise SignatureError(
                f"output {name!r} changes its per-sample shape between batches ({shapes}); "
                "record with one batch (--batch-size equal to --num-samples)") from None
    try:
        return np.stack(parts, axis=0), False
    except ValueError:
        raise SignatureError(
            f"output {name!r} has no batch dimension and changes shape between batches; "
            "record with one batch (--batch-size equal to --num-samples)") from None


def run_signature(model: Model, sig: SignatureInfo, inputs: Mapping[str, np.ndarray],
                  batch_size: int, progress: Progress = _no_progress,
                  stage: str = "running") -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Run ``sig`` over ``inputs`` batch by batch; returns outputs and whether each is batched."""
    parts: dict[str, list[np.ndarray]] = {}
    rows: list[int] = []
    total = num_rows(inputs)
    done = 0
    progress(stage, 0, total)
    for batch in batches(inputs, batch_size):
        out = model.run(sig.name, batch)
        n = num_rows(batch)
        rows.append(n)
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
        done += n
        progress(stage, done, total)
    combined: dict[str, np.ndarray] = {}
    batched: dict[str, bool] = {}
    for k, ps in parts.items():
        combined[k], batched[k] = _combine(k, ps, rows)
    return combined, batched


def _signatures_to_record(model: Model, signature: str | None) -> list[SignatureInfo]:
    if signature == "all":
        return [model.signatures[n] for n in sorted(model.signatures)]
    return [model.signature(signature)]


def record(model_path: str | Path, golden_path: str | Path, *, signature: str | None = None,
           inputs: str | Path | None = None, seed: int = 0, num_samples: int = 64,
           batch_size: int = 16, force: bool = False, tag: str = "serve",
           labels: str | None = None, config: Config | str | Path | None = None,
           latency: bool = True, latency_batch_sizes: Sequence[int] | None = None,
           progress: Progress = _no_progress) -> RecordResult:
    """Run a known-good model over fixed inputs and write its golden file.

    ``labels`` (``FILE[:KEY]``) adds task metrics per output, computed with scikit-learn;
    ``config`` supplies ``[outputs.NAME] task``/``threshold`` overrides for them.
    """
    golden = Path(golden_path)
    # Fail before the (possibly long) model run, not after it.
    check_writable(golden, force)
    if batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {batch_size}")
    if not 0 <= seed < 2**63:
        # numpy's generators take non-negative seeds, and HDF5 stores the attr as int64.
        raise InputsError(f"--seed must be between 0 and 2**63-1, got {seed}")
    cfg = config if isinstance(config, Config) else load_config(config)
    if labels is not None and inputs is None:
        raise InputsError("--labels needs --inputs: labels describe particular samples, "
                          "and synthesized inputs have no ground truth")
    label_spec = parse_spec(labels) if labels is not None else None
    label_values = load_labels(label_spec) if label_spec is not None else None
    exclude: tuple[str, ...] = ()
    if label_spec is not None and inputs is not None:
        if Path(inputs).resolve() == label_spec.path.resolve():
            exclude = (label_spec.key or "labels",)
    threads = fix_threads()
    with load_model(model_path, tag=tag) as model:
        return _record_loaded(model, model_path, golden, signature=signature, inputs=inputs,
                              seed=seed, num_samples=num_samples, batch_size=batch_size,
                              force=force, tag=tag, cfg=cfg, label_spec=label_spec,
                              label_values=label_values, exclude=exclude, latency=latency,
                              latency_batch_sizes=latency_batch_sizes, threads=threads,
                              progress=progress)


def _record_loaded(model: Model, model_path: str | Path, golden: Path, *,
                   signature: str | None, inputs: str | Path | None, seed: int,
                   num_samples: int, batch_size: int, force: bool, tag: str, cfg: Config,
                   label_spec: LabelsSpec | None, label_values: np.ndarray | None,
                   exclude: tuple[str, ...], latency: bool,
                   latency_batch_sizes: Sequence[int] | None, threads: dict[str, int],
                   progress: Progress) -> RecordResult:
    sigs = _signatures_to_record(model, signature)
    records: dict[str, SignatureGolden] = {}
    recorded: list[RecordedOutput] = []
    warnings: list[str] = list(getattr(model, "notes", []))
    used_samples = num_samples
    for sig in sigs:
        if inputs is not None:
            feeds = from_file(sig, inputs, exclude=exclude)
        else:
            feeds = synthesize(sig, num_samples, seed)
        # With --signature all the signatures may see different data; report the most.
        used_samples = num_rows(feeds) if sig is sigs[0] else max(used_samples, num_rows(feeds))
        outputs, batched = run_signature(model, sig, feeds, batch_size, progress,
                                         f"recording {sig.name}")
        attrs: dict[str, dict[str, Any]] = {k: {"batched": bool(b)} for k, b in batched.items()}
        spreads = measure_spread(model, sig, feeds, batch_size)
        if spreads:
            for k, spread in spreads.items():
                attrs[k]["nondeterministic"] = True
                if spread is not None:
                    attrs[k]["spread"] = spread
            widened = sorted(k for k in spreads if outputs[k].dtype.kind in "fc")
            exact = sorted(k for k in spreads if outputs[k].dtype.kind not in "fc")
            msg = (f"signature {sig.name!r} is not deterministic: output(s) "
                   f"{', '.join(sorted(spreads))} changed between two runs of the same batch")
            if widened:
                msg += (f"; the observed spread is stored and compare widens the atol of "
                        f"{', '.join(widened)} by twice it")
            if exact:
                # Integer, bool and string outputs compare exactly: their run-to-run change
                # fails every compare unless the user loosens them on purpose.
                msg += (f"; {', '.join(exact)} compare exactly and will fail every compare: "
                        "set atol (integers) or max_mismatch_fraction in [outputs.NAME]")
            warnings.append(msg)
        metrics: dict[str, OutputMetrics] = {}
        sig_labels = label_values
        if label_values is not None and label_spec is not None:
            rows = num_rows(feeds)
            if label_values.shape[0] != rows and len(sigs) > 1:
                # --signature all: labels describe the samples of the signatures that take
                # them; a signature over other data (or none) is recorded without metrics.
                warnings.append(f"labels {label_spec.source} have {label_values.shape[0]} rows "
                                f"but signature {sig.name!r} ran {rows} samples; recorded it "
                                "without labels or task metrics")
                sig_labels = None
            elif label_values.shape[0] != rows:
                raise InputsError(
                    f"labels {label_spec.source} have {label_values.shape[0]} rows but the "
                    f"inputs have {rows} samples; give one label per sample")
            else:
                metrics = record_metrics(outputs, batched, label_values, cfg,
                                         prefix=f"{sig.name}/" if len(sigs) > 1 else "")
                if not metrics:
                    warnings.append(f"no output of {sig.name!r} could be scored against the "
                                    "labels (set [outputs.NAME] task in the config to choose "
                                    "one)")
        records[sig.name] = SignatureGolden(
            sig.name, feeds, outputs, attrs, labels=sig_labels,
            labels_source=label_spec.source if label_spec and sig_labels is not None else "",
            metrics=metrics)
        recorded.extend(RecordedOutput(sig.name, k, _dtype(v), tuple(v.shape))
                        for k, v in sorted(outputs.items()))
    from snapshot_tool.latency import calibrate, environment_fingerprint

    # The fingerprint (CPU model, CPUs, quota, threads) explains differences in outputs as
    # well as in timings, so every golden carries it; only the calibration run is optional.
    fingerprint: dict[str, Any] = environment_fingerprint(threads)
    if latency:
        calibration = calibrate()
        sizes = _latency_sizes(latency_batch_sizes, batch_size)
        # A fresh load gives honest cold-start figures (load time, first call), and keeps the
        # timing calls away from the instance whose outputs went into the golden (a stateful
        # model's state would otherwise depend on how long we measured).
        with load_model(model_path, tag=tag) as fresh:
            for i, sig in enumerate(sigs):
                lat, notes = record_latency(fresh, sig.name, records[sig.name].inputs, sizes,
                                            calibration, progress, cold=i == 0)
                warnings.extend(notes)
                records[sig.name] = replace(records[sig.name], latency=lat)
    root_attrs = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "tool_version": __version__,
        "model_path": str(model_path),
        "model_digest": model_digest(model_path),
        "model_kind": model.kind,
        "signature": sigs[0].name if len(sigs) == 1 else "all",
        "seed": seed,
        "num_samples": used_samples,
        "batch_size": batch_size,
        "inputs_source": str(inputs) if inputs is not None else f"synthesized(seed={seed})",
        "tag": tag,
        "environment": json.dumps(environment(threads) | fingerprint, sort_keys=True,
                                  default=str),
    }
    write_golden(golden, root_attrs, records, force=force)
    return RecordResult(golden, str(model_path), tuple(s.name for s in sigs), used_samples,
                        batch_size, tuple(recorded), tuple(warnings))


def fix_threads() -> dict[str, int]:
    """Pin TensorFlow's thread pools before the runtime starts, and return the settings.

    TensorFlow sizes its pools from the machine when its context first starts; pinning them
    makes timings comparable between record and compare on the same machine, and the values
    are recorded so a different setting shows up in the fingerprint. SNAPSHOT_TOOL_THREADS
    overrides the intra-op count (e.g. 1 for the least noisy latency figures).
    """
    import os

    from snapshot_tool.model import import_tf, tensorflow_thread_settings

    tf = import_tf()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    env = os.environ.get("SNAPSHOT_TOOL_THREADS", "").strip()
    if env and not (env.isdigit() and int(env) > 0):
        raise InputsError(f"SNAPSHOT_TOOL_THREADS={env!r}: expected a positive integer")
    intra = int(env) if env else cpus
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:
        pass  # the runtime already started in this process; report what is in effect
    return tensorflow_thread_settings()


def _latency_sizes(sizes: Sequence[int] | None, batch_size: int) -> list[int]:
    chosen = list(sizes) if sizes else [1, batch_size]
    if any(b < 1 for b in chosen):
        raise InputsError(f"--latency-batch-sizes must be positive, got {chosen}")
    return sorted(set(chosen))


def _slice_batch(inputs: Mapping[str, np.ndarray], bs: int) -> dict[str, np.ndarray] | None:
    if not inputs:
        return {}
    if num_rows(inputs) < bs:
        return None
    return {k: v[:bs] for k, v in inputs.items()}


def _stage_progress(progress: Progress, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(stage, done, total)


def record_latency(fresh: Model, signature: str, inputs: Mapping[str, np.ndarray],
                   sizes: list[int], calibration: float, progress: Progress, *,
                   cold: bool = True) -> tuple[dict[int, LatencyRecord], list[str]]:
    """Latency baselines of one signature on ``fresh``, a copy of the model loaded for
    timing only; ``cold`` says whether its load time belongs to this signature."""
    from snapshot_tool.latency import measure

    records: dict[int, LatencyRecord] = {}
    notes: list[str] = []
    if not inputs:
        sizes = sizes[:1]  # a signature without inputs is the same call at any "batch size"
    for bs in sizes:
        batch = _slice_batch(inputs, bs)
        if batch is None:
            notes.append(f"latency at batch size {bs} skipped: only {num_rows(inputs)} "
                         "samples were recorded")
            continue
        m = measure(lambda b=batch: fresh.run(signature, b), bs,  # type: ignore[misc]
                    cold_load_s=fresh.load_seconds if cold and not records else 0.0,
                    progress=_stage_progress(progress, f"latency {signature} batch {bs}"))
        attrs: dict[str, Any] = {
            "p50": m.stats.p50, "p90": m.stats.p90, "p99": m.stats.p99, "mean": m.stats.mean,
            "std": m.stats.std, "warmup_calls": m.warmup_calls, "cold_load_s": m.cold_load_s,
            "first_call_s": m.first_call_s, "calibration": calibration,
            "warmup_stable": m.warmup_stable}
        if not m.warmup_stable:
            notes.append(f"latency at batch size {bs}: warm-up did not settle within its time "
                         "cap; the machine may be busy")
        records[bs] = LatencyRecord(bs, m.samples_ns, attrs)
    return records, notes


def record_metrics(outputs: Mapping[str, np.ndarray], batched: Mapping[str, bool],
                   labels: np.ndarray, config: Config, prefix: str = ""
                   ) -> dict[str, OutputMetrics]:
    """Task metrics of every output that has a task against ``labels``.

    Outputs whose task was inferred but whose shape does not fit the labels are skipped (a
    model's auxiliary outputs); an output whose task the config sets explicitly must fit, so
    its error is raised.
    """
    from snapshot_tool.metrics import infer_task, task_metrics

    result: dict[str, OutputMetrics] = {}
    for name in sorted(outputs):
        oc = config.output(prefix + name)  # "sig/out" tables apply in multi-signature goldens
        override = oc.task if oc is not None else None
        threshold = oc.threshold if oc is not None and oc.threshold is not None else 0.5
        out = outputs[name]
        if not batched.get(name, True) and override is None:
            continue
        task = infer_task(out, labels, override)
        if task == "none":
            continue
        try:
            values = task_metrics(out, labels, task, threshold)
        except InputsError as exc:
            if override is not None:
                raise InputsError(f"output {name!r} (task {task}): {exc}") from None
            continue
        result[name] = OutputMetrics(task, threshold, {
            k: StoredMetric(v.value, v.direction) for k, v in values.items()})
    return result


SPREAD_RUNS = 5
# The spread is a range seen over a handful of runs, and golden and candidate are two more
# independent draws; twice the observed range keeps a bounded noise from tripping the gate
# while a real change of the same order as the noise still fails.
SPREAD_MARGIN = 2.0


def measure_spread(model: Model, sig: SignatureInfo, feeds: Mapping[str, np.ndarray],
                   batch_size: int) -> dict[str, float | None]:
    """Run the first batch again; if any output changes, run it a few more times and
    return, per changed output, the largest difference seen between any two runs (None
    for non-numeric outputs, which have no distance).

    A stateful or nondeterministic reference (dropout left on, unseeded random ops,
    counters) would otherwise fail every comparison, including against itself.
    """
    first = next(iter(batches(feeds, batch_size)), None)
    if first is None:
        return {}
    runs = [model.run(sig.name, first), model.run(sig.name, first)]
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


def _same(a: np.ndarray, b: np.ndarray | None) -> bool:
    if b is None or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _dtype(arr: np.ndarray) -> str:
    return "string" if arr.dtype.kind in ("O", "S", "U") else str(arr.dtype)


def _fit_inputs(sig: SignatureInfo, sg: SignatureGolden, model: Model, who: str = "candidate"
                ) -> tuple[dict[str, np.ndarray], str]:
    """The golden's stored inputs keyed by the model's input names, checked against its specs.

    One input under another name is accepted with a note: converters and Keras reloads
    rename a lone input (``keras_tensor_3`` vs ``input_layer_3``) without changing what it
    means. A different set of inputs, a different kind of dtype or a different per-sample
    shape is an interface change and an error: feeding the recorded data anyway would be
    casting or reshaping it into something the golden never saw.
    """
    from snapshot_tool.inputs import conform

    want = {s.name for s in sig.inputs}
    have = set(sg.inputs)
    note = ""
    if want == have:
        feeds = dict(sg.inputs)
    elif len(want) == 1 and len(have) == 1:
        (cand_name,), (gold_name,) = want, have
        feeds = {cand_name: sg.inputs[gold_name]}
        note = (f"{who}'s only input is named {cand_name!r}, the golden's {gold_name!r}; "
                "fed the recorded input to it")
    else:
        raise SignatureError(
            f"signature {sig.name!r} of {who} {model.path} takes inputs "
            f"{', '.join(sorted(want)) or '(none)'} but the golden recorded "
            f"{', '.join(sorted(have)) or '(none)'}; the {who}'s interface changed")
    fitted: dict[str, np.ndarray] = {}
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
                f"{_dtype(arr)}; the recorded values were cast")
    return fitted, note


def compare_outputs(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    config: Config, signature: str, qualify: bool = False) -> list[TensorDiff]:
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        g = sg.outputs[name]
        if name not in candidate:
            diffs.append(missing(name, g, signature))
            continue
        tol = resolve(f"{signature}/{name}" if qualify else name, _dtype(g), config)
        spread = sg.output_attrs.get(name, {}).get("spread")
        if spread is not None and float(spread) > 0 and not tol.exact:
            # The reference itself moved this much between identical calls; a candidate
            # cannot be held to a tighter bound than the golden's own run-to-run noise.
            tol = replace(tol, atol=tol.atol + SPREAD_MARGIN * float(spread),
                          source=f"{tol.source} + {SPREAD_MARGIN:g} x recorded spread")
        diffs.append(compare_tensor(name, g, candidate[name], tol, signature,
                                    None if spread is None else float(spread)))
    for name in sorted(set(candidate) - set(sg.outputs)):
        diffs.append(extra(name, candidate[name], signature))
    return diffs


def _output_task(sg: SignatureGolden, name: str, config: Config, key: str = ""
                 ) -> tuple[str, float]:
    from snapshot_tool.metrics import infer_task

    oc = config.output(key or name)
    if name in sg.metrics:
        om = sg.metrics[name]
        return om.task, om.threshold
    threshold = oc.threshold if oc is not None and oc.threshold is not None else 0.5
    if not sg.output_attrs.get(name, {}).get("batched", True) and (oc is None or not oc.task):
        return "none", threshold
    return infer_task(sg.outputs[name], None, oc.task if oc is not None else None), threshold


def _available_metrics(sg: SignatureGolden, config: Config, prefix: str = ""
                       ) -> dict[str, set[str]]:
    from snapshot_tool.metrics import agreement_metrics

    available: dict[str, set[str]] = {}
    for name, g in sg.outputs.items():
        task, threshold = _output_task(sg, name, config, prefix + name)
        names = set(sg.metrics[name].values) if name in sg.metrics else set()
        # Agreement of the golden with itself yields exactly the names a candidate will get.
        names |= set(agreement_metrics(g, g, task, threshold))
        available[prefix + name] = names
    return available


def _recorded_task_conflicts(golden: Golden, names: list[str], config: Config) -> list[str]:
    """Task and decision threshold are fixed when metrics are recorded; a compare-time
    config that says otherwise has no effect, and the user should hear so."""
    notes: list[str] = []
    for sig in names:
        for out, om in golden.signatures[sig].metrics.items():
            oc = config.output(f"{sig}/{out}" if len(golden.signatures) > 1 else out)
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


def validate_metric_config(golden: Golden, names: list[str], config: Config) -> None:
    from snapshot_tool.metrics import validate_thresholds

    available: dict[str, set[str]] = {}
    prefix = len(golden.signatures) > 1
    for sig in names:
        for out, metrics in _available_metrics(golden.signatures[sig], config,
                                               f"{sig}/" if prefix else "").items():
            available.setdefault(out, set()).update(metrics)
    validate_thresholds(config, available)


def compare_metrics(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    diffs: list[TensorDiff], config: Config, prefix: str = ""
                    ) -> list[MetricCheck]:
    """Task metrics on the golden's labels and agreement metrics against its outputs."""
    from snapshot_tool.metrics import MetricValue, agreement_metrics, check_all, task_metrics

    comparable = {d.name for d in diffs if d.status in ("ok", "mismatch")}
    checks: list[MetricCheck] = []
    for name in sorted(sg.outputs):
        task, threshold = _output_task(sg, name, config, prefix + name)
        golden_values = {k: MetricValue(k, v.value, v.direction)  # type: ignore[arg-type]
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
                    threads: Mapping[str, int], progress: Progress
                    ) -> tuple[list[LatencyCheck], list[str]]:
    """Side by side against ``baseline`` when given, else against the golden's samples."""
    from snapshot_tool.latency import (
        Measurement,
        environment_fingerprint,
        gate_side_by_side,
        gate_stored,
        summarize,
    )

    checks: list[LatencyCheck] = []
    notes: list[str] = []
    if baseline is not None:
        bsig, note = _candidate_signature(baseline, sg.signature, single=True)
        if note:
            notes.append(f"baseline model: {note}")
        base_feeds, note = _fit_inputs(bsig, sg, baseline, "baseline model")
        if note:
            notes.append(note)
        sizes = sorted(sg.latency) or _latency_sizes(None, _batch_size(golden))
        if not feeds:
            sizes = sizes[:1]
        for bs in sizes:
            batch = _slice_batch(feeds, bs)
            base_batch = _slice_batch(base_feeds, bs)
            if batch is None or base_batch is None:
                notes.append(f"latency at batch size {bs} skipped: the golden holds only "
                             f"{num_rows(feeds)} samples")
                continue
            checks.append(gate_side_by_side(
                lambda b=base_batch: baseline.run(bsig.name, b),  # type: ignore[misc]
                lambda b=batch: model.run(signature, b),  # type: ignore[misc]
                bs, config.latency.max_drift,
                progress=_stage_progress(progress, f"latency A/B batch {bs}")))
        return [replace(c, signature=sg.signature) for c in checks], notes
    if not sg.latency:
        notes.append("golden has no latency baseline (recorded with --no-latency, or no batch "
                     "size fitted its samples); latency not checked. Use --baseline-model to "
                     "compare side by side")
        return checks, notes
    golden_kind = str(golden.attrs.get("model_kind", model.kind))
    env = golden.environment
    fingerprint = environment_fingerprint(dict(threads))
    for bs, rec in sorted(sg.latency.items()):
        batch = _slice_batch(feeds, bs)
        if batch is None:
            notes.append(f"latency at batch size {bs} skipped: the golden holds only "
                         f"{num_rows(feeds)} samples")
            continue
        stored = Measurement(
            batch_size=bs, samples_ns=rec.samples_ns,
            warmup_calls=int(rec.attrs.get("warmup_calls", 0)),
            first_call_s=float(rec.attrs.get("first_call_s", 0.0)),
            cold_load_s=float(rec.attrs.get("cold_load_s", 0.0)),
            stats=summarize(rec.samples_ns))
        check = gate_stored(
            stored, env, float(rec.attrs.get("calibration", 0.0)),
            lambda b=batch: model.run(signature, b),  # type: ignore[misc]
            bs, config.latency.stored_max_drift, fingerprint=fingerprint,
            progress=_stage_progress(progress, f"latency batch {bs}"))
        if golden_kind != model.kind and check.verdict != "advisory":
            # A TFLite or Keras candidate against a SavedModel's stored timings compares two
            # runtimes, not two versions of a model: report it, never gate on it.
            check = replace(check, verdict="advisory", note=(
                f"the golden's timings are of a {golden_kind}, the candidate is a "
                f"{model.kind}: different runtimes, so this is advisory. "
                f"Time it side by side with --baseline-model for a gate. {check.note}").strip())
        checks.append(check)
    return [replace(c, signature=sg.signature) for c in checks], notes


def _batch_size(golden: Golden) -> int:
    value = golden.attrs.get("batch_size", 16)
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise GoldenError(f"{golden.path}: root attribute batch_size is {value!r}, not a "
                          "positive integer; the golden is malformed — re-record it")
    return size


def compare(model_path: str | Path, golden_path: str | Path, *,
            config: Config | str | Path | None = None, signature: str | None = None,
            tag: str | None = None, latency: bool = True,
            baseline_model: str | Path | None = None, latency_strict: bool = False,
            progress: Progress = _no_progress) -> ComparisonResult:
    """Replay a golden's inputs through a candidate and judge it against the golden.

    ``tag`` defaults to the tag set the golden was recorded with: a TF1 export holds one
    graph per tag set, and comparing another graph than the recorded one is never meant.
    """
    golden: Golden = read_golden(golden_path)
    if tag is None:
        tag = str(golden.attrs.get("tag", "serve"))
    cfg = config if isinstance(config, Config) else load_config(config)
    names = sorted(golden.signatures)
    if signature is not None and signature != "all":
        if signature not in golden.signatures:
            raise SignatureError(f"golden {golden.path} has no signature {signature!r}; it "
                                 f"holds: {', '.join(names)}")
        names = [signature]
    warnings_early = _recorded_task_conflicts(golden, names, cfg)
    qualified = [f"{sig}/{out}" if len(golden.signatures) > 1 else out
                 for sig in names for out in golden.signatures[sig].outputs]
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
        model = stack.enter_context(load_model(model_path, tag=tag))
        baseline: Model | None = None
        if baseline_model is not None and not latency:
            warnings_early.append("--baseline-model is only used to time latency; it was "
                                  "ignored because of --no-latency")
        elif baseline_model is not None:
            try:
                baseline = stack.enter_context(load_model(baseline_model, tag=tag))
            except ModelError as exc:
                raise ModelError(f"--baseline-model: {exc}") from None
        batch_size = _batch_size(golden)
        diffs: list[TensorDiff] = []
        warnings: list[str] = warnings_early + [
            f"candidate: {n}" for n in getattr(model, "notes", [])]
        if baseline is not None:
            warnings.extend(f"baseline model: {n}" for n in getattr(baseline, "notes", []))
        for name in names:
            sg = golden.signatures[name]
            sig, note = _candidate_signature(model, name, single=len(names) == 1)
            if note:
                warnings.append(note)
            feeds, note = _fit_inputs(sig, sg, model)
            if note:
                warnings.append(note)
            outputs, _ = run_signature(model, sig, feeds, batch_size, progress,
                                       f"comparing {name}")
            multi = len(golden.signatures) > 1
            sig_diffs = compare_outputs(sg, outputs, cfg, name, qualify=multi)
            diffs.extend(sig_diffs)
            metric_checks.extend(compare_metrics(sg, outputs, sig_diffs, cfg,
                                                 prefix=f"{name}/" if multi else ""))
            if latency:
                lat, notes = compare_latency(golden, sg, feeds, model, sig.name, baseline, cfg,
                                             threads, progress)
                if len(names) > 1:
                    notes = [f"{name}: {n}" for n in notes]
                latency_checks.extend(lat)
                warnings.extend(notes)
        return ComparisonResult(golden=str(golden.path), model=str(model_path),
                                signatures=tuple(names), outputs=tuple(diffs),
                                metrics=tuple(metric_checks), latency=tuple(latency_checks),
                                latency_mode=("side_by_side" if baseline is not None else "stored")
                                if latency_checks else None,
                                latency_strict=latency_strict, warnings=tuple(warnings),
                                config_source=cfg.source, baseline_model=str(baseline_model)
                                if baseline_model is not None else None)


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
