"""``compare --localize``: re-run the golden's model and the candidate on the first failing
batch with their intermediate tensors exposed, and say where the difference starts.

The golden's model is ``baseline_model`` when given, else the ``model_path`` the golden
recorded. The batch is the one holding the worst element of the first failing output (from
a :class:`ComparisonResult` when the caller has one, else found by replaying the golden's
batches until one fails). A kind that cannot be traced yields a ``Localization`` whose
``reason`` says why, never an error: localization is advice on top of a verdict.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from snapshot_tool.diagnose.divergence import Localization, locate
from snapshot_tool.errors import ModelError, SignatureError

if TYPE_CHECKING:
    from snapshot_tool.compare import ComparisonResult
    from snapshot_tool.config import Config
    from snapshot_tool.diff import TensorDiff
    from snapshot_tool.golden.schema import Golden, SignatureGolden
    from snapshot_tool.models.base import Model


def _signature(golden: Golden, signature: str | None, result: ComparisonResult | None) -> str:
    names = sorted(golden.signatures)
    if signature is not None and signature != "all":
        if signature not in golden.signatures:
            raise SignatureError(f"golden {golden.path} has no signature {signature!r}; it "
                                 f"holds: {', '.join(names)}")
        return signature
    if result is not None:
        for d in result.outputs:
            if not d.passed and d.signature in golden.signatures:
                return d.signature
    return names[0]


def _batch_of(diff: TensorDiff, batch_size: int, rows: int) -> tuple[int, int] | None:
    if diff.worst_index is None or not diff.worst_index or diff.status != "mismatch":
        return None
    start = (diff.worst_index[0] // batch_size) * batch_size
    return start, min(start + batch_size, rows)


def _slice(feeds: Mapping[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    from snapshot_tool.inputs.batching import row_slice

    return row_slice(feeds, start, stop)


def _first_failing(sg: SignatureGolden, model: Model, sig_name: str,
                   feeds: Mapping[str, np.ndarray], batch_size: int, cfg: Config,
                   prefix: str, output: str | None
                   ) -> tuple[TensorDiff, tuple[int, int]] | None:
    """Replay batches until a batched output fails: (its diff, the batch's rows)."""
    from snapshot_tool.compare import compare_outputs
    from snapshot_tool.inputs.batching import num_rows
    from snapshot_tool.matching import golden_named

    rows = num_rows(feeds)
    batched = {k for k in sg.outputs if sg.info(k).batched
               and (output is None or k == output)}
    for start in range(0, max(rows, 1), batch_size):
        stop = min(start + batch_size, rows)
        out = model.run(sig_name, _slice(feeds, start, stop))
        out, _ = golden_named(sg, out, cfg.rename)
        part = replace(sg, outputs={k: sg.outputs[k][start:stop] for k in batched})
        for d in compare_outputs(part, {k: v for k, v in out.items() if k in batched}, cfg,
                                 sig_name, prefix):
            if not d.passed:
                return d, (start, stop)
    return None


def localize(model_path: str | Path, golden_path: str | Path, *,
             baseline_model: str | Path | None = None, config: Config | str | Path | None = None,
             signature: str | None = None, tag: str | None = None, output: str | None = None,
             result: ComparisonResult | None = None,
             rename: Mapping[str, str] | None = None,
             allow_ops: Sequence[str] = ()) -> Localization:
    """Where the candidate's first failing output starts to differ from the golden model's.

    ``rename`` maps the golden's input/output names to the candidate's, as ``compare``'s
    ``--map`` does (added to the config's ``[rename]`` table). Both models are scanned
    before they run, as compare scans its models: flagged ops not in ``allow_ops`` or the
    config's ``[models] allow_ops`` are refused.

    Raises :class:`SnapshotToolError` only for bad input (no such golden, signature or
    model); everything about *tracing* is reported in the returned value's ``reason``.
    """
    from snapshot_tool.compare import (
        CompareOptions,
        loaded_config,
        run_allowed_ops,
        run_config,
    )
    from snapshot_tool.golden.io import read_golden
    from snapshot_tool.matching import candidate_signature, fit_inputs
    from snapshot_tool.models.base import fixed_to_one_row
    from snapshot_tool.models.load import load_model
    from snapshot_tool.models.scan import refuse_flagged
    from snapshot_tool.names import signature_prefix

    golden = read_golden(golden_path)
    tag = tag or golden.info.tag
    options = CompareOptions(config=config, rename=rename or {}, allow_ops=tuple(allow_ops))
    options = replace(options, config=loaded_config(options))  # read once, as compare does
    cfg = run_config(options)
    allowed = run_allowed_ops(options)
    sig_name = _signature(golden, signature, result)
    sg = golden.signatures[sig_name]
    base_path = baseline_model or _golden_model(golden)
    ident = dict(signature=sig_name, candidate_model=str(model_path),
                 golden_model=str(base_path or ""))
    missing = _missing_golden_model(baseline_model, base_path, ident)
    if missing is not None:
        return missing
    batch_size = golden.info.batch_size
    prefix = signature_prefix(golden, sig_name)
    with contextlib.ExitStack() as stack:
        cand = stack.enter_context(load_model(model_path, tag=tag))
        refuse_flagged(cand, allowed)
        try:
            base = stack.enter_context(load_model(str(base_path), tag=tag))
            refuse_flagged(base, allowed)
        except ModelError as exc:
            raise ModelError(f"golden's model for --localize: {exc}") from None
        csig, _ = candidate_signature(cand, sig_name, single=True)
        bsig, _ = candidate_signature(base, sig_name, single=True)
        cfeeds, _ = fit_inputs(csig, sg, cand, renames=cfg.rename)
        bfeeds, _ = fit_inputs(bsig, sg, base, "baseline model")
        ident.update(golden_kind=base.kind, candidate_kind=cand.kind)
        found = _from_result(result, sig_name, batch_size, cfeeds, output)
        if found is None:
            found = _first_failing(sg, cand, csig.name, cfeeds, batch_size, cfg, prefix,
                                   output)
        if found is None or found[0].status != "mismatch":
            return _nothing_to_trace(found, ident)
        diff, (start, stop) = found
        if fixed_to_one_row(bsig) or fixed_to_one_row(csig):
            start, stop = _worst_row(diff, start, stop)
        return _trace_and_locate(base, bsig.name, cand, csig.name,
                                 _slice(bfeeds, start, stop), _slice(cfeeds, start, stop),
                                 diff, tag, ident, (start, stop))


def _worst_row(diff: TensorDiff, start: int, stop: int) -> tuple[int, int]:
    """The one row of ``start:stop`` to trace for a model fixed to batch 1 (a trace feeds
    the graph once, and such a graph takes one row): the row of the worst element."""
    row = diff.worst_index[0] if diff.worst_index else start
    row = min(max(row, start), stop - 1)
    return row, row + 1


def _golden_model(golden: Golden) -> str:
    """The golden's recorded model, found as the self-check finds it (relative to the current
    folder or the golden's), else its model_path as recorded (a changed model there is still
    traced: localize compares where the two models diverge, whatever they are)."""
    from snapshot_tool.models.load import locate_recorded_model

    found, _ = locate_recorded_model(golden.info.model_path, golden.info.model_digest,
                                     golden.path)
    return str(found) if found is not None else golden.info.model_path


def _missing_golden_model(baseline_model: str | Path | None, base_path: str | Path | None,
                          ident: dict[str, str]) -> Localization | None:
    """Why the golden's model cannot be re-run here, if it cannot."""
    if baseline_model is not None and not Path(baseline_model).exists():
        return Localization("unsupported", f"--baseline-model {str(baseline_model)!r} does "
                            "not exist", **ident)  # type: ignore[arg-type]
    if not base_path or not Path(str(base_path)).exists():
        where = f"the golden's model_path {base_path!r} does not exist here" if base_path \
            else "the golden records no model_path"
        return Localization("unsupported", f"{where}; pass the golden's model with "
                            "--baseline-model to localize", **ident)  # type: ignore[arg-type]
    return None


def _nothing_to_trace(found: tuple[TensorDiff, tuple[int, int]] | None,
                      ident: dict[str, str]) -> Localization:
    """The answer when there is no failing value to trace back: every batch passes, or the
    first failure is structural (a missing output, another shape)."""
    if found is None:
        return Localization("passed", "every output is within tolerance on every batch; "
                            "nothing to localize", **ident)  # type: ignore[arg-type]
    diff, rows = found
    return Localization("unsupported", f"output {diff.name!r} is {diff.status} "
                        f"({diff.message}); a structural change has no first "
                        "diverging value", output=diff.name, rows=rows,
                        **ident)  # type: ignore[arg-type]


def _from_result(result: ComparisonResult | None, sig_name: str, batch_size: int,
                 feeds: Mapping[str, np.ndarray], output: str | None
                 ) -> tuple[TensorDiff, tuple[int, int]] | None:
    from snapshot_tool.inputs.batching import num_rows

    if result is None:
        return None
    for d in result.outputs:
        if d.signature == sig_name and (output is None or d.name == output):
            rows = _batch_of(d, batch_size, num_rows(feeds))
            if rows is not None:
                return d, rows
    return None


def _trace_and_locate(base: Model, base_sig: str, cand: Model, cand_sig: str,
                      base_feeds: Mapping[str, np.ndarray], cand_feeds: Mapping[str, np.ndarray],
                      diff: TensorDiff, tag: str, ident: dict[str, str],
                      rows: tuple[int, int]) -> Localization:
    from snapshot_tool.diagnose.tracing import NotTraceable, trace

    traces = []
    for who, model, sig, feeds in (("golden's model", base, base_sig, base_feeds),
                                   ("candidate", cand, cand_sig, cand_feeds)):
        try:
            traces.append(trace(model.path, model.kind, sig, feeds, tag))
        except NotTraceable as exc:
            return Localization("unsupported", f"the {who} ({model.kind}) cannot be "
                                f"localized: {exc}", output=diff.name, rows=rows,
                                **ident)  # type: ignore[arg-type]
    loc = locate(traces[0], traces[1], diff.name, diff.atol, diff.rtol,
                 diff.max_mismatch_fraction)
    notes = traces[0].notes + traces[1].notes
    if ident.get("golden_kind") != ident.get("candidate_kind"):
        notes += (f"the golden's model is a {ident.get('golden_kind')}, the candidate a "
                  f"{ident.get('candidate_kind')}: tensors were matched across runtimes by "
                  "name, layer and position, which is approximate",)
    return replace(loc, rows=rows, notes=notes, **ident)  # type: ignore[arg-type]
