"""The golden file's schema: its format version, its history, and the typed records a
golden is read into and written from.

Format history (bump ``FORMAT_VERSION`` on any change a version-1 reader would misread):

- 1 (snapshot-tool 0.1): root attrs ``format``, ``format_version``, ``created``,
  ``tool_version``, ``model_path``, ``model_digest``, ``signature``, ``seed``,
  ``environment`` (JSON); groups ``/inputs``, ``/outputs`` (attrs dtype, shape, sha256),
  optional ``/labels``, ``/metrics/<output>/<metric>``, ``/latency/batch_<n>/samples_ns``.
  A golden of several signatures (``record --signature all``) keeps one such set of groups
  per signature under ``/signatures/<name>/`` and sets the root ``signature`` attr to "all".
  Inputs and labels carry a sha256 too, because compare replays them. Strings are
  variable-length bytes, or, when an element holds a NUL byte (serialized tf.Example
  records do), variable-length uint8 arrays with ``string_storage="vlen_uint8"``.

- 2 (snapshot-tool 0.2): everything a verdict depends on is covered by one content digest,
  root attr ``content_digest``, checked on every read; optionally signed, root attr
  ``content_hmac`` (HMAC-SHA256 of the digest, key from ``SNAPSHOT_TOOL_HMAC_KEY``). Every
  dataset carries ``sha256`` (metrics and latency samples too). Written with HDF5's
  1.10 file format, which checksums the file's own metadata (superblock, object headers,
  B-trees, heaps), so damage there is refused by HDF5 instead of being parsed. A version-1
  reader would take a version-2 golden whose attributes were edited for intact; the
  version number is also what tells a version-2 reader that a missing digest is damage,
  not age. Version-1 goldens are still read, with the checks version 1 had.

The content digest (see :mod:`snapshot_tool.golden.digest`) is the sha256 of an ordered
manifest: one line per HDF5 object, ``<path> <sha256 of the object's kind, dtype, shape and
every attribute>``, sorted by path. Tensor contents enter through each dataset's ``sha256``
attribute, which every read checks against the data; so a writer streaming a tensor chunk
by chunk hashes it as it goes and the digest is computed from metadata alone at the end.

Tensors are stored losslessly: numeric arrays chunked with shuffle + gzip, strings as
variable-length bytes, bfloat16 as its raw 16-bit patterns with ``dtype="bfloat16"`` (HDF5
has no bfloat16 type, and a float32 widening would not be byte-for-byte what the model gave).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "snapshot-tool-golden"
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)

# Root attributes outside the digest: the digest itself and its signature.
CONTENT_DIGEST = "content_digest"
CONTENT_HMAC = "content_hmac"
HMAC_KEY_ENV = "SNAPSHOT_TOOL_HMAC_KEY"


@dataclass(frozen=True)
class StoredMetric:
    value: float
    direction: str  # "higher" | "lower"


@dataclass(frozen=True)
class OutputMetrics:
    """Task metrics recorded for one output, with the task they were computed as."""

    task: str
    threshold: float
    values: dict[str, StoredMetric]


@dataclass(frozen=True)
class LatencyRecord:
    batch_size: int
    samples_ns: np.ndarray
    attrs: dict[str, Any]


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


@dataclass(frozen=True)
class Golden:
    path: Path
    attrs: dict[str, Any]
    signatures: dict[str, SignatureGolden]

    @property
    def environment(self) -> dict[str, Any]:
        env = self.attrs.get("environment", "{}")
        try:
            parsed = json.loads(env) if isinstance(env, str) else {}
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}



# --- attributes added in format 1 without a version bump ---------------------------------------
# A version-1 reader ignores root attributes it does not know, so these need no bump.

#: Root attr: JSON list of what was done to the golden after it was recorded, oldest first;
#: each entry has ``action`` ("accept"), ``when`` (UTC ISO), ``who`` (user@host),
#: ``reason``, ``outputs`` (the names taken), ``from`` (the obtained file's name) and the
#: ``model_path``/``model_digest`` of the model the taken outputs came from.
HISTORY_ATTR = "history"
#: Root attr of an obtained golden (``compare --save-obtained``): the golden it was compared
#: against, as given to compare.
OBTAINED_FROM_ATTR = "obtained_from"
OBTAINED_SUFFIX = ".obtained.h5"


def obtained_path(golden: str | Path) -> Path:
    """``G.obtained.h5`` beside ``G.h5``: where compare saves the candidate's golden."""
    p = Path(golden)
    stem = p.name.removesuffix(".h5") if p.name.endswith(".h5") else p.name
    return p.with_name(stem + OBTAINED_SUFFIX)


def read_history(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history entries of a golden's root attributes (empty if it has none or if the
    attribute is not a JSON list of objects, which an old or hand-edited golden may hold)."""
    raw = attrs.get(HISTORY_ATTR)
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
