"""The golden file's schema: its layout, its format history, and the typed records a golden
is read into and written from. This is the only module that names an HDF5 attribute, group
or dataset of a golden; :mod:`.io` moves them in and out of the file.

In memory a golden keeps its attributes as read (plain dicts: a newer writer's extra
attributes survive a rewrite, and sharded goldens carry them in their manifest); the typed
records here are the one way code reads or builds them: :class:`RootInfo` for the root,
:class:`OutputRecord` per output, :class:`TensorRecord` per tensor, :class:`OutputMetrics`,
:class:`LatencyRecord` and :class:`HistoryEntry`; code that must name an attribute uses
the constants below, and the ``*_RULES`` tables say what each one must hold. A unit test
(``tests/unit/golden/test_schema_owner.py``) fails when another module spells one.

Format history (bump ``FORMAT_VERSION`` on any change a version-1 reader would misread; every
newer reader keeps reading version 1):

- 1 (snapshot-tool 0.1). Layout::

      /                      root attributes                     (RootInfo)
      /inputs/<name>         the exact inputs fed                (TensorRecord)
      /outputs/<name>        the reference outputs               (TensorRecord + OutputRecord)
      /labels                optional ground truth               (TensorRecord + source)
      /metrics/<output>      group attrs task, threshold (decision threshold of binary tasks)
      /metrics/<output>/<metric>         float64 scalar; attr direction ("higher" | "lower")
      /latency/batch_<n>     group attr batch_size
      /latency/batch_<n>/samples_ns      int64 per-call times; attrs p50, p90, p99, mean, std
                             (ns), warmup_calls, warmup_stable, cold_load_s, first_call_s,
                             calibration (s of the calibration workload on that machine)
      /latency/batch_<n>/cpu_ns          int64 per-call process CPU times (later, see 2)

  Root attributes: ``format`` ("snapshot-tool-golden"), ``format_version``, ``created`` (UTC ISO),
  ``tool_version``, ``model_path``, ``model_digest`` (sha256 over the model's files),
  ``model_kind`` (saved_model | saved_model_tf1 | frozen_graph | tflite | keras), ``signature``
  (the name, or "all"), ``tag`` (the SavedModel tag set), ``seed``, ``num_samples``,
  ``batch_size``, ``inputs_source`` (the inputs file, or "synthesized(seed=N)") and
  ``environment`` (JSON: python, numpy, tensorflow, h5py, platform, machine, CPU model, logical
  and usable CPUs, cgroup CPU quota, thread settings). Goldens written before ``model_kind``,
  ``tag``, ``num_samples``, ``batch_size`` or ``inputs_source`` existed read with the defaults
  below.
  Added without a version bump (a version-1 reader ignores root attributes it does not
  know, and keeps them when it rewrites a golden): ``history`` (JSON list of what was done
  to the golden after recording, oldest first: ``action`` "accept", ``when``, ``who``,
  ``reason``, ``outputs``, ``from``, ``model_path``, ``model_digest``) and, in an obtained
  golden (``compare --save-obtained``), ``obtained_from`` (the golden it was compared with)
  and ``obtained_run`` (which compare wrote it: ``user@host pid N run TAG``, the run its
  report names, since two compares of one golden write the same obtained file).
  A shard golden of a sharded golden (``G.h5.d/``, see :mod:`.sharded`) adds
  ``shard_index``, ``shard_count``, ``row_start`` and ``row_stop`` (its rows in the whole).

  Every tensor dataset carries ``dtype`` (TensorFlow's name: "float32", "bfloat16",
  "string", ...), ``shape`` (JSON list) and ``sha256`` (over dtype, shape and contents);
  inputs and labels too, because compare replays them. An output adds ``batched`` (False:
  the output has no batch dimension and was stacked one entry per batch), and, when two
  runs of the same batch differed, ``nondeterministic`` = True and, for numeric outputs,
  ``spread`` (the largest difference seen between runs; compare widens atol by a margin of
  it). ``/labels`` adds ``source`` (the ``--labels`` argument).

  A golden of several signatures (``record --signature all``) keeps one such set of groups
  per signature under ``/signatures/<name>/`` and sets the root ``signature`` to "all".

  Tensors are stored losslessly: numeric arrays chunked along the sample axis with
  shuffle + lzf (shuffle + gzip before 0.2; both read the same), or contiguous and
  uncompressed when a large tensor would not shrink by 10 % (``golden.io.dataset_options``),
  strings as
  variable-length bytes (``string_storage="vlen_bytes"``) or, when an element holds a NUL
  byte (serialized tf.Example records do), variable-length uint8 arrays
  (``string_storage="vlen_uint8"``); bfloat16 as its raw 16-bit patterns with
  ``dtype="bfloat16"`` (HDF5 has no bfloat16 type, and a float32 widening would not be
  byte-for-byte what the model gave).

- 2 (snapshot-tool 0.2): everything a verdict depends on is covered by one content digest,
  root attr ``content_digest``, checked on every read; optionally signed, root attr
  ``content_hmac`` (HMAC-SHA256 of the digest, key from ``SNAPSHOT_TOOL_HMAC_KEY``). Every
  dataset carries ``sha256`` (metrics and latency samples too). Written with HDF5's
  1.10 file format, which checksums the file's own metadata (superblock, object headers,
  B-trees, heaps), so damage there is refused by HDF5 instead of being parsed. A version-1
  reader would take a version-2 golden whose attributes were edited for intact; the
  version number is also what tells a version-2 reader that a missing digest is damage,
  not age. Version-1 goldens are still read, with the checks version 1 had.

  Added in format 2 without a bump (a reader that does not know them ignores them, and
  judges latency on the wall-time samples as before): ``/latency/batch_<n>/cpu_ns``, int64
  process CPU time (all threads) of each timed call, one per ``samples_ns`` entry, with its
  ``sha256``; and the ``samples_ns`` attribute ``calibration_cpu`` (CPU seconds of the
  calibration workload). The stored latency gate judges on CPU time when both are there.
  Also without a bump: an input may be a scalar dataset (shape ``()``, with the same
  ``dtype``, ``shape`` and ``sha256``), a signature's rank-0 input (a TF1 ``keep_prob``, a
  temperature) fed unchanged with every batch; every other input still has the sample
  axis first. A reader that predates it fails on such a golden's compare (a crash slicing
  the scalar, never a verdict), and reads every other golden as before.

The content digest (see :mod:`snapshot_tool.golden.digest`) is the sha256 of an ordered
manifest: one line per HDF5 object, ``<path> <sha256 of the object's kind, dtype, shape and
every attribute>``, sorted by path. Tensor contents enter through each dataset's ``sha256``
attribute, which every read checks against the data; so a writer streaming a tensor chunk
by chunk hashes it as it goes and the digest is computed from metadata alone at the end.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from snapshot_tool.errors import GoldenError

FORMAT = "snapshot-tool-golden"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

# Root attributes outside the digest: the digest itself and its signature.
CONTENT_DIGEST = "content_digest"
CONTENT_HMAC = "content_hmac"
HMAC_KEY_ENV = "SNAPSHOT_TOOL_HMAC_KEY"

# Attribute names. The typed records below read and write most of them; these constants are
# for code that must name one (validation, sharding, ``show``): nothing else spells them.
FORMAT_ATTR = "format"
FORMAT_VERSION_ATTR = "format_version"
# root
CREATED, TOOL_VERSION, MODEL_PATH, MODEL_DIGEST, MODEL_KIND = (
    "created", "tool_version", "model_path", "model_digest", "model_kind")
SIGNATURE_ATTR, TAG, SEED, NUM_SAMPLES, BATCH_SIZE = (
    "signature", "tag", "seed", "num_samples", "batch_size")
INPUTS_SOURCE, ENVIRONMENT = "inputs_source", "environment"
# every tensor
DTYPE, SHAPE, SHA256, STRING_STORAGE = "dtype", "shape", "sha256", "string_storage"
# outputs
BATCHED, NONDETERMINISTIC, SPREAD = "batched", "nondeterministic", "spread"
# /labels
LABELS_SOURCE = "source"
# /metrics/<output> (group) and /metrics/<output>/<metric>
TASK, THRESHOLD, DIRECTION = "task", "threshold", "direction"
# /latency/batch_<n>/samples_ns (its group carries BATCH_SIZE)
P50, P90, P99, MEAN, STD = "p50", "p90", "p99", "mean", "std"
WARMUP_CALLS, WARMUP_STABLE, COLD_LOAD_S, FIRST_CALL_S, CALIBRATION = (
    "warmup_calls", "warmup_stable", "cold_load_s", "first_call_s", "calibration")
CALIBRATION_CPU = "calibration_cpu"
# Root attributes a shard golden of a sharded golden (``G.h5.d/``) adds to the golden's own:
# where its rows sit in the whole.
SHARD_INDEX, SHARD_COUNT, ROW_START, ROW_STOP = "shard_index", "shard_count", "row_start", \
    "row_stop"
# In memory only: a sharded golden read whole carries the number of its shards among its
# root attributes.
SHARDS = "shards"
# What ``show`` and the HTML page print of the root, in this order.
SUMMARY_ROOT = (FORMAT_VERSION_ATTR, CREATED, TOOL_VERSION, MODEL_PATH, MODEL_DIGEST,
                MODEL_KIND, SIGNATURE_ATTR, SEED, NUM_SAMPLES, BATCH_SIZE, INPUTS_SOURCE)
# The root attributes that say which model a golden's outputs came from and when.
MODEL_ORIGIN = (CREATED, TOOL_VERSION, MODEL_PATH, MODEL_DIGEST, MODEL_KIND)

# Root attributes the writer sets itself, whatever it is handed.
WRITER_OWNED = frozenset({FORMAT_ATTR, FORMAT_VERSION_ATTR, CONTENT_DIGEST, CONTENT_HMAC})

# Groups and datasets of the layout.
SIGNATURES = "signatures"
INPUTS = "inputs"
OUTPUTS = "outputs"
LABELS = "labels"
METRICS = "metrics"
LATENCY = "latency"
SAMPLES = "samples_ns"
CPU_SAMPLES = "cpu_ns"  # beside SAMPLES in /latency/batch_<n>; see the format history
TENSOR_GROUPS = (INPUTS, OUTPUTS)

Direction = Literal["higher", "lower"]


def plain(value: Any) -> Any:
    """An attribute as a plain Python value: text as str, numpy scalars as Python ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def storable(value: Any) -> Any:
    """``value`` as HDF5 can store it. A path whose bytes are not UTF-8 (a latin-1 file name
    on disk) comes from Python with surrogate escapes, which HDF5's UTF-8 text refuses: it
    is stored with those bytes written as ``\\xe9``, for people to read."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


def text(value: Any) -> str:
    """A text attribute (missing: "")."""
    value = plain(value)
    return "" if value is None else str(value)


LATENCY_GROUP_PREFIX = "batch_"


def latency_group(batch_size: int) -> str:
    return f"{LATENCY_GROUP_PREFIX}{batch_size}"


def latency_group_size(name: str) -> int | None:
    """``batch_8`` -> 8; None for a name that is not a latency group."""
    digits = name.removeprefix(LATENCY_GROUP_PREFIX)
    return int(digits) if name.startswith(LATENCY_GROUP_PREFIX) and digits.isdigit() else None


# --- root ----------------------------------------------------------------------------------

_ROOT_INTS = ("seed", "num_samples", "batch_size")
_OPTIONAL_ROOT = ("history", "obtained_from", "obtained_run")


@dataclass(frozen=True)
class RootInfo:
    """The root attributes: where, how and from what a golden was recorded."""

    created: str = ""
    tool_version: str = ""
    model_path: str = ""
    model_digest: str = ""
    model_kind: str = ""  # "" in goldens recorded before it was stored: unknown
    signature: str = ""
    tag: str = "serve"
    seed: int = 0
    num_samples: int = 0
    batch_size: int = 16
    inputs_source: str = ""
    environment: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    history: str = ""  # JSON list (see read_history); written only when there is one
    obtained_from: str = ""  # obtained goldens only
    obtained_run: str = ""  # obtained goldens only: the compare run that wrote it
    # Root attributes this version does not know (a newer writer's), kept as they were.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def writer_attrs(self) -> dict[str, Any]:
        """What a writer is handed: every root attribute but the ones it sets itself."""
        return {k: v for k, v in self.to_attrs().items() if k not in WRITER_OWNED}

    def to_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {**self.extra, "format": FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL_ROOT and not value):
                continue
            attrs[f.name] = (json.dumps(dict(value), sort_keys=True, default=str)
                             if f.name == "environment" else value)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], path: Path) -> RootInfo:
        """The root attributes, checked: a malformed number is a :class:`GoldenError`."""
        values = {k: plain(v) for k, v in attrs.items()}
        for key in _ROOT_INTS:
            if key in values and not isinstance(values[key], int):
                raise GoldenError(f"{path}: root attribute {key} is {values[key]!r}, not an "
                                  "integer; the golden is malformed — re-record it")
        if values.get("batch_size", 1) < 1:
            raise GoldenError(f"{path}: root attribute batch_size is {values['batch_size']!r}, "
                              "not a positive integer; the golden is malformed — re-record it")
        known = {f.name for f in fields(cls)} - {"environment", "extra"}
        kwargs: dict[str, Any] = {k: v if k in _ROOT_INTS else str(v)
                                  for k, v in values.items() if k in known}
        kwargs["format_version"] = int(values.get("format_version", FORMAT_VERSION))
        extra = {k: v for k, v in attrs.items()
                 if k not in known and k not in ("format", "environment")}
        return cls(**kwargs, environment=parse_environment(values.get("environment")),
                   extra=extra)

    @property
    def history_entries(self) -> list[dict[str, Any]]:
        return read_history(self.to_attrs())

    def with_history(self, entry: Mapping[str, Any]) -> RootInfo:
        """This root with ``entry`` appended to its history."""
        return replace(self, history=with_history(self.to_attrs(), entry)[HISTORY_ATTR])


def parse_environment(value: Any) -> dict[str, Any]:
    """The ``environment`` attribute (JSON) as a dict; {} when missing or unreadable, since
    it only ever explains a difference and never decides one."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def root_signature(attrs: Mapping[str, Any]) -> str:
    """The root ``signature`` attribute, unchecked (to find a single signature's groups)."""
    return text(attrs.get(SIGNATURE_ATTR))


def format_of(attrs: Mapping[str, Any]) -> tuple[str, Any]:
    """The root's ``format`` and ``format_version`` as stored (unchecked)."""
    return text(attrs.get(FORMAT_ATTR)), plain(attrs.get(FORMAT_VERSION_ATTR))


# --- tensors -------------------------------------------------------------------------------

VLEN_BYTES = "vlen_bytes"
VLEN_UINT8 = "vlen_uint8"


@dataclass(frozen=True)
class TensorRecord:
    """The attributes every stored tensor carries."""

    dtype: str
    shape: tuple[int, ...]
    sha256: str
    string_storage: str = ""  # strings only: VLEN_BYTES or VLEN_UINT8

    def to_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"dtype": self.dtype}
        if self.string_storage:
            attrs["string_storage"] = self.string_storage
        attrs["shape"] = json.dumps(list(self.shape))
        attrs["sha256"] = self.sha256
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], shape: tuple[int, ...]) -> TensorRecord:
        """``shape`` is the dataset's (the attribute only repeats it for plain h5py users)."""
        return cls(text(attrs.get("dtype")), shape, text(attrs.get("sha256")),
                   text(attrs.get("string_storage")))


TENSOR_ATTRS = frozenset({"dtype", "shape", "sha256", "string_storage"})


@dataclass(frozen=True)
class OutputRecord:
    """What record learned about an output besides its values."""

    batched: bool = True
    nondeterministic: bool = False
    spread: float | None = None  # None: deterministic, or not numeric

    def to_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"batched": bool(self.batched)}
        if self.nondeterministic:
            attrs |= self.noise_attrs(self.spread)
        return attrs

    @staticmethod
    def noise_attrs(spread: float | None) -> dict[str, Any]:
        """The attributes that mark an output nondeterministic (``spread``: None when it is
        not numeric)."""
        attrs: dict[str, Any] = {"nondeterministic": True}
        if spread is not None:
            attrs["spread"] = float(spread)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> OutputRecord:
        spread = plain(attrs.get("spread"))
        return cls(batched=bool(plain(attrs.get("batched", True))),
                   nondeterministic=bool(plain(attrs.get("nondeterministic", False))),
                   spread=None if spread is None else float(spread))


# --- metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMetric:
    value: float
    direction: Direction


@dataclass(frozen=True)
class OutputMetrics:
    """Task metrics recorded for one output, with the task they were computed as."""

    task: str
    threshold: float
    values: dict[str, StoredMetric]

    def group_attrs(self) -> dict[str, Any]:
        return {"task": self.task, "threshold": self.threshold}

    @staticmethod
    def metric_attrs(metric: StoredMetric) -> dict[str, Any]:
        return {"direction": metric.direction}

    @classmethod
    def from_stored(cls, group_attrs: Mapping[str, Any],
                    metrics: Mapping[str, tuple[float, Mapping[str, Any]]], where: str
                    ) -> OutputMetrics:
        """From a metrics group's attributes and its (value, attributes) per metric."""
        return cls(task=text(group_attrs.get("task")),
                   threshold=float(plain(group_attrs.get("threshold", 0.5))),
                   values={name: StoredMetric(float(value), _direction(attrs, f"{where}/{name}"))
                           for name, (value, attrs) in metrics.items()})


def _direction(attrs: Mapping[str, Any], where: str) -> Direction:
    return direction(attrs.get("direction"), where)


def direction(value: Any, where: str) -> Direction:
    """A stored metric direction, checked."""
    name = text(value)
    if name == "higher":
        return "higher"
    if name == "lower":
        return "lower"
    raise GoldenError(f"{where} has direction {name!r}, not 'higher' or 'lower'; the "
                      "golden is malformed — re-record it")


# --- latency -------------------------------------------------------------------------------

_LATENCY_FLOATS = ("p50", "p90", "p99", "mean", "std", "cold_load_s", "first_call_s",
                   "calibration", "calibration_cpu")


@dataclass(frozen=True)
class LatencyRecord:
    """One ``/latency/batch_<n>``: raw per-call samples and the attributes of how they were
    taken (``attrs``, as stored; read them through the properties)."""

    batch_size: int
    samples_ns: np.ndarray
    attrs: dict[str, Any]
    #: Process CPU time per timed call (ns), beside ``samples_ns`` (``cpu_ns`` dataset,
    #: added in format 2 without a bump: older readers ignore it); ``None`` in goldens
    #: recorded before it was stored.
    cpu_ns: np.ndarray | None = None

    @classmethod
    def of(cls, batch_size: int, samples_ns: np.ndarray, *, p50: float, p90: float,
           p99: float, mean: float, std: float, warmup_calls: int, cold_load_s: float,
           first_call_s: float, calibration: float, warmup_stable: bool,
           cpu_ns: np.ndarray | None = None, calibration_cpu: float | None = None
           ) -> LatencyRecord:
        """``p50``..``std`` in ns; ``calibration``: seconds of the calibration workload on the
        recording machine (0: not measured); ``cpu_ns`` and ``calibration_cpu`` the same
        calls' and workload's process CPU time (None: not measured)."""
        attrs: dict[str, Any] = {
            P50: float(p50), P90: float(p90), P99: float(p99), MEAN: float(mean),
            STD: float(std), WARMUP_CALLS: int(warmup_calls),
            COLD_LOAD_S: float(cold_load_s), FIRST_CALL_S: float(first_call_s),
            CALIBRATION: float(calibration), WARMUP_STABLE: bool(warmup_stable)}
        if calibration_cpu is not None:
            attrs[CALIBRATION_CPU] = float(calibration_cpu)
        return cls(batch_size, samples_ns, attrs, cpu_ns)

    def _float(self, key: str) -> float:
        return float(plain(self.attrs.get(key, 0.0)))

    @property
    def p50(self) -> float:
        return self._float("p50")

    @property
    def p90(self) -> float:
        return self._float("p90")

    @property
    def p99(self) -> float:
        return self._float("p99")

    @property
    def warmup_calls(self) -> int:
        return int(plain(self.attrs.get("warmup_calls", 0)))

    @property
    def cold_load_s(self) -> float:
        return self._float("cold_load_s")

    @property
    def first_call_s(self) -> float:
        return self._float("first_call_s")

    @property
    def calibration(self) -> float:
        return self._float("calibration")

    @property
    def calibration_cpu(self) -> float | None:
        """CPU seconds of the calibration workload at record; None in older goldens."""
        value = self.attrs.get(CALIBRATION_CPU)
        return None if value is None else float(plain(value))

    @property
    def warmup_stable(self) -> bool:
        return bool(plain(self.attrs.get("warmup_stable", True)))

    def group_attrs(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    @classmethod
    def from_stored(cls, group: str, group_attrs: Mapping[str, Any], samples: np.ndarray,
                    samples_attrs: Mapping[str, Any], cpu: np.ndarray | None = None
                    ) -> LatencyRecord:
        size = plain(group_attrs.get("batch_size", latency_group_size(group)))
        return cls(int(size), np.asarray(samples, dtype=np.int64),
                   {k: plain(v) for k, v in samples_attrs.items()},
                   None if cpu is None else np.asarray(cpu, dtype=np.int64))


# --- value types: what each attribute a verdict uses must hold ---------------------------


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_float(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) or is_int(v)


def _finite_nonneg(v: Any) -> bool:
    return _is_float(v) and math.isfinite(float(v)) and float(v) >= 0


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _bool(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


def _nonneg_int(v: Any) -> bool:
    return is_int(v) and int(v) >= 0


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

#: Attribute -> (test, what it must be), checked by :mod:`.validate` on every read.
#: Attributes not listed are covered by the digest (format 2) but not interpreted, so their
#: type cannot mislead a verdict.
Rules = dict[str, tuple[Callable[[Any], bool], str]]
ROOT_RULES: Rules = {
    SEED: (_nonneg_int, "a non-negative integer"),
    BATCH_SIZE: (lambda v: is_int(v) and int(v) >= 1, "a positive integer"),
    NUM_SAMPLES: (_nonneg_int, "a non-negative integer"),
    SIGNATURE_ATTR: (_str, "text"), MODEL_KIND: (_str, "text"),
    TAG: (lambda v: _str(v) and all(t.strip() for t in v.split(",")),
          "a tag set such as 'serve'"),
    ENVIRONMENT: (_str, "JSON text"),
}
TENSOR_RULES: Rules = {
    DTYPE: (_str, "text"), SHAPE: (_str, "JSON text"),
    SHA256: (lambda v: _str(v) and bool(SHA256_HEX.match(v)), "64 hex digits"),
    STRING_STORAGE: (lambda v: v in (VLEN_BYTES, VLEN_UINT8), f"{VLEN_BYTES} or {VLEN_UINT8}"),
    SPREAD: (_finite_nonneg, "a finite non-negative number"),
    BATCHED: (_bool, "true or false"), NONDETERMINISTIC: (_bool, "true or false"),
    LABELS_SOURCE: (_str, "text"),
}
METRIC_GROUP_RULES: Rules = {
    TASK: (_str, "text"),
    THRESHOLD: (lambda v: _is_float(v) and math.isfinite(float(v)), "a finite number"),
}
METRIC_RULES: Rules = {
    DIRECTION: (lambda v: v in ("higher", "lower"), "'higher' or 'lower'"),
    SHA256: TENSOR_RULES[SHA256],
}
LATENCY_RULES: Rules = {
    **{k: (_finite_nonneg, "a finite non-negative number")
       for k in (P50, P90, P99, MEAN, STD, COLD_LOAD_S, FIRST_CALL_S, CALIBRATION,
                 CALIBRATION_CPU)},
    WARMUP_CALLS: (_nonneg_int, "a non-negative integer"),
    SHA256: TENSOR_RULES[SHA256],
}


# --- in memory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureGolden:
    """Everything recorded for one signature."""

    signature: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    output_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: np.ndarray | None = None
    labels_source: str = ""
    metrics: dict[str, OutputMetrics] = field(default_factory=dict)
    latency: dict[int, LatencyRecord] = field(default_factory=dict)

    def info(self, output: str) -> OutputRecord:
        return OutputRecord.from_attrs(self.output_attrs.get(output, {}))


@dataclass(frozen=True)
class Golden:
    path: Path
    attrs: dict[str, Any]  # the root attributes as stored; read them through ``info``
    signatures: dict[str, SignatureGolden]

    @property
    def info(self) -> RootInfo:
        return RootInfo.from_attrs(self.attrs, self.path)

    @property
    def environment(self) -> dict[str, Any]:
        return parse_environment(self.attrs.get("environment"))


# --- history and obtained goldens ----------------------------------------------------------

#: Root attr: JSON list of what was done to the golden after it was recorded, oldest first;
#: each entry has ``action`` ("accept"), ``when`` (UTC ISO), ``who`` (user@host),
#: ``reason``, ``outputs`` (the names taken), ``from`` (the obtained file's name) and the
#: ``model_path``/``model_digest`` of the model the taken outputs came from.
HISTORY_ATTR = "history"
#: Root attr of an obtained golden (``compare --save-obtained``): the golden it was compared
#: against, as given to compare.
OBTAINED_FROM_ATTR = "obtained_from"
#: Root attr of an obtained golden: the compare run that wrote it (``user@host pid N run
#: TAG``), as its report says, so a report can be matched with the file it speaks of.
OBTAINED_RUN_ATTR = "obtained_run"
OBTAINED_SUFFIX = ".obtained.h5"


def obtained_path(golden: str | Path) -> Path:
    """``G.obtained.h5`` beside ``G.h5``: where compare saves the candidate's golden."""
    p = Path(golden)
    stem = p.name.removesuffix(".h5") if p.name.endswith(".h5") else p.name
    return p.with_name(stem + OBTAINED_SUFFIX)


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the ``history`` root attribute (stored as a JSON object)."""

    action: str
    when: str
    who: str = ""
    reason: str = ""
    outputs: tuple[str, ...] = ()
    source: str = ""  # JSON key "from": the obtained file's name
    model_path: str = ""
    model_digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "when": self.when, "who": self.who,
                "reason": self.reason, "outputs": list(self.outputs), "from": self.source,
                "model_path": self.model_path, "model_digest": self.model_digest}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> HistoryEntry:
        """Lenient: a hand-edited entry's missing or odd fields read as empty."""
        outputs = entry.get("outputs")
        return cls(**{k: str(entry.get(k, "")) for k in
                      ("action", "when", "who", "reason", "model_path", "model_digest")},
                   source=str(entry.get("from", "")),
                   outputs=tuple(map(str, outputs)) if isinstance(outputs, list) else ())


def read_history(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history entries of a golden's root attributes (empty if it has none or if the
    attribute is not a JSON list of objects, which an old or hand-edited golden may hold)."""
    raw = plain(attrs.get(HISTORY_ATTR))
    if not isinstance(raw, str):
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def with_history(attrs: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """``attrs`` with ``entry`` appended to their history."""
    out = dict(attrs)
    out[HISTORY_ATTR] = json.dumps([*read_history(attrs), dict(entry)], sort_keys=True)
    return out
