"""Find the first intermediate tensor where a candidate's run leaves the golden model's.

Pure numpy: the tracers (:mod:`snapshot_tool.diagnose.tracing`) hand over two
:class:`Trace` values, one per model, each a topologically ordered list of tensors with the
edges between them and their values on the same batch. This module

1. matches the candidate's tensors to the golden's: by name, then by a normalized name
   (call wrappers stripped, TFLite's ``a;b`` fused names split into aliases), then by
   position and shape between the tensors already matched;
2. scores each matched pair against the failing output's tolerance *scaled to the tensor's
   magnitude* (an ``atol`` of 1e-5 on softmax outputs means 1e-4 on logits ten times larger;
   ``rtol`` is scale-free and applies as is);
3. reports the first pair, in topological order among the output's ancestors, whose
   difference exceeds that, and the error along one path from it to the output.

Weights and constants (tensors that do not depend on the model's inputs) are not candidates
for "first divergence": they are compared on their own and listed as changed parameters, so
a changed kernel shows up both as the parameter and as the first activation it moved.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Status = Literal["localized", "no_divergence", "unsupported", "passed"]
MatchedBy = Literal["name", "alias", "layer", "position", ""]


@dataclass(frozen=True)
class Node:
    """One tensor of a traced run."""

    name: str  # as the runtime spells it: "conv_b", "dense/MatMul:0", "a;b" (TFLite)
    op_type: str  # "Conv2D", "CONV_2D", a Keras layer class
    layer: str = ""  # the Keras layer or name scope it belongs to; "" when none
    inputs: tuple[str, ...] = ()  # names of the nodes it reads
    aliases: tuple[str, ...] = ()  # other names of the same value
    parameter: bool = False  # a weight or constant: does not depend on the model's inputs


@dataclass(frozen=True)
class Trace:
    """One model's run over one batch with its intermediate tensors exposed."""

    kind: str
    nodes: tuple[Node, ...]  # topological order
    values: Mapping[str, np.ndarray]  # by node name; nodes without a value are skipped
    outputs: Mapping[str, str]  # signature output name -> node name
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Score:
    """How far one candidate tensor is from its golden counterpart."""

    max_abs_diff: float
    relative_error: float  # max |c - g| / max |g|: comparable across tensors of any scale
    ratio: float  # max over elements of |c - g| / allowed; above 1 the element exceeds
    exceed_fraction: float
    exceeded: bool
    note: str = ""


@dataclass(frozen=True)
class Step:
    """One tensor on the reported path, with its score when it could be matched."""

    name: str
    op_type: str
    layer: str
    shape: tuple[int, ...]
    matched_by: MatchedBy = ""
    candidate_name: str = ""
    candidate_op_type: str = ""
    max_abs_diff: float | None = None
    relative_error: float | None = None
    ratio: float | None = None
    exceeded: bool = False
    note: str = ""


@dataclass(frozen=True)
class Localization:
    """Where a failing output's difference starts; ``reason`` says why when it cannot."""

    status: Status
    reason: str = ""
    output: str = ""
    signature: str = ""
    golden_model: str = ""
    candidate_model: str = ""
    golden_kind: str = ""
    candidate_kind: str = ""
    rows: tuple[int, int] | None = None  # the batch traced: [start, stop) of the golden's rows
    atol: float = 0.0
    rtol: float = 0.0
    first: Step | None = None
    path: tuple[Step, ...] = ()  # first -> output
    changed_parameters: tuple[str, ...] = ()
    matched: int = 0
    golden_tensors: int = 0
    candidate_tensors: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


# Wrapper scopes that calling a tf.function adds in front of every inlined op name; a
# SavedModel traced once through its signature and once through the inner function would
# otherwise share no names at all.
_WRAPPER = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$")


def normalize(name: str) -> str:
    """``StatefulPartitionedCall/model/dense/MatMul:0`` -> ``model/dense/MatMul``."""
    base = name[:-2] if name.endswith(":0") else name
    parts = base.split("/")
    while len(parts) > 1 and _WRAPPER.match(parts[0]):
        parts = parts[1:]
    return "/".join(parts)


def _keys(node: Node) -> set[str]:
    return {normalize(n) for n in (node.name, *node.aliases) if n}


def _loose_keys(node: Node) -> set[str]:
    """Names without their model's scope: Keras uniquifies model names per process
    (``functional`` vs ``functional_1``), so two exports of one architecture differ there."""
    return {k.split("/", 1)[1] for k in _keys(node) if k.count("/") >= 2}


def op_family(op_type: str) -> str:
    """``Conv2D`` and TFLite's ``CONV_2D`` -> ``conv2d``: one spelling across runtimes."""
    return op_type.lower().replace("_", "")


def display_name(name: str) -> str:
    """A tensor name as a user searches for it: no call wrappers, no ``:0``, no TFLite
    ``#index`` suffix, and only the first of TFLite's fused names."""
    base = re.sub(r"#\d+$", "", name).split(";")[0]
    return normalize(base) or name


def _shape(trace: Trace, node: Node) -> tuple[int, ...] | None:
    v = trace.values.get(node.name)
    return None if v is None else tuple(v.shape)


def _kind(trace: Trace, node: Node) -> str:
    v = trace.values[node.name]
    return "f" if v.dtype.kind in "fc" else v.dtype.kind


@dataclass(frozen=True)
class Pair:
    golden: Node
    candidate: Node
    matched_by: MatchedBy


def match(golden: Trace, candidate: Trace, *, parameters: bool = False) -> list[Pair]:
    """Pair the two traces' tensors (activations, or parameters with ``parameters=True``).

    Names first (a re-export or a one-layer change keeps them), then normalized names and
    aliases (a SavedModel against its TFLite conversion), then, between a ``.keras`` file's
    layer outputs and a graph's ops, the last op of each layer's scope; then position and
    shape: the
    unmatched tensors between two matched ones are paired in order when their shapes agree
    (an op swapped for another, Tanh for Sigmoid, keeps its place and its shape).
    """
    g_nodes = [n for n in golden.nodes if n.parameter == parameters and n.name in golden.values]
    c_nodes = [n for n in candidate.nodes
               if n.parameter == parameters and n.name in candidate.values]
    assigned: dict[int, tuple[int, MatchedBy]] = {}
    used: set[int] = set()
    by_name = {n.name: j for j, n in enumerate(c_nodes)}
    for i, g in enumerate(g_nodes):
        j = by_name.get(g.name)
        if j is not None and j not in used:
            assigned[i] = (j, "name")
            used.add(j)
    for keys in (_keys, _loose_keys):
        by_key: dict[str, list[int]] = {}
        for j, c in enumerate(c_nodes):
            for k in keys(c):
                by_key.setdefault(k, []).append(j)
        for i, g in enumerate(g_nodes):
            if i in assigned:
                continue
            hits = sorted({j for k in keys(g) for j in by_key.get(k, []) if j not in used})
            if hits:
                assigned[i] = (hits[0], "alias")
                used.add(hits[0])
    cross = golden.kind != candidate.kind
    if cross and "keras" in (golden.kind, candidate.kind) and not parameters:
        _match_layer_outputs(g_nodes, c_nodes, assigned, used)
    # Weights of two runtimes are laid out differently (TFLite transposes kernels, folds
    # biases into constants of the same shape), so a positional pair of parameters across
    # kinds would report unchanged weights as changed.
    if not (parameters and cross):
        _match_by_position(golden, candidate, g_nodes, c_nodes, assigned, used)
    return [Pair(g_nodes[i], c_nodes[j], how) for i, (j, how) in sorted(assigned.items())]


def _layer_outputs(nodes: Sequence[Node]) -> dict[int, str]:
    """Index -> layer of the last tensor of each layer scope: a Keras layer's output is its
    last op (``conv_b/Relu`` after ``conv_b/Conv2D`` and ``conv_b/BiasAdd``)."""
    last: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.layer:
            last[n.layer] = i
    return {i: layer for layer, i in last.items()}


def _layer_keys(layer: str) -> list[str]:
    # Keras uniquifies name scopes when it traces an export ("conv_b" -> "conv_b_1"), so a
    # layer is also known without one trailing "_<n>"; the exact name is tried first.
    name = layer.rsplit("/", 1)[-1]
    stripped = re.sub(r"_\d+$", "", name)
    return [name] if stripped == name else [name, stripped]


def _match_layer_outputs(g_nodes: Sequence[Node], c_nodes: Sequence[Node],
                         assigned: dict[int, tuple[int, MatchedBy]], used: set[int]) -> None:
    """A ``.keras`` file traces layer outputs, a graph traces ops: pair each layer output
    with the last op of the same layer's scope on the other side."""
    g_out, c_out = _layer_outputs(g_nodes), _layer_outputs(c_nodes)
    for tier in (0, 1):
        by_key: dict[str, list[int]] = {}
        for j, layer in sorted(c_out.items()):
            keys = _layer_keys(layer)
            by_key.setdefault(keys[min(tier, len(keys) - 1)], []).append(j)
        for i, layer in sorted(g_out.items()):
            if i in assigned:
                continue
            keys = _layer_keys(layer)
            hits = [j for j in by_key.get(keys[min(tier, len(keys) - 1)], []) if j not in used]
            if hits:
                assigned[i] = (hits[0], "layer")
                used.add(hits[0])


def _match_by_position(golden: Trace, candidate: Trace, g_nodes: Sequence[Node],
                       c_nodes: Sequence[Node], assigned: dict[int, tuple[int, MatchedBy]],
                       used: set[int]) -> None:
    # The next anchor (a name match) after each golden position bounds the search window,
    # so positional pairs never cross a pair the names already fixed.
    cross = golden.kind != candidate.kind
    anchors = dict(assigned)
    next_anchor = [len(c_nodes)] * (len(g_nodes) + 1)
    for i in range(len(g_nodes) - 1, -1, -1):
        next_anchor[i] = anchors[i][0] if i in anchors else next_anchor[i + 1]
    last = -1
    for i, g in enumerate(g_nodes):
        if i in assigned:
            last = max(last, assigned[i][0])
            continue
        want = (_shape(golden, g), _kind(golden, g))
        for j in range(last + 1, next_anchor[i]):
            c = c_nodes[j]
            # Across runtimes (SavedModel vs TFLite) ops fuse and reorder, so a shape alone
            # pairs a convolution with the next layer's; the op family must agree there too.
            if cross and op_family(g.op_type) != op_family(c.op_type):
                continue
            if j not in used and (_shape(candidate, c), _kind(candidate, c)) == want:
                assigned[i] = (j, "position")
                used.add(j)
                last = j
                break


def _magnitude(a: np.ndarray) -> float:
    if a.size == 0 or a.dtype.kind not in "iufc":
        return 0.0
    m = np.abs(a.astype(np.complex128 if a.dtype.kind == "c" else np.float64))
    m = m[np.isfinite(m)]
    return float(m.max()) if m.size else 0.0


def score(golden: np.ndarray, candidate: np.ndarray, atol: float, rtol: float,
          output_scale: float, max_mismatch_fraction: float = 0.0) -> Score:
    """Compare one tensor pair against the output tolerance scaled to the tensor.

    An element exceeds when ``|c - g| > atol * (scale / output_scale) + rtol * |g|``, with
    ``scale`` the tensor's largest finite magnitude and ``output_scale`` the failing output's:
    the output's absolute allowance, re-expressed at this tensor's size. NaN equals NaN.
    """
    if golden.shape != candidate.shape:
        return Score(math.inf, math.inf, math.inf, 1.0, True,
                     f"shape {tuple(golden.shape)} vs {tuple(candidate.shape)}")
    if golden.size == 0:
        return Score(0.0, 0.0, 0.0, 0.0, False)
    if golden.dtype.kind not in "iufc" or candidate.dtype.kind not in "iufc":
        differ = np.asarray(golden != candidate, dtype=bool)
        frac = float(differ.mean())
        bad = frac > max_mismatch_fraction
        inf_or_0 = math.inf if differ.any() else 0.0
        return Score(inf_or_0, inf_or_0, inf_or_0, frac, bad)
    wide = np.complex128 if "c" in (golden.dtype.kind, candidate.dtype.kind) else np.float64
    # Flat copies: a 0-d tensor (a shape's element, a scalar loss) must index like the rest.
    g = golden.astype(wide).reshape(-1)
    c = candidate.astype(wide).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(c - g)
        diff[g == c] = 0.0  # equal infinities
        g_nan, c_nan = np.isnan(g), np.isnan(c)
        diff[g_nan & c_nan] = 0.0
        diff[g_nan ^ c_nan] = np.inf
        diff[np.isnan(diff)] = np.inf
        mag = np.abs(g)
        mag[~np.isfinite(mag)] = 0.0
        scale = float(mag.max())
        factor = scale / output_scale if output_scale > 0 else 1.0
        allowed = atol * factor + rtol * mag
        over = diff > allowed
        ratios = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1.0),
                          np.where(diff > 0, np.inf, 0.0))
    max_abs = float(diff.max())
    rel = max_abs / scale if scale > 0 else max_abs
    frac = float(over.mean())
    exceeded = int(over.sum()) > math.floor(max_mismatch_fraction * g.size + 1e-9)
    return Score(max_abs, rel, float(ratios.max()), frac, exceeded)


def _ancestors(nodes: Mapping[str, Node], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        n = stack.pop()
        if n in seen or n not in nodes:
            continue
        seen.add(n)
        stack.extend(nodes[n].inputs)
    return seen


def _descendants(order: Sequence[Node], start: str, within: set[str]) -> set[str]:
    reached = {start}
    for n in order:  # topological: every input is visited before the nodes reading it
        if n.name in within and any(i in reached for i in n.inputs):
            reached.add(n.name)
    return reached


def _step(trace: Trace, node: Node, pair: Pair | None, s: Score | None) -> Step:
    shape = _shape(trace, node) or ()
    if pair is None or s is None:
        return Step(node.name, node.op_type, node.layer, shape)
    return Step(node.name, node.op_type, node.layer, shape, pair.matched_by,
                pair.candidate.name, pair.candidate.op_type, s.max_abs_diff, s.relative_error,
                s.ratio, s.exceeded, s.note)


def locate(golden: Trace, candidate: Trace, output: str, atol: float, rtol: float,
           max_mismatch_fraction: float = 0.0) -> Localization:
    """The first tensor among ``output``'s ancestors whose difference exceeds the scaled
    tolerance, and the path from it to the output. Fills the core fields of a
    :class:`Localization`; the caller adds models, rows and signature."""
    by_name = {n.name: n for n in golden.nodes}
    out_node = golden.outputs.get(output)
    if out_node is None or out_node not in by_name:
        return Localization("unsupported", f"the golden model's trace has no tensor for "
                            f"output {output!r}", output=output, atol=atol, rtol=rtol)
    cone = _ancestors(by_name, out_node)
    pairs = match(golden, candidate)
    out_scale = _magnitude(golden.values[out_node]) if out_node in golden.values else 0.0
    scored: dict[str, tuple[Pair, Score]] = {}
    first: str | None = None
    for p in pairs:
        if p.golden.name not in cone:
            continue
        s = score(golden.values[p.golden.name], candidate.values[p.candidate.name], atol, rtol,
                  out_scale, max_mismatch_fraction)
        scored[p.golden.name] = (p, s)
        if first is None and s.exceeded:
            first = p.golden.name
    base = dict(output=output, atol=atol, rtol=rtol, matched=len(pairs),
                golden_tensors=sum(1 for n in golden.nodes if not n.parameter),
                candidate_tensors=sum(1 for n in candidate.nodes if not n.parameter),
                changed_parameters=tuple(_changed_parameters(golden, candidate, cone)))
    if first is None:
        unmatched = len([n for n in cone if n in golden.values and n not in scored
                         and not by_name[n].parameter])
        reason = ("no matched intermediate tensor exceeds the output tolerance scaled to its "
                  "magnitude")
        if unmatched:
            reason += (f"; {unmatched} of the output's tensors could not be matched to the "
                       "candidate's, the difference may start in one of them")
        return Localization("no_divergence", reason, **base)  # type: ignore[arg-type]
    path = _path(golden, by_name, cone, first, out_node, scored)
    # Identity ops between the first tensor and the output (call wrappers, output aliases)
    # repeat the error of what they forward; the table keeps its ends and the real ops.
    path = [n for k, n in enumerate(path) if k in (0, len(path) - 1)
            or by_name[n].op_type != "Identity"]
    steps = tuple(_step(golden, by_name[n], *scored.get(n, (None, None))) for n in path)
    return Localization("localized", "", first=steps[0], path=steps,
                        **base)  # type: ignore[arg-type]


def _path(golden: Trace, by_name: Mapping[str, Node], cone: set[str], first: str,
          out_node: str, scored: Mapping[str, tuple[Pair, Score]]) -> list[str]:
    """One path first -> output, walking back from the output through the input that
    carries the largest error (the way the difference most plausibly travelled)."""
    reach = _descendants(golden.nodes, first, cone)
    if out_node not in reach:
        return [first]
    path = [out_node]
    cur = out_node
    while cur != first:
        preds = [i for i in by_name[cur].inputs if i in reach]
        if not preds:
            break
        cur = max(preds, key=lambda n: scored[n][1].ratio if n in scored else -1.0)
        path.append(cur)
    return path[::-1]


def _changed_parameters(golden: Trace, candidate: Trace, cone: set[str]) -> list[str]:
    """Changed weights, each named once: a frozen graph reaches a kernel through a chain
    (``unknown_1`` -> ``Func/.../input/_3`` -> ``conv_b/convolution/ReadVariableOp``), so
    only chains that feed an activation are reported, each by its first link that sits in
    a layer scope."""
    by_name = {n.name: n for n in golden.nodes}
    changed: set[str] = set()
    for p in match(golden, candidate, parameters=True):
        if p.golden.name not in cone:
            continue
        g, c = golden.values[p.golden.name], candidate.values[p.candidate.name]
        if g.shape != c.shape or not np.array_equal(g, c, equal_nan=g.dtype.kind in "fc"):
            changed.add(p.golden.name)
    fed_to_activation = {i for n in golden.nodes if not n.parameter and n.name in cone
                         for i in n.inputs}
    named: list[str] = []
    for leaf in (n.name for n in golden.nodes if n.name in changed):
        if leaf not in fed_to_activation:
            continue
        chain = [leaf]
        while True:
            ups = [i for i in by_name[chain[-1]].inputs if i in changed]
            if not ups:
                break
            chain.append(ups[0])
        scoped = [n for n in reversed(chain)
                  if by_name[n].layer and not by_name[n].layer.startswith("Func/")]
        label = display_name(scoped[0] if scoped else leaf)
        if label not in named:
            named.append(label)
    return named
