"""Run one batch through a model with its intermediate tensors exposed -> :class:`Trace`.

Per kind (TensorFlow, Keras and LiteRT are imported inside the functions):

- ``keras`` (a ``.keras`` file): every layer's output, from a model that returns them all;
  the layer's weights are the parameters.
- ``saved_model`` (TF2 ``tf.function`` exports and Keras ``model.export()``): the signature's
  concrete function is frozen (variables become constants, nested function calls are
  inlined, the same step the TFLite converter takes), imported into a graph and run in a
  session that fetches every tensor the outputs depend on. Keras exports keep their layer
  name scopes (``functional/conv_b/Relu``), so the layer shows in the tensor's name.
- ``saved_model_tf1``: the restored graph run in a session, fetching every tensor between
  the signature's feeds and fetches, by name.
- ``frozen_graph``: the same, over the signature written for the graph (placeholders in,
  sinks out).
- ``tflite``: the interpreter with ``experimental_preserve_all_tensors`` and no default
  delegate (XNNPACK computes fused kernels whose intermediates the interpreter would not
  hold), every operator's output read back.

A model that cannot be traced raises :class:`NotTraceable` with a one-line reason, which
``--localize`` reports instead of failing.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.diagnose.divergence import Node, Trace, normalize
from snapshot_tool.models.base import first_line, import_tf, parse_tags, quiet_native_stderr

# Tensor dtypes worth fetching; resources, variants and table handles have no values to
# compare.
_FETCHABLE_KINDS = "biufcOSU"


class NotTraceable(Exception):
    """This model's intermediates cannot be exposed; the message says why, in one line."""


def trace(path: Path, kind: str, signature: str, feeds: Mapping[str, np.ndarray],
          tag: str = "serve") -> Trace:
    """Run ``feeds`` (one batch, keyed by the signature's input names) through the model at
    ``path`` (of ``kind``, as :func:`snapshot_tool.models.load.load_model` tells it) and return
    every intermediate tensor."""
    tracers = {"keras": _trace_keras, "saved_model": _trace_tf2,
               "saved_model_tf1": _trace_tf1, "frozen_graph": _trace_frozen,
               "tflite": _trace_tflite}
    tracer = tracers.get(kind)
    if tracer is None:
        raise NotTraceable(f"models of kind {kind!r} have no tracer")
    with quiet_native_stderr():
        return tracer(path, signature, feeds, tag)


# --- graphs (TF2 frozen, TF1 restored) -----------------------------------------------------


def _scope(op_name: str) -> str:
    parts = normalize(op_name).split("/")
    return "/".join(parts[:-1])


def _topological(ops: Sequence[Any]) -> list[Any]:
    """Ops in dependency order, ties kept in graph order (Kahn's algorithm). A lowered
    while loop is a cycle (NextIteration feeds Merge); its back edges are ignored, and
    anything still left is appended in graph order rather than dropped."""
    index = {op.name: i for i, op in enumerate(ops)}
    deps = {op.name: {t.op.name for t in op.inputs if t.op.name in index
                      and t.op.type not in _BACK_EDGE_OPS} for op in ops}
    users: dict[str, list[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(name)
    ready = [(index[n], n) for n, ds in deps.items() if not ds]
    heapq.heapify(ready)
    out: list[Any] = []
    while ready:
        _, name = heapq.heappop(ready)
        out.append(ops[index[name]])
        for u in users.get(name, []):
            deps[u].discard(name)
            if not deps[u]:
                heapq.heappush(ready, (index[u], u))
    placed = {op.name for op in out}
    return out + [op for op in ops if op.name not in placed]


_BACK_EDGE_OPS = {"NextIteration", "RefNextIteration"}


def _graph_trace(tf: Any, session: Any, kind: str, feeds: Mapping[str, np.ndarray],
                 outputs: Mapping[str, str]) -> Trace:
    """Fetch every tensor the ``outputs`` (key -> tensor name) depend on, fed ``feeds``
    (tensor name -> value)."""
    graph = session.graph
    wanted: set[str] = set()
    stack = [graph.get_tensor_by_name(t).op for t in outputs.values()]
    while stack:
        op = stack.pop()
        if op.name in wanted:
            continue
        wanted.add(op.name)
        stack.extend(t.op for t in op.inputs)
    ops = _topological([op for op in graph.get_operations() if op.name in wanted])
    fed = set(feeds)
    live: set[str] = set()  # tensors that depend on a fed value
    nodes: list[Node] = []
    fetch: list[Any] = []
    for op in ops:
        ins = tuple(t.name for t in op.inputs)
        for t in op.outputs:
            depends = t.name in fed or any(i in live for i in ins)
            if depends:
                live.add(t.name)
            if not _fetchable(t):
                continue
            nodes.append(Node(t.name, op.type, _scope(op.name), ins, parameter=not depends))
            fetch.append(t)
    errors: list[str] = []
    values = _run_fetches(tf, session, fetch, {graph.get_tensor_by_name(k): v
                                               for k, v in feeds.items()}, errors)
    lost = [k for k, t in outputs.items() if t not in values]
    if lost:
        why = next((e for e in errors if e.startswith(outputs[lost[0]] + ":")),
                   errors[0] if errors else "no value")
        raise NotTraceable(f"its output {lost[0]!r} cannot be evaluated in the traced graph "
                           f"({why})")
    return Trace(kind, tuple(n for n in nodes if n.name in values), values, dict(outputs))


# Ops whose outputs are handles, not values (fetching a TF1 table's string_ref fails).
_HANDLE_OPS = {"HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2",
               "VarHandleOp", "Iterator", "IteratorV2"}


def _fetchable(t: Any) -> bool:
    if t.op.type in _HANDLE_OPS or t.dtype.base_dtype.name in ("resource", "variant"):
        return False
    try:
        return np.dtype(t.dtype.base_dtype.as_numpy_dtype).kind in _FETCHABLE_KINDS
    except TypeError:
        return False


def _run_fetches(tf: Any, session: Any, fetch: Sequence[Any], feed: Mapping[Any, np.ndarray],
                 errors: list[str] | None = None) -> dict[str, np.ndarray]:
    """Fetch everything in one run; when that fails, split the list in halves until the
    tensors that cannot be fetched (constants inside a loop frame, the untaken branch of a
    lowered cond, lookups of a table initialized outside the signature) are isolated, so a
    few of them cost a few runs, not one run per tensor."""
    if not fetch:
        return {}
    try:
        values = session.run(list(fetch), feed_dict=dict(feed))
        return {t.name: np.asarray(v) for t, v in zip(fetch, values, strict=True)}
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        if len(fetch) == 1:
            if errors is not None:
                errors.append(f"{fetch[0].name}: {first_line(exc)}")
            return {}
    half = len(fetch) // 2
    return {**_run_fetches(tf, session, fetch[:half], feed, errors),
            **_run_fetches(tf, session, fetch[half:], feed, errors)}


@contextlib.contextmanager
def _session(tf: Any, graph: Any) -> Iterator[Any]:
    session = tf.compat.v1.Session(graph=graph)
    try:
        yield session
    finally:
        session.close()


def _trace_tf2(path: Path, signature: str, feeds: Mapping[str, np.ndarray], tag: str
               ) -> Trace:
    tf = import_tf()
    from tensorflow.python.framework import convert_to_constants

    loaded = tf.saved_model.load(str(path), tags=parse_tags(tag))
    fn = loaded.signatures[signature]
    try:
        frozen = convert_to_constants.convert_variables_to_constants_v2(fn)
    except Exception as exc:
        raise NotTraceable(f"its signature {signature!r} could not be frozen into one graph "
                           f"({first_line(exc)})") from None
    _, kwargs = fn.structured_input_signature
    in_keys = [k for k, _ in sorted(kwargs.items())]
    arg_tensors = [t for t in frozen.inputs if t.dtype != tf.resource]
    if len(arg_tensors) != len(in_keys):
        raise NotTraceable("its frozen signature's inputs do not line up with the signature's")
    out_struct = fn.structured_outputs
    out_keys = sorted(out_struct) if isinstance(out_struct, Mapping) else ["output_0"]
    if len(frozen.outputs) != len(out_keys):
        raise NotTraceable("its frozen signature's outputs do not line up with the signature's")
    graph_def = frozen.graph.as_graph_def()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with _session(tf, graph) as session:
        return _graph_trace(
            tf, session, "saved_model",
            {t.name: feeds[k] for k, t in zip(in_keys, arg_tensors, strict=True)},
            {k: t.name for k, t in zip(out_keys, frozen.outputs, strict=True)})


def _trace_tf1(path: Path, signature: str, feeds: Mapping[str, np.ndarray], tag: str
               ) -> Trace:
    tf = import_tf()
    graph = tf.Graph()
    with _session(tf, graph) as session, graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, parse_tags(tag), str(path))
        return _signature_def_trace(tf, session, "saved_model_tf1",
                                    meta.signature_def[signature], feeds)


def _trace_frozen(path: Path, signature: str, feeds: Mapping[str, np.ndarray], tag: str
                  ) -> Trace:
    from snapshot_tool.models.graphdef import import_frozen_graph

    tf = import_tf()
    graph, meta, _ = import_frozen_graph(path)
    with _session(tf, graph) as session:
        return _signature_def_trace(tf, session, "frozen_graph",
                                    meta.signature_def[signature], feeds)


def _signature_def_trace(tf: Any, session: Any, kind: str, sd: Any,
                         feeds: Mapping[str, np.ndarray]) -> Trace:
    """:func:`_graph_trace` fed and fetched by the tensor names of a signature_def."""
    return _graph_trace(tf, session, kind, {sd.inputs[k].name: v for k, v in feeds.items()},
                        {k: sd.outputs[k].name for k in sorted(sd.outputs)})


# --- Keras ---------------------------------------------------------------------------------


def _trace_keras(path: Path, signature: str, feeds: Mapping[str, np.ndarray], tag: str
                 ) -> Trace:
    import_tf()
    import keras

    model = keras.saving.load_model(str(path))
    inputs = list(getattr(model, "inputs", None) or [])
    if not inputs:
        raise NotTraceable("it is a subclassed Keras model without a layer graph; export it "
                           "with model.export(DIR) and localize the SavedModel")
    nodes: list[Node] = []
    taps: list[tuple[str, Any]] = []
    values: dict[str, np.ndarray] = {}
    for t in inputs:
        nodes.append(Node(t.name, "InputLayer", t.name))
        values[t.name] = np.asarray(feeds[t.name])
    input_names = {t.name for t in inputs}
    for layer in model.layers:
        if layer.name in input_names or type(layer).__name__ == "InputLayer":
            continue
        try:
            outs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue  # a layer called more than once has no single output to tap
        parents = tuple(p.operation.name for node in layer._inbound_nodes[:1]
                        for p in node.parent_nodes)
        weights = []
        for w in layer.weights:
            wname = str(getattr(w, "path", w.name))
            nodes.append(Node(wname, "weight", layer.name, parameter=True))
            values[wname] = np.asarray(keras.ops.convert_to_numpy(w))
            weights.append(wname)
        for i, t in enumerate(outs):
            name = layer.name if len(outs) == 1 else f"{layer.name}:{i}"
            nodes.append(Node(name, type(layer).__name__, layer.name,
                              _parent_names(model, parents) + tuple(weights)))
            taps.append((name, t))
    extractor = keras.Model(inputs, [t for _, t in taps])
    arrays = [np.asarray(feeds[t.name]) for t in inputs]
    results = extractor(arrays if len(arrays) > 1 else arrays[0], training=False)
    results = results if isinstance(results, (list, tuple)) else [results]
    for (name, _), v in zip(taps, results, strict=True):
        values[name] = np.asarray(keras.ops.convert_to_numpy(v))
    return Trace("keras", tuple(nodes), values, _keras_outputs(model))


def _parent_names(model: Any, parents: Sequence[str]) -> tuple[str, ...]:
    # A parent with several outputs is tapped as "name:i"; depend on all of them.
    out: list[str] = []
    for p in parents:
        try:
            layer = model.get_layer(p)
            n = len(__import__("keras").tree.flatten(layer.output))
        except (ValueError, AttributeError):
            n = 1
        out.extend([p] if n == 1 else [f"{p}:{i}" for i in range(n)])
    return tuple(out)


def _keras_outputs(model: Any) -> dict[str, str]:
    """Signature output name (what ``model.export()`` calls it) -> tapped node name."""
    struct = getattr(model, "_outputs_struct", None)
    outs = list(model.outputs)
    keys = [str(k) for k in struct] if isinstance(struct, Mapping) else [
        f"output_{i}" for i in range(len(outs))]
    mapping = {}
    for key, t in zip(keys, outs, strict=False):
        op, _, index = t._keras_history
        n = len(__import__("keras").tree.flatten(op.output))
        mapping[key] = op.name if n == 1 else f"{op.name}:{index}"
    return mapping


# --- TFLite --------------------------------------------------------------------------------


def _tflite_interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        tf = import_tf()
        Interpreter = tf.lite.Interpreter
        OpResolverType = tf.lite.experimental.OpResolverType
    try:
        return Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                           experimental_op_resolver_type=(
                               OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    except (ValueError, RuntimeError) as exc:
        raise NotTraceable(f"the interpreter would not load it to preserve all tensors "
                           f"({first_line(exc)})") from None


def _dequantized(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """A quantized tensor as the real numbers it stands for, so an int8 model's
    intermediates compare with a float model's: ``(q - zero_point) * scale``."""
    scale, zero_point = (detail.get("quantization") or (0.0, 0))[:2]
    if not scale or value.dtype.kind not in "iu":
        return value
    return ((value.astype(np.float32) - np.float32(zero_point)) * np.float32(scale))


def _trace_tflite(path: Path, signature: str, feeds: Mapping[str, np.ndarray], tag: str
                  ) -> Trace:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": we are
        it = _tflite_interpreter(path)
    listed = it.get_signature_list() or {}
    if listed:
        key = signature if signature in listed else next(iter(listed))
        runner = it.get_signature_runner(key)
        runner(**{k: np.ascontiguousarray(v) for k, v in feeds.items()})
        out_index = {k: int(d["index"]) for k, d in runner.get_output_details().items()}
        in_index = {int(d["index"]) for d in runner.get_input_details().values()}
    else:
        raise NotTraceable("it has no SignatureDef, so its tensors cannot be tied to the "
                           "golden's inputs by name; convert with "
                           "TFLiteConverter.from_saved_model")
    details = {int(d["index"]): d for d in it.get_tensor_details()}
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    produced = {int(i) for op in ops for i in op["outputs"]}

    def node_name(i: int) -> str:
        return f"{details[i]['name']}#{i}" if i in details else f"#{i}"

    nodes: list[Node] = []
    values: dict[str, np.ndarray] = {}
    seen: set[int] = set()

    def add(i: int, op_type: str, inputs: tuple[str, ...], parameter: bool) -> None:
        if i in seen or i < 0:
            return
        seen.add(i)
        raw = str(details.get(i, {}).get("name", ""))
        # "a;b;c": the fused op's result first, then the ops folded into it; only the first
        # names this value.
        aliases = tuple(a.removeprefix("serving_default_") for a in raw.split(";")[:1] if a)
        try:
            value = _dequantized(np.array(it.get_tensor(i)), details.get(i, {}))
        except ValueError:
            return
        name = node_name(i)
        nodes.append(Node(name, op_type, _scope(aliases[0]) if aliases else "", inputs,
                          aliases, parameter))
        values[name] = value

    for i in sorted(in_index):
        add(i, "INPUT", (), False)
    for op in ops:
        ins = [int(i) for i in op["inputs"] if int(i) >= 0]
        for i in ins:
            if i not in produced and i not in in_index:
                add(i, "CONST", (), True)
        for o in op["outputs"]:
            add(int(o), str(op["op_name"]), tuple(node_name(i) for i in ins), False)
    return Trace("tflite", tuple(nodes), values,
                 {k: node_name(i) for k, i in out_index.items()})
