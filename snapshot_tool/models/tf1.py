"""TF1 SavedModels run in a ``tf.compat.v1.Session`` from their signature_defs (TF1,
Estimator and TF Serving exports, and any SavedModel ``tf.saved_model.load`` rejects).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.inputs.batching import num_rows
from snapshot_tool.models.base import (
    Model,
    SignatureInfo,
    TensorSpec,
    first_line,
    import_tf,
    method_name,
    quiet_native_stderr,
    rejected,
    run_rows,
    to_numpy,
)


class _Unsupported(Exception):
    """A signature_def tensor snapshot-tool cannot feed or fetch (sparse, composite)."""


def _spec_from_tensor_info(tf: Any, key: str, info: Any, graph: Any) -> TensorSpec:
    encoding = info.WhichOneof("encoding")
    if encoding != "name":
        raise _Unsupported(f"{key!r} is a {encoding or 'unknown'} tensor")
    try:
        # Reference dtypes (float_ref from a TF1 Variable) feed and fetch as their base dtype.
        dtype = tf.dtypes.as_dtype(info.dtype).base_dtype.name
    except TypeError:
        raise _Unsupported(f"{key!r} has no valid dtype ({info.dtype})") from None
    if not info.HasField("tensor_shape"):
        # Older exporters wrote TensorInfo without the field. Absent means "not said", not
        # rank 0 (what an empty TensorShapeProto reads as); the graph's tensor knows better.
        shape = _shape_tuple(graph.get_tensor_by_name(info.name).shape.as_proto())
        return TensorSpec(name=key, dtype=dtype, shape=shape,
                          shape_source="unknown" if shape is None else "graph")
    return TensorSpec(name=key, dtype=dtype, shape=_shape_tuple(info.tensor_shape))


def _shape_tuple(proto: Any) -> tuple[int | None, ...] | None:
    if proto.unknown_rank:
        return None
    return tuple(None if d.size < 0 else int(d.size) for d in proto.dim)


def _shape_note(name: str, specs: tuple[TensorSpec, ...]) -> str | None:
    from_graph = [s.name for s in specs if s.shape_source == "graph"]
    unknown = [s.name for s in specs if s.shape_source == "unknown"]
    if not from_graph and not unknown:
        return None
    parts = []
    if from_graph:
        parts.append(f"shapes of {', '.join(from_graph)} taken from the graph's tensors")
    if unknown:
        parts.append(f"{', '.join(unknown)} of unknown rank (the graph does not know either), "
                     "so any shape is fed")
    return (f"signature {name!r}: its signature_def has no tensor_shape (an older export); "
            + "; ".join(parts))


class SavedModelTF1(Model):
    """A SavedModel run the TF1 way: restored into its own graph and ``tf.compat.v1.Session``
    by ``tf.compat.v1.saved_model.loader.load``, each signature fed and fetched by the tensor
    names in its signature_def.

    This is what TF Serving does, and it runs exports ``tf.saved_model.load`` cannot wrap:
    reference variables (``float_ref`` Assign ops), ``ParseExample`` ops whose shapes the
    TF2 importer rejects, main_op/legacy_init_op table initializers over asset files.
    """

    kind = "saved_model_tf1"

    def __init__(self, path: Path, session: Any, meta_graph: Any, load_seconds: float) -> None:
        super().__init__(path, load_seconds)
        tf = import_tf()
        self._session = session
        self._signatures: dict[str, SignatureInfo] = {}
        self._feed_names: dict[str, list[tuple[str, str]]] = {}
        self._fetch_names: dict[str, list[tuple[str, str]]] = {}
        self._callables: dict[str, Any] = {}
        placement = relaxed_placement(tf, meta_graph)
        if placement:
            self.notes.append(placement)
        graph = session.graph
        for name, sd in sorted(meta_graph.signature_def.items()):
            if name.startswith("__"):
                # TF2's "__saved_model_init_op" and friends: loader bookkeeping, run by the
                # loader itself, not signatures a user serves.
                continue
            try:
                # Sparse/composite tensors are refused before their (empty) names are looked up.
                inputs = tuple(_spec_from_tensor_info(tf, k, v, graph)
                               for k, v in sorted(sd.inputs.items()))
                outputs = tuple(_spec_from_tensor_info(tf, k, v, graph)
                                for k, v in sorted(sd.outputs.items()))
                feeds = [(k, sd.inputs[k].name) for k in sorted(sd.inputs)]
                fetches = [(k, sd.outputs[k].name) for k in sorted(sd.outputs)]
                for _, tensor_name in feeds + fetches:
                    graph.get_tensor_by_name(tensor_name)
            except _Unsupported as exc:
                self.notes.append(f"signature {name!r} skipped: its tensor {exc}, which "
                                  "snapshot-tool cannot feed or fetch")
                continue
            except (KeyError, ValueError) as exc:
                self.notes.append(f"signature {name!r} skipped: it names a tensor the graph "
                                  f"does not have ({first_line(exc)})")
                continue
            self._signatures[name] = SignatureInfo(name, inputs, outputs,
                                                   method_name(sd.method_name))
            note = _shape_note(name, inputs + outputs)
            if note:
                self.notes.append(note)
            self._feed_names[name] = feeds
            self._fetch_names[name] = fetches

    def close(self) -> None:
        # A library user calling record/compare in a loop must not accumulate sessions.
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def scan(self) -> dict[str, list[str]]:
        from snapshot_tool.models.scan import flagged, graph_ops

        # Only what the fetches depend on runs in a Session: not the Saver's restore ops,
        # not the main_op's table initializers reading assets (the loader ran those).
        graph_def = self._session.graph.as_graph_def()
        return {name: flagged(graph_ops(graph_def, [t for _, t in fetches]))
                for name, fetches in sorted(self._fetch_names.items())}

    def _callable(self, signature: str) -> Any:
        # A callable skips session.run's per-call fetch/feed parsing; that overhead would
        # otherwise be measured as model latency.
        fn = self._callables.get(signature)
        if fn is None:
            fn = self._session.make_callable(
                [t for _, t in self._fetch_names[signature]],
                feed_list=[t for _, t in self._feed_names[signature]])
            self._callables[signature] = fn
        return fn

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_rows(self._signatures[signature], feeds,
                        lambda f: self._run(signature, f))

    def _run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = import_tf()
        info = self._signatures[signature]
        args = [feeds[key] for key, _ in self._feed_names[signature]]
        try:
            values = self._callable(signature)(*args)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise rejected(info, exc, num_rows(feeds)) from None
        return {key: to_numpy(v)
                for (key, _), v in zip(self._fetch_names[signature], values, strict=True)}


def session_config(tf: Any) -> Any:
    # The same thread settings the golden's environment records for the TF2 runtime.
    # Soft placement: an export pinned to a device this machine lacks (a GPU-trained model
    # on a CPU CI runner) runs where it can, as TF2's eager runtime does by default, instead
    # of failing in the restore op with a misleading "checkpoint mismatch".
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=int(tf.config.threading.get_intra_op_parallelism_threads()),
        inter_op_parallelism_threads=int(tf.config.threading.get_inter_op_parallelism_threads()),
        allow_soft_placement=True)


def relaxed_placement(tf: Any, meta_graph: Any) -> str | None:
    """A note naming the devices the graph's nodes are pinned to that this machine lacks
    (whose ops therefore run elsewhere), or None when every pin can be honoured."""
    present = {d.device_type for d in tf.config.list_logical_devices()}
    missing: dict[str, int] = {}
    for node in meta_graph.graph_def.node:
        if not node.device:
            continue
        try:
            device_type = tf.DeviceSpec.from_string(node.device).device_type
        except ValueError:
            device_type = None
        if device_type and device_type.upper() not in present:
            missing[node.device] = missing.get(node.device, 0) + 1
    if not missing:
        return None
    pins = ", ".join(f"{n} op(s) on {d}" for d, n in sorted(missing.items()))
    here = ", ".join(sorted(present)) or "CPU"
    return (f"the graph is pinned to devices this machine does not have ({pins}); placement "
            f"relaxed with allow_soft_placement, so they run on {here}")


def load_tf1(path: Path, tags: list[str], meta_graph: Any) -> SavedModelTF1:
    tf = import_tf()
    start = time.perf_counter()
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=session_config(tf))
    try:
        with graph.as_default(), quiet_native_stderr():
            tf.compat.v1.saved_model.loader.load(session, tags, str(path))
    except Exception:
        session.close()
        raise
    return SavedModelTF1(path, session, meta_graph, time.perf_counter() - start)
