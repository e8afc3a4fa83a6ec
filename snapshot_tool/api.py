"""The library API: ``record`` and ``compare``, which the CLI and pytest users call alike.

Both return frozen dataclasses and raise :class:`SnapshotToolError` for anything the user can
fix. Nothing here prints; progress goes through an optional callback.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool import __version__
from snapshot_tool.config import Config, load_config
from snapshot_tool.diff import TensorDiff, compare_tensor, extra, missing
from snapshot_tool.errors import InputsError, SignatureError
from snapshot_tool.golden import Golden, SignatureGolden, check_writable, read_golden, write_golden
from snapshot_tool.inputs import batches, from_file, num_rows, synthesize
from snapshot_tool.model import Model, SignatureInfo, load_model, model_digest
from snapshot_tool.tolerance import resolve

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
    warnings: tuple[str, ...] = ()
    config_source: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs_passed(self) -> bool:
        return all(d.passed for d in self.outputs)

    @property
    def passed(self) -> bool:
        return self.outputs_passed


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
           progress: Progress = _no_progress) -> RecordResult:
    """Run a known-good model over fixed inputs and write its golden file."""
    golden = Path(golden_path)
    # Fail before the (possibly long) model run, not after it.
    check_writable(golden, force)
    if batch_size < 1:
        raise InputsError(f"--batch-size must be at least 1, got {batch_size}")
    model = load_model(model_path, tag=tag)
    sigs = _signatures_to_record(model, signature)
    records: dict[str, SignatureGolden] = {}
    recorded: list[RecordedOutput] = []
    warnings: list[str] = list(getattr(model, "notes", []))
    used_samples = num_samples
    for sig in sigs:
        if inputs is not None:
            feeds = from_file(sig, inputs)
        else:
            feeds = synthesize(sig, num_samples, seed)
        used_samples = num_rows(feeds)
        outputs, batched = run_signature(model, sig, feeds, batch_size, progress,
                                         f"recording {sig.name}")
        attrs: dict[str, dict[str, Any]] = {k: {"batched": bool(b)} for k, b in batched.items()}
        spreads = measure_spread(model, sig, feeds, batch_size)
        if spreads:
            for k, spread in spreads.items():
                attrs[k]["nondeterministic"] = True
                if spread is not None:
                    attrs[k]["spread"] = spread
            warnings.append(
                f"signature {sig.name!r} is not deterministic: output(s) "
                f"{', '.join(sorted(spreads))} changed between two runs of the same batch; "
                "the observed spread is stored and compare widens atol by twice it")
        records[sig.name] = SignatureGolden(sig.name, feeds, outputs, attrs)
        recorded.extend(RecordedOutput(sig.name, k, _dtype(v), tuple(v.shape))
                        for k, v in sorted(outputs.items()))
    from snapshot_tool.model import tensorflow_thread_settings

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
        "environment": json.dumps(environment(tensorflow_thread_settings()), sort_keys=True),
    }
    write_golden(golden, root_attrs, records, force=force)
    return RecordResult(golden, str(model_path), tuple(s.name for s in sigs), used_samples,
                        batch_size, tuple(recorded), tuple(warnings))


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


def _check_inputs_fit(sig: SignatureInfo, sg: SignatureGolden, model: Model) -> None:
    want = {s.name for s in sig.inputs}
    have = set(sg.inputs)
    if want != have:
        raise SignatureError(
            f"signature {sig.name!r} of {model.path} takes inputs "
            f"{', '.join(sorted(want)) or '(none)'} but the golden recorded "
            f"{', '.join(sorted(have)) or '(none)'}; the candidate's interface changed")


def compare_outputs(sg: SignatureGolden, candidate: Mapping[str, np.ndarray],
                    config: Config, signature: str) -> list[TensorDiff]:
    diffs: list[TensorDiff] = []
    for name in sorted(sg.outputs):
        g = sg.outputs[name]
        if name not in candidate:
            diffs.append(missing(name, g, signature))
            continue
        tol = resolve(name, _dtype(g), config)
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


def compare(model_path: str | Path, golden_path: str | Path, *,
            config: Config | str | Path | None = None, signature: str | None = None,
            tag: str = "serve", progress: Progress = _no_progress) -> ComparisonResult:
    """Replay a golden's inputs through a candidate and judge it against the golden."""
    golden: Golden = read_golden(golden_path)
    cfg = config if isinstance(config, Config) else load_config(config)
    model = load_model(model_path, tag=tag)
    names = sorted(golden.signatures)
    if signature is not None and signature != "all":
        if signature not in golden.signatures:
            raise SignatureError(f"golden {golden.path} has no signature {signature!r}; it "
                                 f"holds: {', '.join(names)}")
        names = [signature]
    batch_size = int(golden.attrs.get("batch_size", 16))
    diffs: list[TensorDiff] = []
    warnings: list[str] = list(getattr(model, "notes", []))
    for name in names:
        sg = golden.signatures[name]
        sig, note = _candidate_signature(model, name, single=len(names) == 1)
        if note:
            warnings.append(note)
        _check_inputs_fit(sig, sg, model)
        outputs, _ = run_signature(model, sig, sg.inputs, batch_size, progress,
                                   f"comparing {name}")
        diffs.extend(compare_outputs(sg, outputs, cfg, name))
    return ComparisonResult(golden=str(golden.path), model=str(model_path),
                            signatures=tuple(names), outputs=tuple(diffs),
                            warnings=tuple(warnings), config_source=cfg.source)


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
