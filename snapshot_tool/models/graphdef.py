"""Frozen TF1 graphs: a binary ``GraphDef`` in a ``.pb`` file, as ``freeze_graph``,
``convert_variables_to_constants`` and the older converters and detection exporters write it.

A frozen graph has no signature_def, so this module writes one: its inputs are the graph's
``Placeholder`` ops, its outputs every tensor no other op consumes (the graph's sinks). The
graph then runs exactly as a TF1 SavedModel does, in a session fed and fetched by tensor name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from snapshot_tool.errors import ModelError
from snapshot_tool.models.base import DEFAULT_SIGNATURE, first_line, import_tf, quiet_native_stderr
from snapshot_tool.models.tf1 import SavedModelTF1, session_config
from snapshot_tool.names import graph_key

# Ops that end a graph without producing a prediction: bookkeeping and checks left behind by
# training or freezing. Their outputs (if any) are never what a model serves.
_NOT_OUTPUTS = frozenset({
    "Placeholder", "PlaceholderV2", "PlaceholderWithDefault", "Const", "NoOp", "Assert",
    "Print", "PrintV2", "SaveV2", "RestoreV2", "MergeV2Checkpoints", "VariableV2",
    "VarHandleOp", "Assign", "AssignVariableOp", "ReadVariableOp", "ScalarSummary",
    "HistogramSummary", "MergeSummary", "ImageSummary", "WriteSummary",
})
# Outputs that cannot come back as numbers: handles into the runtime.
_UNFETCHABLE = frozenset({"resource", "variant"})



def key_of(tensor_name: str, outputs_of_op: int) -> str:
    """The signature key for a graph tensor: ``dense/BiasAdd:0`` -> ``dense.BiasAdd`` (the
    output index is kept only for ops with several outputs: ``split:1``)."""
    op, _, index = tensor_name.partition(":")
    key = graph_key(op)
    return key if outputs_of_op == 1 else f"{key}:{index or 0}"


def is_frozen_graph(path: Path) -> bool:
    # A SavedModel's own saved_model.pb never gets here: load_model refuses it first.
    return path.is_file() and path.suffix.lower() == ".pb"


class FrozenGraph(SavedModelTF1):
    """A frozen ``GraphDef`` run in a ``tf.compat.v1.Session`` under one written signature."""

    kind = "frozen_graph"


def _parse(tf: Any, path: Path) -> Any:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise ModelError(f"cannot load frozen graph {path}: it is not a binary GraphDef "
                         f"({first_line(exc)})") from None
    if not graph_def.node:
        empty = " (the file is empty)" if path.stat().st_size == 0 else ""
        raise ModelError(f"cannot load frozen graph {path}: the GraphDef has no nodes{empty}")
    return graph_def


def _consumed(graph: Any) -> set[str]:
    """Names of every tensor some op reads (control inputs carry no data and do not count)."""
    return {t.name for op in graph.get_operations() for t in op.inputs}


def _describe(info: Any, tensor: Any) -> None:
    """Fill a signature_def TensorInfo (a proto field) from a graph tensor."""
    info.name = tensor.name
    info.dtype = tensor.dtype.as_datatype_enum
    info.tensor_shape.CopyFrom(tensor.shape.as_proto())


def _write_signature(graph: Any, signature: Any) -> list[str]:
    """Fill ``signature`` (a SignatureDef) with the graph's placeholders and sinks; returns
    notes on what was left out."""
    consumed = _consumed(graph)
    defaulted: list[str] = []
    for op in graph.get_operations():
        if op.type in ("Placeholder", "PlaceholderV2"):
            _describe(signature.inputs[key_of(op.outputs[0].name, 1)], op.outputs[0])
        elif op.type == "PlaceholderWithDefault":
            defaulted.append(op.name)
        if op.type in _NOT_OUTPUTS:
            continue
        for tensor in op.outputs:
            if tensor.name in consumed or tensor.dtype.base_dtype.name in _UNFETCHABLE:
                continue
            _describe(signature.outputs[key_of(tensor.name, len(op.outputs))], tensor)
    if not signature.outputs:
        raise ModelError("the graph has no output: every tensor it computes is consumed by "
                         "another op")
    signature.method_name = "tensorflow/serving/predict"
    return [f"inputs with a default value are left at it: {', '.join(sorted(defaulted))}"
            ] if defaulted else []


def import_frozen_graph(path: Path) -> tuple[Any, Any, list[str]]:
    """The frozen graph at ``path`` imported into a new graph, the MetaGraphDef carrying its
    written ``serving_default``, and notes on what the signature leaves out."""
    tf = import_tf()
    graph_def = _parse(tf, path)
    graph = tf.Graph()
    meta_graph = tf.compat.v1.MetaGraphDef()
    meta_graph.graph_def.CopyFrom(graph_def)
    try:
        with graph.as_default(), quiet_native_stderr():
            tf.compat.v1.import_graph_def(graph_def, name="")
        notes = _write_signature(graph, meta_graph.signature_def[DEFAULT_SIGNATURE])
    except ModelError as exc:
        raise ModelError(f"cannot load frozen graph {path}: {exc}") from None
    except Exception as exc:
        raise ModelError(f"cannot load frozen graph {path}: {first_line(exc)}") from None
    return graph, meta_graph, notes


def load_frozen_graph(path: Path) -> FrozenGraph:
    tf = import_tf()
    start = time.perf_counter()
    graph, meta_graph, notes = import_frozen_graph(path)
    session = tf.compat.v1.Session(graph=graph, config=session_config(tf))
    model = FrozenGraph(path, session, meta_graph, time.perf_counter() - start)
    model.notes.extend(notes)
    return model
