"""TFLite flatbuffers, run by LiteRT's interpreter (``ai_edge_litert``) or, when that is not
installed, ``tf.lite.Interpreter``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import ModelError, SignatureError
from snapshot_tool.inputs.batching import num_rows
from snapshot_tool.models.base import (
    DEFAULT_SIGNATURE,
    Model,
    SignatureInfo,
    TensorSpec,
    first_line,
    import_tf,
    quiet_native_stderr,
    rejected,
    run_rows,
)
from snapshot_tool.names import graph_key

# Bytes 4..8 of every TFLite flatbuffer (its file identifier).
TFLITE_IDENTIFIER = b"TFL3"


def _interpreter_classes() -> list[tuple[Any, str]]:
    """The interpreters to try, in order: LiteRT's when installed (TF is deprecating
    tf.lite.Interpreter in its favour), then TensorFlow's own, which is the one that can link
    the Flex delegate for models with TensorFlow ops."""
    tf = import_tf()
    try:
        with quiet_native_stderr():
            from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return [(tf.lite.Interpreter, "tf.lite")]
    return [(Interpreter, "ai_edge_litert"), (tf.lite.Interpreter, "tf.lite")]


# How both interpreters name a TensorFlow op they cannot run: "Node number 0
# (FlexParseExampleV2) failed to prepare".
_FLEX_OP = re.compile(r"\((Flex\w+)\)")


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
    scale, zero_point = (detail.get("quantization") or (0.0, 0))[:2]
    return TensorSpec(name=name, dtype=_tflite_dtype(detail["dtype"]), shape=shape,
                      quantization=(float(scale), int(zero_point)) if scale else None)


def _tensor_base_name(tensor_name: str) -> str:
    # "serving_default_x:0" -> "x": the converter prefixes inputs with the signature key.
    # A frozen-graph conversion keeps the graph's scopes ("import/input"), which a golden
    # cannot store as a name: they are written as a frozen graph's are ("import.input").
    base = tensor_name.split(":", 1)[0]
    return graph_key(base.removeprefix(f"{DEFAULT_SIGNATURE}_"))


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
            self._note_quantized(self._signatures[key])
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
        self._note_quantized(self._signatures[DEFAULT_SIGNATURE])

    def _note_quantized(self, sig: SignatureInfo) -> None:
        for spec in sig.inputs:
            if spec.quantization is not None:
                self.notes.append(
                    f"input {spec.name!r} of {sig.name!r} is quantized ({spec.dtype}, "
                    f"scale {spec.quantization[0]:g}): the golden's inputs must already be "
                    "quantized values")

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._signatures

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_feed_shapes(self._signatures[signature], feeds)
        return run_rows(self._signatures[signature], feeds,
                        lambda f: self._run(signature, f))

    def _run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            if signature in self._runners:
                # The runner resizes inputs whose shape changed and reallocates by itself.
                out = self._runners[signature](
                    **{k: np.ascontiguousarray(v) for k, v in feeds.items()})
                return {k: np.array(v) for k, v in out.items()}
            return self._run_positional(feeds)
        except (ValueError, RuntimeError) as exc:
            # rejected() adds the batch size a fixed-batch interface needs, as for TF.
            raise rejected(self._signatures[signature], exc, num_rows(feeds),
                           f" of {self.path.name}") from None

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


def load_tflite(path: Path) -> TFLiteModel:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"cannot load TFLite model {path}: {exc.strerror or exc}") from None
    if not head:
        # What `open(out, "wb").write(converter.convert())` leaves when convert() raises.
        raise ModelError(f"cannot load TFLite model {path}: the file is empty (0 bytes), as a "
                         "conversion that failed after opening its output leaves it; convert "
                         "the model again")
    if head[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"cannot load TFLite model {path}: it is not a TFLite flatbuffer "
                         f"(no {TFLITE_IDENTIFIER.decode()} identifier)")
    flex_ops: list[str] = []
    for interpreter_class, runtime in _interpreter_classes():
        start = time.perf_counter()
        try:
            with quiet_native_stderr():
                interpreter = interpreter_class(model_path=str(path))
                interpreter.allocate_tensors()
                model = TFLiteModel(path, interpreter, runtime, time.perf_counter() - start)
        except (ValueError, RuntimeError) as exc:
            flex_ops = sorted(set(_FLEX_OP.findall(str(exc)))) or flex_ops
            if not _FLEX_OP.search(str(exc)):
                raise ModelError(f"cannot load TFLite model {path}: {first_line(exc)}") from None
            continue  # the next interpreter may link the Flex delegate
        if flex_ops:
            model.notes.insert(0, (
                f"{path.name} has TensorFlow (Flex) ops ({', '.join(flex_ops)}) that LiteRT "
                "cannot run; running it with tf.lite.Interpreter, which links the Flex "
                "delegate"))
        return model
    raise ModelError(_no_flex_delegate(path, flex_ops))


def _no_flex_delegate(path: Path, ops: list[str]) -> str:
    tf = import_tf()
    return (f"cannot load TFLite model {path}: it has TensorFlow (Flex) ops "
            f"({', '.join(ops)}), converted with SELECT_TF_OPS, and neither LiteRT nor "
            f"tf.lite.Interpreter of TensorFlow {tf.__version__} links the Flex delegate "
            "(pip builds before TensorFlow 2.20 did); run it where such a TensorFlow is "
            "installed, convert without SELECT_TF_OPS, or compare the SavedModel it was "
            "converted from")


def looks_like_tflite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8)[4:8] == TFLITE_IDENTIFIER
    except OSError:
        return False

