"""``snapshot-tool calibrate G.h5 CANDIDATE...``: tolerances from evidence.

Every candidate the user declares acceptable (a re-export, a TFLite conversion, a
mixed-precision build, another machine's golden of the same inputs) is run over the golden's
inputs; the error each makes per output, and what it does to task and agreement metrics,
become a proposed ``snapshot.toml`` that accepts all of them with a stated margin
(:mod:`snapshot_tool.diagnose.evidence` says how). The proposal is then checked the way
``compare`` would: every acceptable candidate must pass under it, and every candidate given
with ``reject`` (known-broken builds) must still fail.
"""

from __future__ import annotations

import datetime as _dt
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from snapshot_tool.atomic import write_text
from snapshot_tool.diagnose.evidence import (
    CostRow,
    MetricProposal,
    ToleranceProposal,
    cost_table,
    propose_metric,
    propose_tolerance,
    render_toml,
)
from snapshot_tool.errors import InputsError
from snapshot_tool.names import signature_prefix

if TYPE_CHECKING:
    from snapshot_tool.compare import CompareOptions
    from snapshot_tool.config import Config
    from snapshot_tool.diff import TensorDiff
    from snapshot_tool.golden.schema import Golden, SignatureGolden
    from snapshot_tool.metrics.thresholds import MetricCheck
    from snapshot_tool.progress import Progress

Outputs = dict[str, dict[str, np.ndarray]]  # signature -> output -> array

# The metrics a proposal sets limits on: one per idea (decisions, direction, calibration,
# error size), so the config stays readable; compare still reports every other metric.
HEADLINE_METRICS = frozenset({"accuracy", "roc_auc", "log_loss", "mae", "rmse", "r2",
                              "top1_agreement", "cosine_min", "correlation"})


@dataclass(frozen=True)
class _Run:
    """One candidate's outputs over the golden's inputs."""

    label: str  # "[1]"; "[r1]" for a rejected one
    path: Path
    accepted: bool
    kind: str  # a model kind, or "golden"
    outputs: Outputs
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CandidateVerdict:
    label: str  # "[1]", "[r1]" for rejected ones
    path: str
    kind: str
    accepted: bool  # declared acceptable (False: given with --reject)
    passed: bool  # under the proposed config
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricEffect:
    """One headline metric: the golden's value and every candidate's."""

    output: str
    metric: str
    golden: float | None  # None for agreement metrics (the golden agrees with itself)
    values: tuple[tuple[str, float], ...]  # (candidate label, value)


@dataclass(frozen=True)
class Calibration:
    golden: str
    margin: float
    candidates: tuple[CandidateVerdict, ...]
    tolerances: tuple[ToleranceProposal, ...]
    metrics: tuple[MetricProposal, ...]
    cost: tuple[CostRow, ...]
    toml: str
    written_to: str | None = None
    warnings: tuple[str, ...] = ()
    metric_effects: tuple[MetricEffect, ...] = ()

    @property
    def consistent(self) -> bool:
        """Every acceptable candidate passes the proposal and every rejected one fails it."""
        return all(c.passed == c.accepted for c in self.candidates)


def _golden_outputs(path: Path, golden: Golden, names: Sequence[str]) -> Outputs:
    """Outputs of another golden recorded over the same inputs (another machine's run)."""
    from snapshot_tool.golden.io import read_golden

    other = read_golden(path)
    out: Outputs = {}
    for sig in names:
        if sig not in other.signatures:
            raise InputsError(f"candidate golden {path} has no signature {sig!r}")
        mine, theirs = golden.signatures[sig].inputs, other.signatures[sig].inputs
        same = set(mine) == set(theirs) and all(
            mine[k].shape == theirs[k].shape and np.array_equal(mine[k], theirs[k])
            for k in mine)
        if not same:
            raise InputsError(f"candidate golden {path} recorded other inputs than "
                              f"{golden.path}; record it with --inputs holding this golden's "
                              "inputs so the outputs line up")
        out[sig] = dict(other.signatures[sig].outputs)
    return out


def _model_outputs(path: Path, golden: Golden, names: Sequence[str],
                   options: CompareOptions, allowed: Sequence[str], progress: Progress
                   ) -> tuple[str, Outputs, list[str]]:
    """A candidate model's outputs over the golden's inputs, matched to the golden's names
    as compare matches them (``options``: its tag set and renames; ``allowed``: the flagged
    ops it may run)."""
    from snapshot_tool.matching import candidate_signature, fit_inputs, golden_named
    from snapshot_tool.models.base import run_signature
    from snapshot_tool.models.load import load_model
    from snapshot_tool.models.scan import refuse_flagged

    out: Outputs = {}
    notes: list[str] = []
    rename = options.rename
    with load_model(path, tag=options.tag or golden.info.tag) as model:
        # Candidates run here as in compare: seen before they run, with the ops it allows.
        refuse_flagged(model, allowed)
        notes.extend(model.notes)
        for sig in names:
            sg = golden.signatures[sig]
            info, note = candidate_signature(model, sig, single=len(names) == 1)
            feeds, note2 = fit_inputs(info, sg, model, renames=rename)
            notes.extend(n for n in (note, note2) if n)
            got, _ = run_signature(model, info, feeds, golden.info.batch_size, progress,
                                   f"calibrating {path.name}")
            # The same name matching compare does: explicit renames, then a lone output
            # under another name (a converter's output_0).
            out[sig], more = golden_named(sg, got, rename)
            notes.extend(more)
        return model.kind, out, notes


def _is_golden_file(path: Path) -> bool:
    """A golden as candidate: an HDF5 file, or a sharded golden directory (``G.h5.d/``)."""
    from snapshot_tool.golden.sharded import is_sharded

    return (path.is_file() and path.suffix.lower() in (".h5", ".hdf5")) or is_sharded(path)


def calibrate(golden_path: str | Path, candidates: Sequence[str | Path], *,
              reject: Sequence[str | Path] = (), margin: float = 2.0,
              signature: str | None = None, tag: str | None = None,
              output: str | Path | None = None, force: bool = False,
              progress: Progress | None = None,
              rename: Mapping[str, str] | None = None,
              config: Config | str | Path | None = None,
              allow_ops: Sequence[str] = ()) -> Calibration:
    """Propose a ``snapshot.toml`` accepting every candidate in ``candidates`` with
    ``margin``, and check it against them and against the ``reject`` ones.

    ``output``: write the proposal there (refused if it exists, unless ``force``).
    ``rename``: the golden's input/output names -> the candidates' (``--map``); the
    proposal carries them as a ``[rename]`` table so compare matches the same way.
    A candidate model whose signatures touch files or print is refused before it runs, as
    compare refuses it, unless each such op is in ``allow_ops`` or ``config``'s
    ``[models] allow_ops`` (``config`` None: found as compare finds it).
    """
    from snapshot_tool.compare import CompareOptions, run_allowed_ops
    from snapshot_tool.golden.io import read_golden
    from snapshot_tool.matching import select_signatures
    from snapshot_tool.progress import no_progress

    if not candidates:
        raise InputsError("calibrate needs at least one candidate declared acceptable")
    if not (margin >= 1.0):
        raise InputsError(f"--margin must be at least 1 (a factor on the worst error seen), "
                          f"got {margin}")
    if output is not None and Path(output).exists() and not force:
        raise InputsError(f"{output} exists; pass --force to replace it")
    golden = read_golden(golden_path)
    # The compare options calibrate shares: which signatures, tag set and renames.
    options = CompareOptions(signature=signature, tag=tag, rename=rename or {},
                             config=config, allow_ops=tuple(allow_ops))
    allowed = run_allowed_ops(options)  # a config mistake is said before any model runs
    names = select_signatures(golden, options.signature)
    runs: list[_Run] = []
    for accepted, paths, mark in ((True, candidates, ""), (False, reject, "r")):
        for i, p in enumerate(paths, 1):
            path = Path(p)
            if _is_golden_file(path):
                kind, outs, notes = "golden", _golden_outputs(path, golden, names), list[str]()
            else:
                kind, outs, notes = _model_outputs(path, golden, names, options, allowed,
                                                   progress or no_progress)
            runs.append(_Run(f"[{mark}{i}]", path, accepted, kind, outs, tuple(notes)))
    return _propose(golden, names, runs, margin, output, options.rename)


def _propose(golden: Golden, names: Sequence[str],
             runs: Sequence[_Run], margin: float,
             output: str | Path | None, rename: Mapping[str, str]) -> Calibration:
    from snapshot_tool.config import parse_config

    accepted = [r for r in runs if r.accepted]
    tolerances: list[ToleranceProposal] = []
    metric_props: list[MetricProposal] = []
    metric_effects: list[MetricEffect] = []
    cost: list[CostRow] = []
    warnings: list[str] = []
    for sig in names:
        sg = golden.signatures[sig]
        prefix = signature_prefix(golden, sig)
        for out in sorted(sg.outputs):
            have = [(f"{r.label} {r.path.name}", r.outputs[sig][out]) for r in accepted
                    if out in r.outputs[sig]]
            if len(have) < len(accepted):
                warnings.append(f"output {prefix + out!r}: some acceptable candidates do not "
                                "produce it; no tolerance accepts a missing output")
            if not have:
                continue
            prop = propose_tolerance(prefix + out, sg.outputs[out], have, margin)
            if prop is not None:
                tolerances.append(prop)
                warnings.extend(f"output {prefix + out!r}, candidate {s.candidate}: {s.note}"
                                for s in prop.stats if not s.comparable)
            cost.extend(_cost(sg, out, prefix, runs, sig))
        props, effects = _metric_evidence(sg, sig, prefix, runs, margin)
        metric_props.extend(props)
        metric_effects.extend(effects)
    header = _header(golden, runs, margin)
    text = render_toml(header, tolerances, metric_props, rename)
    cfg = parse_config(tomllib.loads(text), "proposed snapshot.toml")
    verdicts = tuple(_verdict(golden, names, r, cfg) for r in runs)
    written = None
    if output is not None:
        write_text(Path(output), text)
        written = str(output)
    return Calibration(str(golden.path), margin, verdicts, tuple(tolerances),
                       tuple(metric_props), tuple(cost), text, written, tuple(warnings),
                       tuple(metric_effects))


def _header(golden: Golden, runs: Sequence[_Run], margin: float) -> list[str]:
    from snapshot_tool import __version__
    from snapshot_tool.inputs.batching import num_rows

    first = next(iter(golden.signatures.values()))
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    lines = [f"Proposed by `snapshot-tool calibrate` (snapshot-tool {__version__}, {when}).",
             f"Golden: {golden.path} ({num_rows(first.inputs)} samples, signature(s) "
             f"{', '.join(sorted(golden.signatures))}).",
             "Evidence: candidates declared acceptable, each run over all the golden's inputs:"]
    lines += [f"  {r.label} {r.path} ({r.kind})" for r in runs if r.accepted]
    rejected = [f"  {r.label} {r.path} ({r.kind})" for r in runs if not r.accepted]
    if rejected:
        lines += ["Known-broken candidates this proposal must still fail:", *rejected]
    lines += [f"Margin: {margin:g}x the worst error or drop seen, rounded up to 2 significant "
              "digits; never tighter than the dtype default.",
              "Review every line before committing it: it accepts what the evidence showed, "
              "nothing more.", ""]
    return lines


def _metric_checks(sg: SignatureGolden, sig: str, prefix: str,
                   outs: Mapping[str, np.ndarray], cfg: Config
                   ) -> tuple[list[TensorDiff], list[MetricCheck]]:
    from snapshot_tool.compare import compare_outputs
    from snapshot_tool.metrics.thresholds import compare_metrics

    diffs = compare_outputs(sg, outs, cfg, sig, prefix)
    return diffs, compare_metrics(sg, outs, diffs, cfg, prefix)


def _metric_evidence(sg: SignatureGolden, sig: str, prefix: str, runs: Sequence[_Run],
                     margin: float) -> tuple[list[MetricProposal], list[MetricEffect]]:
    """Limits from the acceptable candidates' headline metrics, and every candidate's
    value of them (rejected ones too: what a broken build does to them is evidence)."""
    from snapshot_tool.config import Config
    from snapshot_tool.inputs.batching import num_rows

    by_metric: dict[tuple[str, str], list[tuple[_Run, MetricCheck]]] = {}
    for r in runs:
        _, checks = _metric_checks(sg, sig, prefix, r.outputs[sig], Config())
        for c in checks:
            if c.name in HEADLINE_METRICS:
                by_metric.setdefault((c.output, c.name), []).append((r, c))
    rows = num_rows(sg.inputs)
    props: list[MetricProposal] = []
    effects: list[MetricEffect] = []
    for (out, metric), seen in sorted(by_metric.items()):
        effects.append(MetricEffect(out, metric, seen[0][1].golden,
                                    tuple((r.label, c.candidate) for r, c in seen)))
        p = propose_metric(out, metric, [(r.label, c) for r, c in seen if r.accepted],
                           margin, rows)
        if p is not None:
            props.append(p)
    return props, effects


def _cost(sg: SignatureGolden, out: str, prefix: str,
          runs: Sequence[_Run], sig: str
          ) -> list[CostRow]:
    from snapshot_tool.config import Config
    from snapshot_tool.metrics.tasks import output_task

    task, _ = output_task(sg, out, Config(), prefix + out)
    if task not in ("classification", "binary"):
        return []
    cands = [r.outputs[sig][out] for r in runs if out in r.outputs[sig]]
    return cost_table(prefix + out, sg.outputs[out], cands, sg.labels)


def _verdict(golden: Golden, names: Sequence[str], run: _Run, cfg: Config
             ) -> CandidateVerdict:
    failures: list[str] = []
    for sig in names:
        sg = golden.signatures[sig]
        diffs, checks = _metric_checks(sg, sig, signature_prefix(golden, sig),
                                       run.outputs[sig], cfg)
        for d in diffs:
            if not d.passed:
                failures.append(f"{d.name}: {d.status}")
        failures.extend(f"{c.output}: {c.name} {c.candidate:.4g} ({c.limit})"
                        for c in checks if not c.passed)
    return CandidateVerdict(run.label, str(run.path), run.kind, run.accepted, not failures,
                            tuple(failures), run.notes)


