"""``record``: run a known-good model over fixed inputs and write its golden file.

Outputs, the reference's own run-to-run spread, task metrics against labels and latency
baselines all go into one golden, written atomically by :mod:`snapshot_tool.golden`.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from snapshot_tool import __version__
from snapshot_tool.config import Config, load_config
from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import (
    InputsError,
)
from snapshot_tool.golden.io import check_writable, write_golden
from snapshot_tool.golden.schema import LatencyRecord, OutputMetrics, SignatureGolden, StoredMetric
from snapshot_tool.inputs.batching import batches, num_rows
from snapshot_tool.inputs.files import from_file
from snapshot_tool.inputs.labels import LabelsSpec, load_labels, parse_spec
from snapshot_tool.inputs.synthesize import synthesize
from snapshot_tool.latency.fingerprint import environment, fix_threads
from snapshot_tool.latency.measure import latency_sizes
from snapshot_tool.models.base import Model, SignatureInfo, run_signature
from snapshot_tool.models.load import load_model, model_digest
from snapshot_tool.models.scan import allowed_ops, refuse_flagged
from snapshot_tool.names import output_prefix
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


def _signatures_to_record(model: Model, signature: str | None) -> list[SignatureInfo]:
    if signature == "all":
        return [model.signatures[n] for n in sorted(model.signatures)]
    return [model.signature(signature)]


def record(model_path: str | Path, golden_path: str | Path, *, signature: str | None = None,
           inputs: str | Path | None = None, seed: int = 0, num_samples: int = 64,
           batch_size: int = 16, force: bool = False, tag: str = "serve",
           labels: str | None = None, config: Config | str | Path | None = None,
           latency: bool = True, latency_batch_sizes: Sequence[int] | None = None,
           progress: Progress = no_progress, sign: bool = False,
           allow_ops: Sequence[str] = ()) -> RecordResult:
    """Run a known-good model over fixed inputs and write its golden file.

    ``labels`` (``FILE[:KEY]``) adds task metrics per output, computed with scikit-learn;
    ``config`` supplies ``[outputs.NAME] task``/``threshold`` overrides for them. ``sign``
    signs the golden with the HMAC key in ``SNAPSHOT_TOOL_HMAC_KEY``. A model whose
    signatures read, write or list files or print is refused before it runs, unless each
    such op is in ``allow_ops`` or the config's ``[models] allow_ops``.
    """
    golden = Path(golden_path)
    # Fail before the (possibly long) model run, not after it.
    check_writable(golden, force)
    if sign:
        from snapshot_tool.golden.digest import hmac_key
        from snapshot_tool.golden.schema import HMAC_KEY_ENV

        if hmac_key() is None:
            raise InputsError(f"--sign needs the signing key in the environment variable "
                              f"{HMAC_KEY_ENV}")
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
        refuse_flagged(model, allowed_ops(allow_ops, cfg))
        return _record_loaded(model, model_path, golden, signature=signature, inputs=inputs,
                              seed=seed, num_samples=num_samples, batch_size=batch_size,
                              force=force, tag=tag, cfg=cfg, label_spec=label_spec,
                              label_values=label_values, exclude=exclude, latency=latency,
                              latency_batch_sizes=latency_batch_sizes, threads=threads,
                              progress=progress, sign=sign)


def _record_loaded(model: Model, model_path: str | Path, golden: Path, *,
                   signature: str | None, inputs: str | Path | None, seed: int,
                   num_samples: int, batch_size: int, force: bool, tag: str, cfg: Config,
                   label_spec: LabelsSpec | None, label_values: np.ndarray | None,
                   exclude: tuple[str, ...], latency: bool,
                   latency_batch_sizes: Sequence[int] | None, threads: dict[str, int],
                   progress: Progress, sign: bool) -> RecordResult:
    sigs = _signatures_to_record(model, signature)
    records: dict[str, SignatureGolden] = {}
    recorded: list[RecordedOutput] = []
    warnings: list[str] = list(model.notes)
    used_samples = 0
    for sig in sigs:
        if inputs is not None:
            feeds = from_file(sig, inputs, exclude=exclude)
        else:
            feeds = synthesize(sig, num_samples, seed)
        # With --signature all the signatures may see different data; report the most.
        used_samples = max(used_samples, num_rows(feeds))
        outputs, batched = run_signature(model, sig, feeds, batch_size, progress,
                                         f"recording {sig.name}")
        attrs: dict[str, dict[str, Any]] = {k: {"batched": bool(b)} for k, b in batched.items()}
        spreads = measure_spread(model, sig, feeds, batch_size)
        if spreads:
            msg = spread_attrs(sig.name, spreads, {k: v.dtype.kind for k, v in outputs.items()},
                               attrs)
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
                                         prefix=output_prefix(sig.name, len(sigs) > 1))
                if not metrics:
                    warnings.append(f"no output of {sig.name!r} could be scored against the "
                                    "labels (set [outputs.NAME] task in the config to choose "
                                    "one)")
        records[sig.name] = SignatureGolden(
            sig.name, feeds, outputs, attrs, labels=sig_labels,
            labels_source=label_spec.source if label_spec and sig_labels is not None else "",
            metrics=metrics)
        recorded.extend(RecordedOutput(sig.name, k, dtype_label(v), tuple(v.shape))
                        for k, v in sorted(outputs.items()))
    if latency:
        sizes = latency_sizes(latency_batch_sizes, batch_size)
        for sig in sigs:
            lat, notes = record_latency(model_path, tag, sig.name, records[sig.name].inputs,
                                        sizes, progress)
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
        "environment": json.dumps(environment(threads), sort_keys=True, default=str),
    }
    write_golden(golden, root_attrs, records, force=force, sign=sign)
    return RecordResult(golden, str(model_path), tuple(s.name for s in sigs), used_samples,
                        batch_size, tuple(recorded), tuple(warnings))


def record_latency(model_path: str | Path, tag: str, signature: str,
                   inputs: Mapping[str, np.ndarray], sizes: list[int], progress: Progress
                   ) -> tuple[dict[int, LatencyRecord], list[str]]:
    """Latency baselines of one signature, measured the way ``compare`` measures a candidate.

    The outputs run is over and nothing is being written: a copy of the model loaded for
    timing only (honest cold-start figures; a stateful model's outputs never depend on how
    long it was timed) is measured by :func:`~snapshot_tool.latency.measure.time_model`,
    after the calibration workload, exactly as ``compare`` does in stored mode.
    """
    from snapshot_tool.latency.fingerprint import calibrate
    from snapshot_tool.latency.measure import time_model

    calibration = calibrate()
    with load_model(model_path, tag=tag) as copy:
        measured, notes = time_model(
            copy, signature, inputs, sizes,
            progress=lambda bs: stage_progress(progress, f"latency {signature} batch {bs}"))
    records: dict[int, LatencyRecord] = {}
    for bs, m in measured.items():
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


def spread_attrs(signature: str, spreads: Mapping[str, float | None],
                 kinds: Mapping[str, str], attrs: dict[str, dict[str, Any]]) -> str:
    """Mark the outputs ``spreads`` found nondeterministic in ``attrs`` (in place), and
    return the warning that says what compare will do about them. ``kinds`` maps an output
    to its numpy dtype kind."""
    for k, spread in spreads.items():
        attrs.setdefault(k, {})["nondeterministic"] = True
        if spread is not None:
            attrs[k]["spread"] = spread
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
