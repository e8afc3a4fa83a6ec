"""The model interface every kind implements (:class:`Model`, :class:`SignatureInfo`,
:class:`TensorSpec`), TensorFlow's quiet lazy import, and running a signature over batches.

Nothing here imports TensorFlow at module import; :func:`import_tf` does, when a model loads.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import ModelError, SignatureError
from snapshot_tool.inputs.batching import batches, num_rows, row_slice
from snapshot_tool.progress import Progress, no_progress

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


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature. ``dtype`` is TensorFlow's name ("float32",
    "string", "bfloat16", ...); ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None  # None: unknown rank
    # Where ``shape`` came from: "signature" (the model's own interface), "graph" (a TF1
    # signature_def without tensor_shape, so the graph's tensor said it) or "unknown" (no
    # one says; any shape is accepted).
    shape_source: str = "signature"
    # (scale, zero point) of a quantized integer tensor (a full-integer TFLite model's),
    # whose integers stand for the real numbers ``scale * (q - zero_point)``; None for a
    # tensor that holds its values.
    quantization: tuple[float, int] | None = None

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
def quiet_native_stderr() -> Iterator[None]:
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
        with quiet_native_stderr():
            import tensorflow as tf
    except ImportError as exc:
        raise ModelError(f"TensorFlow is not importable ({exc}); install it with "
                         "`pip install tensorflow`") from None
    return tf


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
            why = "".join(f"; {note}" for note in self.notes)
            raise SignatureError(f"{self.path} has no runnable signatures{why}"
                                 f"{self.no_signatures_hint()}")
        if name is None:
            for default in (DEFAULT_SIGNATURE, FALLBACK_SIGNATURE):
                if default in sigs:
                    return sigs[default]
            if len(sigs) == 1:
                return next(iter(sigs.values()))
            raise SignatureError(
                f"{self.path} has no {DEFAULT_SIGNATURE!r} signature; choose one with "
                f"--signature: {', '.join(sorted(sigs))} (record takes every one with "
                "--signature all)")
        if name not in sigs:
            raise SignatureError(
                f"signature {name!r} not found in {self.path}; "
                f"available: {', '.join(sorted(sigs))}")
        return sigs[name]

    def no_signatures_hint(self) -> str:
        """What to do about a model without signatures, for its kind ("; ..." or "")."""
        return ""

    @abstractmethod
    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output of the signature as a numpy array."""

    def scan(self) -> dict[str, list[str]] | None:
        """Per signature, the ops it runs that touch the file system or print (see
        :mod:`snapshot_tool.models.scan`); None for a kind whose graph is not scanned."""
        return None


def to_numpy(value: Any) -> np.ndarray:
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
                   "Traceback", "Detected unsupported operations",
                   # Saved functions lose their Python stack; TF says so in place of it.
                   "<stack traces unavailable>")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The line Python prints for a raised exception ("ValueError: ..."), as tf.function repeats
# it at the end of an error raised in traced Python code.
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): (.+)$")
# Keras wraps a layer's error: "Exception encountered when calling GRU.call()." and the
# actual reason on the next line.
_KERAS_CALL = re.compile(r"^Exception encountered when calling (?:layer )?['\"]?([\w.]+?)"
                         r"(?:\.call\(\))?['\"]?[.:]?$")


def _user_code_reason(lines: list[str]) -> list[str]:
    """After tf.function's "in user code:" header and the traced Python stack comes the
    raised exception itself; keep it and what follows it."""
    for i in range(len(lines) - 1, 0, -1):
        match = _RAISED.match(lines[i])
        if match:
            return [match.group(1), *lines[i + 1:]]
    return lines[1:]


def _keras_layer_reason(lines: list[str]) -> list[str]:
    match = _KERAS_CALL.match(lines[0])
    if match is None or len(lines) < 2:
        return lines
    return [f"{match.group(1)}: {lines[1]}", *lines[2:]]


def first_line(exc: BaseException) -> str:
    """The line of an exception's text that says what is wrong.

    TensorFlow errors carry a multi-line graph trace, and graph-mode ones start with
    "Graph execution error:" and the node's location before the actual reason; errors
    raised by Python code a tf.function traced (a Keras layer's check) start with "in user
    code:" and the stack.
    """
    lines = [_ANSI.sub("", ln).strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and lines[0] == "in user code:":
        lines = _user_code_reason(lines)
    meaningful = [ln for ln in lines if not ln.startswith(_NOISE_PREFIXES)
                  and not ln.endswith("(most recent call last):")]
    if meaningful:
        meaningful = _keras_layer_reason(meaningful)
    if len(meaningful) > 1 and meaningful[0].endswith("Original error:"):
        # The saver's "Restoring from checkpoint failed. This is most likely due to a
        # mismatch ..." guesses; the line after it is what actually went wrong.
        return meaningful[1]
    if meaningful:
        return meaningful[0]
    return lines[0] if lines else type(exc).__name__


# TensorFlow's reason when a graph's py_func/numpy_function/py_function op looks up a Python
# callback that only the exporting process registered.
_PYTHON_CALLBACK = "Could not find callback with key=pyfunc"


def rejected(info: SignatureInfo, exc: BaseException, rows: int,
             where: str = "") -> SignatureError:
    """The error for a signature call that failed on a batch of ``rows``: TensorFlow's
    reason and what to do about it. ``where`` follows the signature's name (" of m.keras")."""
    reason = first_line(exc)
    if _PYTHON_CALLBACK in reason:
        return SignatureError(
            f"signature {info.name!r}{where} cannot run in this process: it calls Python code "
            "(tf.py_function, tf.numpy_function or py_func) that only the process that "
            "exported it had, and a SavedModel keeps just a key to it; export the model "
            "without that op (TensorFlow ops only)")
    return SignatureError(f"signature {info.name!r}{where} rejected its inputs: {reason}"
                          f"{example_hint(info, reason)}{batch_hint(info, rows)}")


def fixed_to_one_row(info: SignatureInfo) -> bool:
    """Whether ``info`` takes exactly one row per call: every input with a sample dimension
    declares its first dimension as 1 (``x: float32[1, 4]``), as mobile exports, Keras
    models built with ``batch_size=1`` and ONNX conversions do. Scalar inputs do not count,
    nor do inputs of unknown rank (a TF1 ``keep_prob`` placeholder without a shape, given
    by ``--set``) beside ones that fix the batch."""
    specs = [s for s in info.inputs if s.shape is not None and s.shape != ()]
    return bool(specs) and all(s.shape is not None and s.shape[0] == 1 for s in specs)


def one_row_note(model: Model) -> str | None:
    """The note a model with signatures fixed to batch 1 carries, naming them."""
    fixed = sorted(name for name, info in model.signatures.items() if fixed_to_one_row(info))
    if not fixed:
        return None
    return (f"signature(s) {', '.join(repr(n) for n in fixed)} of {model.path.name} fix a "
            "batch of 1: every batch is run one row per call (a batch's latency is that of "
            "its rows one after another)")


def run_rows(info: SignatureInfo, feeds: Mapping[str, np.ndarray],
             call: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
             ) -> dict[str, np.ndarray]:
    """``call(feeds)``, or for a signature fixed to one row (:func:`fixed_to_one_row`) one
    call per row with the outputs joined as one call of the whole batch would return them.

    A graph built for batch 1 may depend on it (a reshape to ``[1, ...]``), and one that
    does not would still be run outside its declared interface; so every --batch-size
    works and a golden from a model with a free batch compares against its batch-1
    conversion. An output with a leading 1 per row is joined along it; one without (a
    scalar per row) gains the batch dimension by stacking, a batch of one row included:
    else a last batch of one row would return that output without its batch dimension."""
    rows = num_rows(feeds)
    if rows < 1 or not fixed_to_one_row(info):
        return call(feeds)
    parts = [call(row_slice(feeds, i, i + 1)) for i in range(rows)]
    return {k: _join_rows(info, k, [p[k] for p in parts]) for k in parts[0]}


def _join_rows(info: SignatureInfo, name: str, values: list[np.ndarray]) -> np.ndarray:
    """The rows' values joined as batches are (:func:`combine`, batches of one row)."""
    try:
        return combine(name, values, [1] * len(values))[0]
    except UnevenOutputError:
        pass  # the row-by-row run has its own advice: no batch size changes it
    raise SignatureError(
        f"output {name!r} of signature {info.name!r} (fixed to batch 1) changes shape from "
        f"row to row ({shape_change([tuple(v.shape) for v in values])}), and a golden holds "
        "one shape per output: record one sample (--num-samples 1), or export the output "
        "padded to a fixed length")


def batch_hint(info: SignatureInfo, rows: int) -> str:
    """For a batch of ``rows`` a model refused: the batch size its interface fixes, if any
    (an export with a static batch, a stateful RNN whose state is sized for one)."""
    fixed = _fixed_first_dims(info.inputs)
    if not fixed and not any(s.shape and s.shape[0] is None for s in info.inputs):
        # Outputs only when the inputs say nothing either way (no inputs, or no shapes): an
        # output of fixed length beside a variable batch (a constant table) fixes no batch.
        fixed = _fixed_first_dims(info.outputs)
    if len(fixed) != 1:
        return ""
    n = fixed.pop()
    if n == rows or n < 1:
        return ""
    return (f"; the signature fixes a first dimension of {n} (a model built for batches of "
            f"{n}, such as a stateful layer): record with --batch-size {n} and a "
            f"--num-samples that is a multiple of {n}")


def _fixed_first_dims(specs: Sequence[TensorSpec]) -> set[int]:
    return {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int)}


def example_hint(info: SignatureInfo, message: str) -> str:
    text = message.lower()
    if any(s.dtype == "string" for s in info.inputs) and ("example" in text
                                                          or "feature" in text):
        return ("; its string input takes serialized tf.train.Example protos, so record with "
                "--inputs FILE.tfrecord")
    return ""


@dataclass(frozen=True)
class Uneven:
    """An output whose per-batch values do not join into one array: its per-sample shape
    (a mask padded to each batch's longest sequence) or, without a batch dimension, its
    whole shape (``tf.where``'s hits) changes from batch to batch. A golden cannot store it
    from several batches; in a candidate it is a shape change the report shows."""

    name: str
    dtype: str  # dtypes.dtype_label of its values
    shapes: tuple[tuple[int, ...], ...]  # per batch, as the model returned them
    rows: tuple[int, ...]  # the batches' input rows
    batched: bool  # every batch's leading dimension was its number of rows

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape the first batch's layout would give the joined array (what a report's
        shape column can show; the message lists the batches' shapes)."""
        first = self.shapes[0]
        if self.batched:
            return (sum(self.rows), *first[1:])
        return (len(self.shapes), *first)

    @property
    def change(self) -> str:
        """:func:`shape_change` of its batches."""
        return shape_change(self.shapes)

    @property
    def batch_axis(self) -> int | None:
        """The dimension after the first that holds each batch's rows while every other
        dimension stays put (a time-major ``[T, batch, ...]`` output), if there is one."""
        if self.batched or len({len(s) for s in self.shapes}) != 1:
            return None
        for axis in range(1, len(self.shapes[0])):
            rest = {s[:axis] + s[axis + 1:] for s in self.shapes}
            if len(rest) == 1 and all(s[axis] == r for s, r in
                                      zip(self.shapes, self.rows, strict=True)):
                return axis
        return None

    def record_error(self) -> str:
        """Why a golden cannot store it, and the batch sizes that would."""
        one_batch = "record with one batch (--batch-size equal to --num-samples)"
        if self.batched:
            return (f"output {self.name!r} changes its per-sample shape between batches "
                    f"({sorted({s[1:] for s in self.shapes})}); {one_batch}")
        axis = self.batch_axis
        if axis is not None:
            return (f"output {self.name!r} holds the batch in dimension {axis}, not the "
                    f"first (time-major), so a batch of other size gives it another shape "
                    f"({self.change}); give a --num-samples that is a multiple of "
                    f"--batch-size, or {one_batch}")
        return (f"output {self.name!r} has no batch dimension and changes shape between "
                f"batches ({self.change}); {one_batch}")


def shape_change(shapes: Sequence[tuple[int, ...]]) -> str:
    """"(2, 2) then (1, 2)": the first batch's shape and the first one that differs."""
    other = next(s for s in shapes if s != shapes[0])
    return f"{shapes[0]} then {other}"


class UnevenOutputError(SignatureError):
    """Raised by :func:`combine` for an :class:`Uneven` output; ``record`` shows it as is,
    a compare reports the output's shape change instead."""

    def __init__(self, message: str, uneven: Uneven) -> None:
        super().__init__(message)
        self.uneven = uneven


def combine(name: str, parts: list[np.ndarray], rows: list[int]) -> tuple[np.ndarray, bool]:
    """Join per-batch outputs. Outputs with a batch dimension are concatenated; outputs
    without one (scalars, per-batch summaries) are stacked, one entry per batch. Raises
    :class:`UnevenOutputError` when the batches' shapes do not line up."""
    batched = all(p.ndim >= 1 and p.shape[0] == r for p, r in zip(parts, rows, strict=True))
    shapes = tuple(tuple(int(d) for d in p.shape) for p in parts)
    if batched and len({s[1:] for s in shapes}) == 1:
        return np.concatenate(parts, axis=0), True
    if not batched and len(set(shapes)) == 1:
        return np.stack(parts, axis=0), False
    uneven = Uneven(name, dtype_label(parts[0]), shapes, tuple(rows), batched)
    raise UnevenOutputError(uneven.record_error(), uneven)


def run_signature(model: Model, sig: SignatureInfo, inputs: Mapping[str, np.ndarray],
                  batch_size: int, progress: Progress = no_progress,
                  stage: str = "running", uneven: dict[str, Uneven] | None = None,
                  ) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Run ``sig`` over ``inputs`` batch by batch; returns outputs and whether each is
    batched. An output whose batches do not join raises :class:`UnevenOutputError`, or,
    given an ``uneven`` dict (a candidate's run), is put there and left out of both."""
    parts: dict[str, list[np.ndarray]] = {}
    rows: list[int] = []
    total = num_rows(inputs)
    done = 0
    progress(stage, 0, total)
    for batch in batches(inputs, batch_size):
        out = model.run(sig.name, batch)
        n = num_rows(batch)
        rows.append(n)
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
        done += n
        progress(stage, done, total)
    combined: dict[str, np.ndarray] = {}
    batched: dict[str, bool] = {}
    for k, ps in parts.items():
        try:
            combined[k], batched[k] = combine(k, ps, rows)
        except UnevenOutputError as exc:
            if uneven is None:
                raise
            uneven[k] = exc.uneven
    return combined, batched
