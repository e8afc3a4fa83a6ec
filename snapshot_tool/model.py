"""Loading a MODEL path and running one of its signatures over numpy batches.

Every kind of model is wrapped in a :class:`Model` with the same three things: its path, its
signatures (names, input and output specs), and ``run(signature, feeds) -> dict[name, ndarray]``.
Outputs are always materialized as numpy arrays, so lazy execution is finished by the time
``run`` returns (that matters for latency measurement too).

Kinds, chosen by :func:`load_model` from the path:

- ``saved_model``: a SavedModel directory loaded with ``tf.saved_model.load`` (TF2 exports,
  Keras 3 ``model.export``);
- ``saved_model_tf1``: a SavedModel run in a ``tf.compat.v1.Session`` from its signature_defs
  (TF1 / Estimator / TF Serving exports, which have no object graph, and any SavedModel
  ``tf.saved_model.load`` rejects);
- ``tflite``: a TFLite flatbuffer, run by LiteRT's interpreter (``ai_edge_litert``) or, when
  that is not installed, ``tf.lite.Interpreter``;
- ``keras``: a Keras 3 ``.keras`` file, presented with the signature ``model.export()`` gives
  the same model, so it can be compared against a golden recorded from the export.

TensorFlow is imported here, lazily, and only when a model is actually loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import ModelError, SignatureError

DEFAULT_SIGNATURE = "serving_default"
# Keras 3 exports name their endpoint "serve"; some write no serving_default alias.
FALLBACK_SIGNATURE = "serve"
DEFAULT_TAG = "serve"

# signature_def method names as TF Serving writes them, shortened to what users say.
METHOD_NAMES = {
    "tensorflow/serving/predict": "predict",
    "tensorflow/serving/classify": "classify",
    "tensorflow/serving/regress": "regress",
}

# Bytes 4..8 of every TFLite flatbuffer (its file identifier).
TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature. ``dtype`` is TensorFlow's name ("float32",
    "string", "bfloat16", ...); ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank

    def describe(self) -> str:
        if self.shape is None:
            return f"{self.name}: {self.dtype}[unknown rank]"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class SignatureInfo:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # "predict" | "classify" | "regress" (TF Serving's method), another exporter-defined
    # string, or None when the model kind has no such notion.
    method_name: str | None = None

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at a temp file for the duration of the block.

    TensorFlow and LiteRT write start-up chatter (oneDNN notices, CUDA stubs, absl's pre-init
    warning, "Created TensorFlow Lite XNNPACK delegate") straight to fd 2, where no Python
    logging setting applies, and it buries our one-line errors and reports.
    """
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tf() -> Any:
    """Import TensorFlow once, quietly, with a clear error if it is not installed.

    Users who want TensorFlow's native logs can set TF_CPP_MIN_LOG_LEVEL themselves; we only
    set a default.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with _quiet_native_stderr():
            import tensorflow as tf
    except ImportError as exc:
        raise ModelError(f"TensorFlow is not importable ({exc}); install it with "
                         "`pip install tensorflow`") from None
    return tf


def numpy_dtype(tf_dtype_name: str) -> np.dtype[Any]:
    """The numpy dtype snapshot-tool uses in memory for a TensorFlow dtype name."""
    if tf_dtype_name == "string":
        return np.dtype(object)
    if tf_dtype_name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)  # type: ignore[no-any-return]
    return np.dtype(tf_dtype_name)


def dtype_label(arr: np.ndarray) -> str:
    """The TensorFlow-style dtype name of an array (the inverse of :func:`numpy_dtype`):
    "string" for bytes/str/object arrays, numpy's name otherwise."""
    return "string" if arr.dtype.kind in ("O", "S", "U") else str(arr.dtype)


def method_name(raw: str) -> str | None:
    """``"tensorflow/serving/regress"`` -> ``"regress"``; other strings are kept as
    written (a custom exporter's method still says something); empty -> ``None``."""
    return METHOD_NAMES.get(raw, raw or None)


def parse_tags(tag: str) -> list[str]:
    """``--tag "serve,gpu"`` -> ``["serve", "gpu"]``: a MetaGraph is chosen by its tag set."""
    tags = [t.strip() for t in tag.split(",") if t.strip()]
    if not tags:
        raise ModelError(f"--tag {tag!r} names no tag; give a tag set such as 'serve' or "
                         "'serve,gpu'")
    return tags


class Model(ABC):
    """A loaded model of any kind."""

    kind: str = "model"

    def __init__(self, path: Path, load_seconds: float) -> None:
        self.path = path
        self.load_seconds = load_seconds
        # Things the user should know about how this model is being run (a fallback
        # loader, tensors matched by position, skipped signatures); meant to be shown as
        # warnings. Never errors: those raise.
        self.notes: list[str] = []

    def close(self) -> None:
        """Release what the runtime holds (a TF1 session, an interpreter). Idempotent."""
        return None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @abstractmethod
    def signatures(self) -> dict[str, SignatureInfo]:
        """All runnable signatures by name."""

    def signature(self, name: str | None) -> SignatureInfo:
        """Resolve ``name`` (``None``: the default) with an error that lists what exists.

        The default is ``serving_default``, else ``serve`` (a Keras 3 export without the
        alias), else the only signature there is.
        """
        sigs = self.signatures
        if not sigs:
            raise SignatureError(f"{self.path} has no runnable signatures")
        if name is None:
            for default in (DEFAULT_SIGNATURE, FALLBACK_SIGNATURE):
                if default in sigs:
                    return sigs[default]
            if len(sigs) == 1:
                return next(iter(sigs.values()))
            raise SignatureError(
                f"{self.path} has no {DEFAULT_SIGNATURE!r} signature; choose one with "
                f"--signature: {', '.join(sorted(sigs))}")
        if name not in sigs:
            raise SignatureError(
                f"signature {name!r} not found in {self.path}; "
                f"available: {', '.join(sorted(sigs))}")
        return sigs[name]

    @abstractmethod
    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output of the signature as a numpy array."""


def _spec_from_tf(name: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(name=name, dtype=spec.dtype.name, shape=shape)


def _to_numpy(value: Any) -> np.ndarray:
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if arr.dtype.kind in ("S", "U"):
        # A scalar string tensor comes back as plain bytes, which numpy turns into a
        # fixed-width "S" array; strings are object arrays of bytes everywhere else.
        out = np.empty(arr.shape, dtype=object)
        out[...] = arr.astype(object) if arr.dtype.kind == "S" else np.vectorize(
            lambda s: s.encode("utf-8"), otypes=[object])(arr)
        return out
    return arr


# Lines of a TensorFlow error message that say where, not what.
_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "Node:", "File ", "[[",
                   "Traceback", "Detected unsupported operations")


def _first_line(exc: BaseException) -> str:
    """The line of an exception's text that says what is wrong.

    TensorFlow errors carry a multi-line graph trace, and graph-mode ones start with
    "Graph execution error:" and the node's location before the actual reason.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if not ln.startswith(_NOISE_PREFIXES) and not ln.endswith("(most recent call last):"):
            return ln
    return lines[0] if lines else type(exc).__name__


def _example_hint(info: SignatureInfo, message: str) -> str:
    text = message.lower()
    if any(s.dtype == "string" for s in info.inputs) and ("example" in text
                                                          or "feature" in text):
        return ("; its string input takes serialized tf.train.Example protos, so record with "
                "--inputs FILE.tfrecord")
    return ""


# --- SavedModel ----------------------------------------------------------------------------


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
                         f"SavedModel protobuf ({_first_line(exc)})") from None
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
                 method_names: Mapping[str, str | None] | None = None) -> None:
        super().__init__(path, load_seconds)
        self._loaded = loaded
        self._functions: dict[str, Any] = dict(loaded.signatures)
        self._signatures: dict[str, SignatureInfo] = {}
        methods = method_names or {}
        for name, fn in self._functions.items():
            _, kwargs = fn.structured_input_signature
            inputs = tuple(_spec_from_tf(k, v) for k, v in sorted(kwargs.items()))
            outs = fn.structured_outputs
            if not isinstance(outs, Mapping):
                # Signatures always return dicts when saved; guard for odd exports anyway.
                outs = {"output_0": outs}
            outputs = tuple(_spec_from_tf(k, v) for k, v in sorted(outs.items()))
            self._signatures[name] = SignatureInfo(name, inputs, outputs, methods.get(name))

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
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
            reason = _first_line(exc)
            raise SignatureError(f"signature {signature!r} rejected its inputs: {reason}"
                                 f"{_example_hint(info, reason)}") from None
        if not isinstance(result, Mapping):
            result = {"output_0": result}
        return {k: _to_numpy(v) for k, v in result.items()}


class _Unsupported(Exception):
    """A signature_def tensor snapshot-tool cannot feed or fetch (sparse, composite)."""


def _spec_from_tensor_info(tf: Any, key: str, info: Any) -> TensorSpec:
    encoding = info.WhichOneof("encoding")
    if encoding != "name":
        raise _Unsupported(f"{key!r} is a {encoding or 'unknown'} tensor")
    try:
        # Reference dtypes (float_ref from a TF1 Variable) feed and fetch as their base dtype.
        dtype = tf.dtypes.as_dtype(info.dtype).base_dtype.name
    except TypeError:
        raise _Unsupported(f"{key!r} has no valid dtype ({info.dtype})") from None
    shape: tuple[int | None, ...] | None = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
    return TensorSpec(name=key, dtype=dtype, shape=shape)


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
        graph = session.graph
        for name, sd in sorted(meta_graph.signature_def.items()):
            if name.startswith("__"):
                # TF2's "__saved_model_init_op" and friends: loader bookkeeping, run by the
                # loader itself, not signatures a user serves.
                continue
            try:
                inputs = tuple(_spec_from_tensor_info(tf, k, v)
                               for k, v in sorted(sd.inputs.items()))
                outputs = tuple(_spec_from_tensor_info(tf, k, v)
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
                                  f"does not have ({_first_line(exc)})")
                continue
            self._signatures[name] = SignatureInfo(name, inputs, outputs,
                                                   method_name(sd.method_name))
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
        tf = import_tf()
        info = self._signatures[signature]
        args = [feeds[key] for key, _ in self._feed_names[signature]]
        try:
            values = self._callable(signature)(*args)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            reason = _first_line(exc)
            raise SignatureError(f"signature {signature!r} rejected its inputs: {reason}"
                                 f"{_example_hint(info, reason)}") from None
        return {key: _to_numpy(v)
                for (key, _), v in zip(self._fetch_names[signature], values, strict=True)}


def _session_config(tf: Any) -> Any:
    # The same thread settings the golden's environment records for the TF2 runtime.
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=int(tf.config.threading.get_intra_op_parallelism_threads()),
        inter_op_parallelism_threads=int(tf.config.threading.get_inter_op_parallelism_threads()))


def _load_tf1(path: Path, tags: list[str], meta_graph: Any) -> SavedModelTF1:
    tf = import_tf()
    start = time.perf_counter()
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=_session_config(tf))
    try:
        with graph.as_default(), _quiet_native_stderr():
            tf.compat.v1.saved_model.loader.load(session, tags, str(path))
    except Exception:
        session.close()
        raise
    return SavedModelTF1(path, session, meta_graph, time.perf_counter() - start)


def _load_saved_model(path: Path, tag: str) -> Model:
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
            return _load_tf1(path, tags, meta_graph)
        except Exception as exc:
            raise ModelError(f"cannot load SavedModel {path} with tag {tag_text!r}: "
                             f"{_first_line(exc)}") from None
    start = time.perf_counter()
    try:
        loaded = tf.saved_model.load(str(path), tags=tags)
    except Exception as exc:
        tf2_error = _first_line(exc)
    else:
        return SavedModelTF2(path, loaded, time.perf_counter() - start, methods)
    try:
        model = _load_tf1(path, tags, meta_graph)
    except Exception:
        raise ModelError(f"cannot load SavedModel {path} with tag {tag_text!r}: "
                         f"{tf2_error}") from None
    model.notes.append(f"tf.saved_model.load failed ({tf2_error}); running the model with "
                       "the TF1 session loader instead")
    return model


# --- TFLite --------------------------------------------------------------------------------


def _tflite_interpreter_class() -> tuple[Any, str]:
    """LiteRT's interpreter when installed (TF is deprecating tf.lite.Interpreter in its
    favour), else TensorFlow's own."""
    try:
        with _quiet_native_stderr():
            from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        tf = import_tf()
        return tf.lite.Interpreter, "tf.lite"
    return Interpreter, "ai_edge_litert"


def _tflite_dtype(np_type: Any) -> str:
    dt = np.dtype(np_type)
    if dt.kind in ("O", "S", "U"):
        return "string"
    return str(dt)


def _tflite_spec(name: str, detail: Mapping[str, Any]) -> TensorSpec:
    shape_sig = detail.get("shape_signature")
    dims = detail["shape"] if shape_sig is None or len(shape_sig) != len(detail["shape"]) \
        else shape_sig
    shape = tuple(None if int(d) < 0 else int(d) for d in dims)
    return TensorSpec(name=name, dtype=_tflite_dtype(detail["dtype"]), shape=shape)


def _tensor_base_name(tensor_name: str) -> str:
    # "serving_default_x:0" -> "x": the converter prefixes inputs with the signature key.
    base = tensor_name.split(":", 1)[0]
    return base.removeprefix(f"{DEFAULT_SIGNATURE}_")


def _check_feed_shapes(info: SignatureInfo, feeds: Mapping[str, np.ndarray]) -> None:
    # The interpreter accepts any shape it is resized to; elementwise graphs would then run
    # on the wrong data instead of failing, so non-batch dimensions are checked here.
    for spec in info.inputs:
        arr = feeds[spec.name]
        if spec.shape is None:
            continue
        fits = arr.ndim == len(spec.shape) and all(
            need is None or have == need
            for have, need in zip(arr.shape[1:], spec.shape[1:], strict=True))
        if not fits:
            raise SignatureError(
                f"signature {info.name!r} rejected its inputs: input {spec.name!r} has shape "
                f"{arr.shape} but the model expects {spec.describe()}")


class TFLiteModel(Model):
    """A TFLite flatbuffer. Tensors are matched by the flatbuffer's SignatureDef names when it
    has them (converters from SavedModels and Keras write them), else by position."""

    kind = "tflite"

    def __init__(self, path: Path, interpreter: Any, runtime: str, load_seconds: float) -> None:
        super().__init__(path, load_seconds)
        self.runtime = runtime
        self._interpreter = interpreter
        self._runners: dict[str, Any] = {}
        self._signatures: dict[str, SignatureInfo] = {}
        self._input_index: list[tuple[str, int]] = []
        self._output_index: list[tuple[str, int]] = []
        listed = interpreter.get_signature_list() or {}
        for key in sorted(listed):
            runner = interpreter.get_signature_runner(key)
            ins = runner.get_input_details()
            outs = runner.get_output_details()
            self._runners[key] = runner
            self._signatures[key] = SignatureInfo(
                key, tuple(_tflite_spec(n, ins[n]) for n in sorted(ins)),
                tuple(_tflite_spec(n, outs[n]) for n in sorted(outs)), None)
            self._note_quantized(key, ins)
        if not listed:
            self._positional(interpreter)

    def _positional(self, interpreter: Any) -> None:
        interpreter.allocate_tensors()
        ins = interpreter.get_input_details()
        outs = interpreter.get_output_details()
        self._input_index = [(_tensor_base_name(d["name"]), int(d["index"])) for d in ins]
        self._output_index = [(f"output_{i}", int(d["index"])) for i, d in enumerate(outs)]
        self._signatures[DEFAULT_SIGNATURE] = SignatureInfo(
            DEFAULT_SIGNATURE,
            tuple(_tflite_spec(n, d) for (n, _), d in zip(self._input_index, ins, strict=True)),
            tuple(_tflite_spec(n, d) for (n, _), d in zip(self._output_index, outs,
                                                              strict=True)), None)
        out_names = ", ".join(n for n, _ in self._output_index)
        self.notes.append(
            f"{self.path.name} has no SignatureDef, so its tensors are matched by position: "
            f"inputs named after their tensors ({', '.join(n for n, _ in self._input_index)}),"
            f" outputs by order ({out_names}); if the golden's names differ, convert with "
            "tf.lite.TFLiteConverter.from_saved_model, which keeps the signature")
        self._note_quantized(DEFAULT_SIGNATURE, {n: d for (n, _), d in
                                                 zip(self._input_index, ins, strict=True)})

    def _note_quantized(self, key: str, details: Mapping[str, Mapping[str, Any]]) -> None:
        for name, d in details.items():
            scale = (d.get("quantization") or (0.0, 0))[0]
            if scale:
                self.notes.append(
                    f"input {name!r} of {key!r} is quantized ({_tflite_dtype(d['dtype'])}, "
                    f"scale {scale:g}): the golden's inputs must already be quantized values")

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_feed_shapes(self._signatures[signature], feeds)
        try:
            if signature in self._runners:
                # The runner resizes inputs whose shape changed and reallocates by itself.
                out = self._runners[signature](
                    **{k: np.ascontiguousarray(v) for k, v in feeds.items()})
                return {k: np.array(v) for k, v in out.items()}
            return self._run_positional(feeds)
        except (ValueError, RuntimeError) as exc:
            raise SignatureError(f"signature {signature!r} of {self.path.name} rejected its "
                                 f"inputs: {_first_line(exc)}") from None

    def _run_positional(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self._interpreter
        details = {int(d["index"]): d for d in it.get_input_details()}
        resized = False
        for name, index in self._input_index:
            shape = tuple(feeds[name].shape)
            if tuple(int(s) for s in details[index]["shape"]) != shape:
                it.resize_tensor_input(index, list(shape), strict=False)
                resized = True
        if resized:
            it.allocate_tensors()
        for name, index in self._input_index:
            it.set_tensor(index, np.ascontiguousarray(feeds[name]))
        it.invoke()
        # get_tensor copies; the interpreter reuses its buffers on the next invoke.
        return {name: np.array(it.get_tensor(index)) for name, index in self._output_index}


def _load_tflite(path: Path) -> TFLiteModel:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"cannot load TFLite model {path}: {exc.strerror or exc}") from None
    if head[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"cannot load TFLite model {path}: it is not a TFLite flatbuffer "
                         f"(no {TFLITE_IDENTIFIER.decode()} identifier)")
    interpreter_class, runtime = _tflite_interpreter_class()
    start = time.perf_counter()
    try:
        with _quiet_native_stderr():
            interpreter = interpreter_class(model_path=str(path))
            interpreter.allocate_tensors()
            model = TFLiteModel(path, interpreter, runtime, time.perf_counter() - start)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load TFLite model {path}: {_first_line(exc)}") from None
    return model


# --- Keras ---------------------------------------------------------------------------------


def _keras_spec(name: str, tensor: Any) -> TensorSpec:
    shape = tensor.shape
    dims = None if shape is None else tuple(None if d is None else int(d) for d in shape)
    dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
    return TensorSpec(name=name, dtype=dtype, shape=dims)


class KerasModel(Model):
    """A Keras 3 ``.keras`` file, with the one signature ``model.export()`` would write.

    ``serving_default`` takes the model's input tensors by name and returns ``output_0``..
    (or the keys of a dict-output model), which is what ``model.export()`` writes. So a
    ``.keras`` candidate compares against a golden recorded from the export, and the other
    way round.
    """

    kind = "keras"

    def __init__(self, path: Path, model: Any, load_seconds: float) -> None:
        super().__init__(path, load_seconds)
        self._model = model
        self._graph_fn: Any = None
        inputs = list(getattr(model, "inputs", None) or [])
        outputs = list(getattr(model, "outputs", None) or [])
        if not inputs or not outputs:
            raise ModelError(
                f"cannot load Keras model {path}: it has no defined inputs/outputs (a "
                "subclassed model); export it with model.export(DIR) and use the SavedModel")
        self._inputs_struct = getattr(model, "_inputs_struct", None)
        outputs_struct = getattr(model, "_outputs_struct", None)
        self._dict_outputs = isinstance(outputs_struct, Mapping)
        if isinstance(outputs_struct, Mapping):
            out_specs = [_keras_spec(str(k), t) for k, t in outputs_struct.items()]
        else:
            out_specs = [_keras_spec(f"output_{i}", t) for i, t in enumerate(outputs)]
        self._input_tensors = inputs
        in_specs = sorted((_keras_spec(t.name, t) for t in inputs), key=lambda s: s.name)
        self._signatures = {DEFAULT_SIGNATURE: SignatureInfo(
            DEFAULT_SIGNATURE, tuple(in_specs), tuple(sorted(out_specs, key=lambda s: s.name)),
            "predict")}
        generated = [t.name for t in inputs
                     if t.name.startswith(("input_layer", "keras_tensor"))]
        if generated:
            self.notes.append(
                f"input(s) {', '.join(generated)} of {path.name} have generated names, which "
                "change between saving and exporting; name them with keras.Input(name=...) "
                "so goldens and candidates agree")

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def _structured(self, feeds: Mapping[str, np.ndarray]) -> Any:
        # Feed the structure the model was built with (a dict model wants a dict, a list
        # model a list), as model.export()'s serving function does.
        if self._inputs_struct is not None:
            import keras

            return keras.tree.map_structure(lambda t: feeds[t.name], self._inputs_struct)
        arrays = [feeds[t.name] for t in self._input_tensors]
        return arrays[0] if len(arrays) == 1 else arrays

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import keras

        tf = import_tf()
        if self._graph_fn is None:
            # Eager calls of a Keras model run op by op, several times slower than the
            # graph model.export() serves; timing or comparing those would measure the
            # Python dispatcher, not the model. reduce_retracing keeps one graph for all
            # batch sizes after the first few.
            model = self._model
            self._graph_fn = tf.function(lambda x: model(x, training=False),
                                         reduce_retracing=True)
        structured = tf.nest.map_structure(tf.convert_to_tensor, self._structured(feeds))
        try:
            result = self._graph_fn(structured)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            raise SignatureError(f"signature {signature!r} of {self.path.name} rejected its "
                                 f"inputs: {_first_line(exc)}") from None
        if self._dict_outputs and isinstance(result, Mapping):
            items = [(str(k), v) for k, v in result.items()]
        else:
            items = [(f"output_{i}", v) for i, v in enumerate(keras.tree.flatten(result))]
        return {k: _to_numpy(keras.ops.convert_to_numpy(v)) for k, v in items}


def _load_keras(path: Path) -> KerasModel:
    import_tf()
    start = time.perf_counter()
    try:
        with _quiet_native_stderr():
            import keras

            # safe_mode stays on: a .keras file must not run arbitrary code (Lambda layers)
            # just because a regression gate looked at it.
            model = keras.saving.load_model(str(path))
    except ImportError as exc:
        raise ModelError(f"cannot load Keras model {path}: Keras is not importable "
                         f"({exc}); install it with `pip install keras`") from None
    except Exception as exc:
        detail = _first_line(exc)
        if "safe_mode" in str(exc):
            # Keras suggests safe_mode=False, which a gate must not do to a file it is
            # handed; the export runs the same model without deserializing Python code.
            detail = (f"{detail.split('safe_mode')[0].rstrip(' .,;(')}; snapshot-tool keeps "
                      "safe mode on: export the model with model.export(DIR) and use DIR")
        raise ModelError(f"cannot load Keras model {path}: {detail}") from None
    return KerasModel(path, model, time.perf_counter() - start)


# --- dispatch ------------------------------------------------------------------------------


def _looks_like_tflite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8)[4:8] == TFLITE_IDENTIFIER
    except OSError:
        return False


def load_model(path: str | Path, tag: str = DEFAULT_TAG) -> Model:
    """Load any supported model at ``path``; :class:`ModelError` says why when it cannot.

    ``tag`` is a SavedModel tag set, comma-separated (``"serve"``, ``"serve,gpu"``); other
    kinds have none and ignore it.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model path {str(p)!r} does not exist")
    if is_saved_model(p):
        return _load_saved_model(p, tag)
    if p.is_dir():
        raise ModelError(f"{p} is a directory but not a SavedModel (no saved_model.pb inside)")
    suffix = p.suffix.lower()
    if suffix == ".tflite" or (suffix != ".keras" and _looks_like_tflite(p)):
        return _load_tflite(p)
    if suffix == ".keras":
        return _load_keras(p)
    raise ModelError(f"{p} is not a model snapshot-tool can load (expected a SavedModel "
                     "directory, a .tflite file or a .keras file)")


def model_digest(path: str | Path) -> str:
    """sha256 over a model's files (relative names and contents), stable across copies."""
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    for f in files:
        rel = f.name if f == p else f.relative_to(p).as_posix()
        h.update(rel.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def tensorflow_thread_settings() -> dict[str, int]:
    """TensorFlow's intra/inter-op thread counts as configured (0 = TF chooses)."""
    tf = import_tf()
    return {
        "intra_op_parallelism_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_parallelism_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
    }
