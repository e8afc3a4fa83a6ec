"""TF2 SavedModels (``tf.saved_model.load``), and the dispatch between the TF2 and the TF1
session loader for a SavedModel directory.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import ModelError, SignatureError
from snapshot_tool.inputs.batching import num_rows
from snapshot_tool.models.base import (
    Model,
    SignatureInfo,
    TensorSpec,
    first_line,
    import_tf,
    method_name,
    parse_tags,
    rejected,
    run_rows,
    to_numpy,
)
from snapshot_tool.models.composite import (
    composite_input_error,
    composite_inputs,
    composite_notes,
    composite_output_error,
    output_kind,
)
from snapshot_tool.models.tf1 import load_tf1


def _spec_from_tf(name: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(name=name, dtype=spec.dtype.name, shape=shape)


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


def _read_saved_model_proto(path: Path) -> Any:
    """The SavedModel protobuf, parsed here so the loader can be chosen before loading."""
    import_tf()
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = path / "saved_model.pb"
    try:
        if pb.is_file():
            proto.ParseFromString(pb.read_bytes())
        else:
            from google.protobuf import text_format  # type: ignore[import-untyped]

            text_format.Parse((path / "saved_model.pbtxt").read_text(encoding="utf-8"), proto)
    except OSError as exc:
        raise ModelError(f"cannot load SavedModel {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        # protobuf raises DecodeError/ParseError (and UnicodeDecodeError for pbtxt).
        raise ModelError(f"cannot load SavedModel {path}: its saved_model.pb is not a valid "
                         f"SavedModel protobuf ({first_line(exc)})") from None
    if not proto.meta_graphs:
        raise ModelError(f"cannot load SavedModel {path}: it holds no MetaGraph")
    return proto


def _tag_set_text(tags: Any) -> str:
    return ",".join(tags) or "(no tags)"


def _select_meta_graph(proto: Any, tags: list[str], path: Path) -> Any:
    # TensorFlow's loaders match the tag set exactly, not as a subset; so does this.
    for mg in proto.meta_graphs:
        if set(mg.meta_info_def.tags) == set(tags):
            return mg
    available = ", ".join(repr(_tag_set_text(mg.meta_info_def.tags))
                          for mg in proto.meta_graphs)
    raise ModelError(f"cannot load SavedModel {path}: it has no MetaGraph with tag set "
                     f"{_tag_set_text(tags)!r}; available: {available}; choose one with "
                     "--tag")


class SavedModelTF2(Model):
    """A SavedModel loaded with ``tf.saved_model.load`` (TF2 exports, Keras 3 ``export``)."""

    kind = "saved_model"

    def __init__(self, path: Path, loaded: Any, load_seconds: float,
                 method_names: Mapping[str, str | None] | None = None,
                 composite_in: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(path, load_seconds)
        self._loaded = loaded
        self._functions: dict[str, Any] = dict(loaded.signatures)
        self._signatures: dict[str, SignatureInfo] = {}
        # Signatures record and compare refuse (composite tensors), with the reason; inspect
        # still lists them, with a note.
        self._refused: dict[str, str] = {}
        methods = method_names or {}
        composite_out: dict[str, list[tuple[str, str]]] = {}
        for name, fn in self._functions.items():
            _, kwargs = fn.structured_input_signature
            inputs = tuple(_spec_from_tf(k, v) for k, v in sorted(kwargs.items()))
            outs = fn.structured_outputs
            if not isinstance(outs, Mapping):
                # Signatures always return dicts when saved; guard for odd exports anyway.
                outs = {"output_0": outs}
            outputs = tuple(_spec_from_tf(k, v) for k, v in sorted(outs.items()))
            self._signatures[name] = SignatureInfo(name, inputs, outputs, methods.get(name))
            comps = [(k, kind) for k, v in sorted(outs.items())
                     if (kind := output_kind(v)) is not None]
            if comps:
                composite_out[name] = comps
                self._refused[name] = composite_output_error(name, comps)
        composite_in = {k: v for k, v in (composite_in or {}).items() if k in self._signatures}
        for name, kinds in composite_in.items():
            self._refused[name] = composite_input_error(
                name, kinds, [s.name for s in self._signatures[name].inputs])
        self.notes.extend(composite_notes(composite_out, composite_in))

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def no_signatures_hint(self) -> str:
        # tf.saved_model.save without signatures= keeps tf.functions callable from Python
        # only; nothing names their inputs and outputs for another process.
        return ("; it was saved with no signatures (tf.saved_model.save without "
                "signatures=): save it with signatures={'serving_default': "
                "obj.fn.get_concrete_function(tf.TensorSpec(shape, dtype, name='x'))}, or "
                "an input_signature on the tf.function")

    def scan(self) -> dict[str, list[str]]:
        from snapshot_tool.models.scan import flagged, graph_ops

        # The restored concrete function's graph, with the library of every function it
        # calls: exactly what a call of the signature executes.
        return {name: flagged(graph_ops(fn.graph.as_graph_def()))
                for name, fn in sorted(self._functions.items())}

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if signature in self._refused:
            raise SignatureError(self._refused[signature])
        return run_rows(self._signatures[signature], feeds,
                        lambda f: self._run(signature, f))

    def _run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = import_tf()
        fn = self._functions[signature]
        info = self._signatures[signature]
        args = {}
        for spec in info.inputs:
            arr = feeds[spec.name]
            args[spec.name] = tf.constant(arr, dtype=tf.as_dtype(spec.dtype))
        try:
            result = fn(**args)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise rejected(info, exc, num_rows(feeds)) from None
        if not isinstance(result, Mapping):
            result = {"output_0": result}
        return {k: to_numpy(v) for k, v in result.items()}


# TensorFlow's words for a checkpoint file cut short or damaged in transfer.
_DAMAGED_VARIABLES = ("Read less bytes than requested", "Data loss", "DATA_LOSS", "corrupted",
                      "Checksum does not match", "truncated")


def _load_failure(path: Path, reason: str) -> str:
    """TensorFlow's reason, or what it means when the variables are missing or damaged (a
    SavedModel copied without its variables/ folder, or partly)."""
    variables = path / "variables"
    if "variables" in reason and not (variables / "variables.index").is_file():
        return (f"its variables are missing ({variables / 'variables.index'} not found): a "
                "SavedModel is saved_model.pb together with its variables/ (and assets/) "
                "folder; copy the whole directory")
    if any(s in reason for s in _DAMAGED_VARIABLES):
        return (f"its variables under {variables} are truncated or damaged ({reason}); copy "
                "the whole SavedModel directory again")
    return reason


def load_saved_model(path: Path, tag: str) -> Model:
    tf = import_tf()
    tags = parse_tags(tag)
    proto = _read_saved_model_proto(path)
    meta_graph = _select_meta_graph(proto, tags, path)
    methods = {k: method_name(sd.method_name) for k, sd in meta_graph.signature_def.items()}
    tag_text = _tag_set_text(tags)
    # A pure TF1 export (Builder, Estimator) has no object graph: tf.saved_model.load would
    # only wrap it in a V1 shim that breaks on reference variables and parse ops, so it
    # goes to the session loader directly.
    if not meta_graph.HasField("object_graph_def"):
        try:
            return load_tf1(path, tags, meta_graph)
        except Exception as exc:
            raise ModelError(f"cannot load SavedModel {path} with tag {tag_text!r}: "
                             f"{_load_failure(path, first_line(exc))}") from None
    start = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(path), tags=tags)
    except Exception as exc:
        tf2_error = first_line(exc)
    else:
        return SavedModelTF2(path, loaded, time.perf_counter() - start, methods,
                             composite_inputs(meta_graph))
    try:
        model = load_tf1(path, tags, meta_graph)
    except Exception:
        raise ModelError(f"cannot load SavedModel {path} with tag {tag_text!r}: "
                         f"{_load_failure(path, tf2_error)}") from None
    model.notes.append(f"tf.saved_model.load failed ({tf2_error}); running the model with "
                       "the TF1 session loader instead")
    return model

