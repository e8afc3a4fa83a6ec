"""Composite tensors (RaggedTensor, SparseTensor) in a TF2 SavedModel's signatures.

A golden stores dense arrays, one per input and output, with a sample dimension. A signature
that returns a RaggedTensor or a SparseTensor has no such array (rows of different lengths,
or indices and values), and one that takes one was flattened by ``tf.saved_model.save`` into
its component tensors (values and row splits; indices, values and dense shape), which
independently synthesized or batched arrays cannot satisfy. Both are refused with what to
export instead; this module finds them and words the refusal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from snapshot_tool.models.base import import_tf

# TypeSpec classes as the SavedModel proto names them -> what users call the tensor.
_PROTO_CLASSES = {"RAGGED_TENSOR_SPEC": "RaggedTensor", "SPARSE_TENSOR_SPEC": "SparseTensor"}
_HOW_TO_DENSIFY = {
    "RaggedTensor": "return `.to_tensor(default_value=...)` of it, padded to a fixed width",
    "SparseTensor": "return `tf.sparse.to_dense(...)` of it",
}

_COMPONENTS = {"RaggedTensor": "values and row splits",
               "SparseTensor": "indices, values and dense shape"}


def output_kind(spec: Any) -> str | None:
    """``"RaggedTensor"``/``"SparseTensor"``/... for a composite output spec, None for a
    dense ``tf.TensorSpec``."""
    tf = import_tf()  # loaded already: the spec came from a loaded model

    if isinstance(spec, tf.TensorSpec):  # BoundedTensorSpec and other dense subclasses too
        return None
    name = type(spec).__name__
    return name[: -len("Spec")] if name.endswith("Spec") else name


def composite_output_error(signature: str, composites: Sequence[tuple[str, str]]) -> str:
    name, kind = composites[0]
    how = _HOW_TO_DENSIFY.get(kind, "return dense tensors instead")
    more = f" (and {len(composites) - 1} more)" if len(composites) > 1 else ""
    return (f"signature {signature!r} returns {name!r} as a {kind}{more}, which a golden "
            f"cannot store (it holds dense arrays with a sample dimension); {how} in the "
            "exported signature, or record a signature that returns dense tensors")


def _type_specs(value: Any) -> Iterator[str]:
    """Every RaggedTensor or SparseTensor spec in a ``StructuredValue`` proto, depth
    first."""
    kind = value.WhichOneof("kind")
    if kind == "type_spec_value":
        spec = value.type_spec_value
        from tensorflow.core.protobuf import struct_pb2

        proto_name = struct_pb2.TypeSpecProto.TypeSpecClass.Name(spec.type_spec_class)
        # Only what is known not to be a plain tensor: other specs (a variable or resource
        # handle passed in, an extension type) are left to the run to accept or refuse.
        if proto_name in _PROTO_CLASSES:
            yield _PROTO_CLASSES[proto_name]
    elif kind in ("list_value", "tuple_value"):
        for item in getattr(value, kind).values:
            yield from _type_specs(item)
    elif kind == "dict_value":
        for key in sorted(value.dict_value.fields):
            yield from _type_specs(value.dict_value.fields[key])
    elif kind == "named_tuple_value":
        for pair in value.named_tuple_value.values:
            yield from _type_specs(pair.value)


def _signature_wrappers(meta_graph: Any) -> dict[str, str]:
    """signature name -> the concrete function ``tf.saved_model.save`` wrote for it."""
    graph = meta_graph.object_graph_def
    if not graph.nodes:
        return {}
    ids = [c.node_id for c in graph.nodes[0].children if c.local_name == "signatures"]
    if not ids:
        return {}
    out = {}
    for child in graph.nodes[ids[0]].children:
        node = graph.nodes[child.node_id]
        if node.WhichOneof("kind") == "bare_concrete_function":
            out[child.local_name] = node.bare_concrete_function.concrete_function_name
        elif node.WhichOneof("kind") == "function" and node.function.concrete_functions:
            out[child.local_name] = node.function.concrete_functions[0]
    return out


def _called_functions(meta_graph: Any, wrapper: str) -> list[str]:
    for fdef in meta_graph.graph_def.library.function:
        if fdef.signature.name == wrapper:
            return [node.attr["f"].func.name for node in fdef.node_def
                    if node.op in ("PartitionedCall", "StatefulPartitionedCall")]
    return []


def composite_inputs(meta_graph: Any) -> dict[str, list[str]]:
    """signature name -> the composite tensor kinds its function takes (empty: none).

    The signature wrapper's own inputs are already flattened to plain tensors; the function
    it calls still records the composite specs it was traced with.
    """
    functions = meta_graph.object_graph_def.concrete_functions
    out: dict[str, list[str]] = {}
    try:
        for signature, wrapper in _signature_wrappers(meta_graph).items():
            kinds = [kind for inner in _called_functions(meta_graph, wrapper)
                     if inner in functions
                     for kind in _type_specs(functions[inner].canonicalized_input_signature)]
            if kinds:
                out[signature] = kinds
    except (IndexError, KeyError, ValueError):
        # An object graph that does not hang together (a damaged or hand-made export): the
        # check is only for a clearer error, so the run decides.
        return {}
    return out


def _component_groups(names: Sequence[str]) -> list[list[str]]:
    """Input names grouped the way ``tf.saved_model.save`` names a flattened argument:
    ``r``, ``r_1``, ``r_2``, ...; only groups of two or more."""
    present = set(names)
    groups = []
    for name in sorted(names):
        group = [name]
        while f"{name}_{len(group)}" in present:
            group.append(f"{name}_{len(group)}")
        if len(group) > 1:
            groups.append(group)
    return groups


def composite_input_error(signature: str, kinds: Sequence[str],
                          input_names: Sequence[str]) -> str:
    groups = _component_groups(input_names) or [sorted(input_names)]
    parts = "; ".join(", ".join(g) for g in groups)
    unique = sorted(set(kinds))
    what = "; ".join(_COMPONENTS.get(k, "its components") for k in unique)
    return (f"signature {signature!r} takes a {' and '.join(unique)}, which the export "
            f"flattened into the component tensors {parts} ({what}) that must agree with "
            "each other; snapshot-tool feeds dense arrays "
            "only: export a signature taking dense tensors (e.g. padded values and lengths, "
            "rebuilt inside with tf.RaggedTensor.from_tensor or tf.sparse.from_dense)")


def composite_notes(outputs: Mapping[str, list[tuple[str, str]]],
                    inputs: Mapping[str, list[str]]) -> list[str]:
    """One note per signature that record and compare will refuse, for ``inspect``."""
    notes = []
    for sig, comps in sorted(outputs.items()):
        listed = ", ".join(f"{n} ({k})" for n, k in comps)
        notes.append(f"signature {sig!r} returns composite tensors: {listed}; record and "
                     "compare refuse it (a golden holds dense arrays)")
    for sig, kinds in sorted(inputs.items()):
        notes.append(f"signature {sig!r} takes composite tensors ({', '.join(kinds)}); "
                     "record and compare refuse it (they feed dense arrays)")
    return notes
