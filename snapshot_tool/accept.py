"""``accept``: promote an obtained golden (written by a failing ``compare``) into the golden.

An obtained golden is a complete golden of the candidate over the golden's own inputs and
labels, so promoting it is a choice between two recorded states, never a re-run. With
``only`` globs just the named outputs (and their metrics) are taken from it and every other
dataset is rewritten from the very same arrays, so it stays byte-identical. Either way the
golden is replaced whole (temp file + rename) and its history records who accepted what,
when and why.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from snapshot_tool.atomic import who
from snapshot_tool.errors import GoldenError, SnapshotToolError
from snapshot_tool.golden.schema import (
    MODEL_ORIGIN,
    OBTAINED_FROM_ATTR,
    Golden,
    HistoryEntry,
    SignatureGolden,
    obtained_path,
)
from snapshot_tool.names import qualified_name

ChangeKind = Literal["changed", "added", "removed", "unchanged"]


@dataclass(frozen=True)
class OutputChange:
    """What accepting does to one output of the golden."""

    name: str  # "sig/out" when the golden has several signatures
    kind: ChangeKind
    max_abs_diff: float | None = None  # numeric outputs of one shape and dtype only
    detail: str = ""


@dataclass(frozen=True)
class MetricChange:
    output: str
    metric: str
    golden: float | None
    obtained: float | None


@dataclass(frozen=True)
class AcceptPlan:
    golden: Path
    obtained: Path
    selected: tuple[OutputChange, ...]  # the outputs taken from the obtained golden
    kept: tuple[str, ...]  # outputs left as they are (not selected by --only)
    metrics: tuple[MetricChange, ...]
    whole: bool  # everything taken: the model identity moves to the obtained one too
    chosen: frozenset[tuple[str, str]] = frozenset()  # (signature, output) taken
    # Which compare wrote the obtained file and of what model: the report that sent the
    # user here names its run, and another compare of the golden may have replaced the file.
    obtained_run: str = ""
    obtained_model: str = ""

    @property
    def changes(self) -> tuple[OutputChange, ...]:
        return tuple(c for c in self.selected if c.kind != "unchanged")


def on_ci() -> bool:
    """True when the ``CI`` environment variable is set to anything but a false value
    (GitHub Actions, GitLab CI, CircleCI, Travis and Buildkite all set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def default_golden_for(obtained: Path, attrs: dict[str, Any]) -> Path:
    """The golden an obtained file belongs to: the one it records, else its name with
    ``.obtained.h5`` turned back into ``.h5``."""
    recorded = attrs.get(OBTAINED_FROM_ATTR)
    if recorded:
        p = Path(str(recorded))
        # Recorded as given to compare; relative paths are relative to where it ran, which
        # is most often beside the obtained file anyway.
        beside = obtained.parent / p.name
        if beside.exists() and beside.resolve() != obtained.resolve():
            return beside
        if p.exists():
            return p
    if obtained.name.endswith(".obtained.h5"):
        return obtained.with_name(obtained.name.removesuffix(".obtained.h5") + ".h5")
    raise SnapshotToolError(f"{obtained} does not say which golden it belongs to; pass "
                            "--golden G.h5")


def _qualified(golden: Golden, sig: str, name: str) -> str:
    return qualified_name(sig, name, len(golden.signatures) > 1)


def _same_inputs(golden: Golden, obtained: Golden) -> None:
    from snapshot_tool.golden.io import tensor_sha256

    if set(golden.signatures) != set(obtained.signatures):
        raise SnapshotToolError(
            f"{obtained.path} holds signatures {', '.join(sorted(obtained.signatures))} but "
            f"the golden {golden.path} holds {', '.join(sorted(golden.signatures))}; it was "
            "not obtained from this golden")
    for name, sg in golden.signatures.items():
        og = obtained.signatures[name]
        if set(sg.inputs) != set(og.inputs) or any(
                tensor_sha256(sg.inputs[k]) != tensor_sha256(og.inputs[k]) for k in sg.inputs):
            raise SnapshotToolError(
                f"the inputs of {obtained.path} differ from those of the golden {golden.path} "
                f"(signature {name!r}); accepting would pair outputs with inputs that did not "
                "produce them. Re-run compare against this golden to obtain a new file")
        same_labels = (sg.labels is None) == (og.labels is None) and (
            sg.labels is None or og.labels is None
            or tensor_sha256(sg.labels) == tensor_sha256(og.labels))
        if not same_labels:
            raise SnapshotToolError(
                f"the labels of {obtained.path} differ from those of the golden {golden.path} "
                f"(signature {name!r}); its metrics would not be comparable. Re-run compare "
                "against this golden to obtain a new file")


def _max_abs(a: np.ndarray, b: np.ndarray) -> float | None:
    """The largest change from ``a`` to ``b``, by compare's rules (an infinity or NaN on
    one side only is an unbounded change, not none; NaN on both sides is no change)."""
    from snapshot_tool.diff import absolute_differences

    if a.dtype != b.dtype or a.shape != b.shape or a.dtype.kind not in "fiu" or a.size == 0:
        return None
    return float(absolute_differences(a, b, nan_equal=True).max())


def _change(name: str, g: np.ndarray | None, o: np.ndarray | None) -> OutputChange:
    from snapshot_tool.golden.io import tensor_sha256

    if g is None:
        return OutputChange(name, "added", detail="only in the obtained golden")
    if o is None:
        return OutputChange(name, "removed", detail="not produced by the candidate")
    if tensor_sha256(g) == tensor_sha256(o):
        return OutputChange(name, "unchanged")
    detail = "" if (g.dtype == o.dtype and g.shape == o.shape) else (
        f"{g.dtype}{tuple(g.shape)} -> {o.dtype}{tuple(o.shape)}")
    return OutputChange(name, "changed", _max_abs(g, o), detail)


def _select(golden: Golden, obtained: Golden, only: Sequence[str]
            ) -> tuple[set[tuple[str, str]], list[str]]:
    """(signature, output) pairs taken from the obtained golden, and the names kept."""
    every = sorted({(sig, out) for g in (golden, obtained)
                    for sig, sg in g.signatures.items() for out in sg.outputs})
    if not only:
        return set(every), []
    chosen = {(sig, out) for sig, out in every
              if any(fnmatch.fnmatchcase(_qualified(golden, sig, out), pat) for pat in only)}
    unmatched = [pat for pat in only
                 if not any(fnmatch.fnmatchcase(_qualified(golden, s, o), pat) for s, o in every)]
    if unmatched:
        names = ", ".join(_qualified(golden, s, o) for s, o in every)
        raise SnapshotToolError(f"--only {' '.join(repr(p) for p in unmatched)} matches no "
                                f"output; the outputs are: {names}")
    kept = [_qualified(golden, s, o) for s, o in every
            if (s, o) not in chosen and o in golden.signatures[s].outputs]
    return chosen, kept


def _merge_signature(g: SignatureGolden, o: SignatureGolden, take: set[str]) -> SignatureGolden:
    """``g`` with the outputs in ``take`` (their arrays, attributes and metrics) as in ``o``;
    an output ``o`` lacks is dropped. Everything else is the same objects as in ``g``."""
    outputs = dict(g.outputs)
    attrs = dict(g.output_attrs)
    metrics = dict(g.metrics)
    for name in take:
        outputs.pop(name, None)
        attrs.pop(name, None)
        metrics.pop(name, None)
        if name in o.outputs:
            outputs[name] = o.outputs[name]
            attrs[name] = o.output_attrs.get(name, {})
        if name in o.metrics:
            metrics[name] = o.metrics[name]
    return replace(g, outputs=outputs, output_attrs=attrs, metrics=metrics)


def _metric_changes(golden: Golden, obtained: Golden, chosen: set[tuple[str, str]]
                    ) -> list[MetricChange]:
    changes: list[MetricChange] = []
    for sig, out in sorted(chosen):
        gm = golden.signatures[sig].metrics.get(out)
        om = obtained.signatures[sig].metrics.get(out)
        names = sorted(set(gm.values if gm else {}) | set(om.values if om else {}))
        for m in names:
            a = gm.values[m].value if gm and m in gm.values else None
            b = om.values[m].value if om and m in om.values else None
            if a != b:
                changes.append(MetricChange(_qualified(golden, sig, out), m, a, b))
    return changes


# Root attributes that say which model a golden is of: they move with a whole accept only.
# The environment stays: it describes where the golden's latency samples were taken, and
# those are kept (an obtained golden has none).
_MODEL_ATTRS = MODEL_ORIGIN


def plan(obtained_file: str | Path, golden_file: str | Path | None = None,
         only: Sequence[str] = ()) -> tuple[AcceptPlan, Golden, Golden]:
    """What accepting would change, and both goldens as read (checksums verified)."""
    from snapshot_tool.golden.io import read_golden

    obtained_p = Path(obtained_file)
    obtained = read_golden(obtained_p)
    golden_p = Path(golden_file) if golden_file is not None else \
        default_golden_for(obtained_p, obtained.attrs)
    if golden_p.resolve() == obtained_p.resolve():
        raise SnapshotToolError(f"{obtained_p} is the golden itself; give the obtained file "
                                f"({obtained_path(golden_p).name}) to accept")
    golden = read_golden(golden_p)
    _same_inputs(golden, obtained)
    chosen, kept = _select(golden, obtained, only)
    selected = [
        _change(_qualified(golden, sig, out), golden.signatures[sig].outputs.get(out),
                obtained.signatures[sig].outputs.get(out)) for sig, out in sorted(chosen)]
    return (AcceptPlan(golden=golden_p, obtained=obtained_p, selected=tuple(selected),
                       kept=tuple(kept), metrics=tuple(_metric_changes(golden, obtained, chosen)),
                       whole=not only, chosen=frozenset(chosen),
                       obtained_run=obtained.info.obtained_run,
                       obtained_model=obtained.info.model_path),
            golden, obtained)


def accept(obtained_file: str | Path, golden: str | Path | None = None,
           only: Sequence[str] = (), reason: str = "", *, dry_run: bool = False,
           keep_obtained: bool | None = None) -> AcceptPlan:
    """Promote ``obtained_file`` (or only the outputs matching ``only``) into the golden.

    The obtained file is removed after a whole accept (it is used up) and kept after a
    partial one (its other outputs may still be wanted); ``keep_obtained`` overrides that.
    """
    from snapshot_tool.golden.io import write_golden

    the_plan, g, o = plan(obtained_file, golden, only)
    if dry_run:
        return the_plan
    sigs = {sig: _merge_signature(g.signatures[sig], o.signatures[sig],
                                  {out for s, out in the_plan.chosen if s == sig})
            for sig in g.signatures}
    info, taken = g.info, o.info
    if the_plan.whole:
        info = replace(info, **{k: getattr(taken, k) for k in _MODEL_ATTRS})
    info = replace(info, obtained_from="", obtained_run="")
    entry = HistoryEntry(
        action="accept", when=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        who=who(), reason=reason, outputs=tuple(c.name for c in the_plan.selected),
        source=the_plan.obtained.name, model_path=taken.model_path,
        model_digest=taken.model_digest)
    write_golden(the_plan.golden, info.with_history(entry.to_json()).to_attrs(), sigs,
                 force=True)
    if keep_obtained is False or (keep_obtained is None and the_plan.whole):
        try:
            the_plan.obtained.unlink()
        except OSError as exc:
            raise GoldenError(f"accepted into {the_plan.golden}, but could not remove "
                              f"{the_plan.obtained}: {exc.strerror or exc}") from None
    return the_plan
