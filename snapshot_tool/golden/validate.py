"""Everything a golden must satisfy before any verdict is drawn from it: one function,
:func:`validate`, run by ``verify`` and by every read (``compare``, ``show``).

It bounds what it walks (object count, nesting depth, declared sizes against a budget and
against the bytes actually stored) before reading any data, refuses links, aliases and
virtual datasets, checks the type and range of every attribute a verdict uses, streams every
dataset through its sha256, and, for format 2, checks the content digest and signature.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from snapshot_tool.errors import GoldenError
from snapshot_tool.golden import schema
from snapshot_tool.golden.schema import CONTENT_DIGEST, CONTENT_HMAC, HMAC_KEY_ENV, is_int

# A real golden has a few dozen objects nested at most 5 deep
# (/signatures/<sig>/latency/batch_<n>/samples_ns); these bounds are far above that and
# far below what makes a walk slow or deep.
MAX_OBJECTS = 100_000
MAX_DEPTH = 16
BUDGET_ENV = "SNAPSHOT_TOOL_MAX_GOLDEN_BYTES"
DEFAULT_BUDGET = 16 << 30
# gzip cannot expand data more than ~1032x; a dataset declaring more than this times what
# it stores is a decompression bomb or a declared-but-never-written dataset.
MAX_EXPANSION = 1100
SMALL_BYTES = 1 << 20
STREAM_BYTES = 64 << 20

class Verified(NamedTuple):
    """What validation found: returned by ``verify`` (as JSON from the child process).
    Indexes 0 and 1 are (tensors checked, format version), as verify always returned."""

    tensors: int
    version: int
    datasets: int = 0
    signed: bool = False
    # Tensors whose contents the caller asked to hash itself on its streamed pass (see
    # :func:`deferrable`): their sha256 is NOT yet checked.
    deferred: tuple[str, ...] = ()


def _bad(path: Path, what: str) -> GoldenError:
    return GoldenError(f"{path}: {what}; the golden is damaged or was edited — re-record it")


def budget() -> int:
    text = os.environ.get(BUDGET_ENV)
    if text is None:
        return DEFAULT_BUDGET
    try:
        value = int(text)
    except ValueError:
        raise GoldenError(f"{BUDGET_ENV}={text!r} is not a whole number of bytes") from None
    if value <= 0:
        raise GoldenError(f"{BUDGET_ENV}={text!r} must be positive")
    return value


# --- attribute types ---------------------------------------------------------------------


def check_attrs(node: Node, rules: schema.Rules,
                where: str = "", *, path: Path) -> None:
    for key, (test, what) in rules.items():
        if key in node.attrs and not test(node.attrs[key]):
            raise _bad(path, f"attribute {key} of {where or node.where} is "
                             f"{_short(node.attrs[key])}, not {what}")


def _short(v: Any) -> str:
    # repr keeps text quoted ("1" is not 1); numpy scalars print as the plain value.
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 60 else text[:57] + "..."


def format_version(f: Any, path: Path, supported: tuple[int, ...]) -> int:
    """The golden's format version; strictly an integer HDF5 attribute (not "1", 1.9 or
    True, each of which a lenient int() would have taken for a version)."""
    version = f.attrs.get(schema.FORMAT_VERSION_ATTR)
    if not is_int(version) or int(version) not in supported:
        raise GoldenError(
            f"{path} has golden format version {_short(version)}, which this snapshot-tool "
            f"does not read (supported: {', '.join(map(str, supported))}); upgrade "
            "snapshot-tool or re-record the golden")
    return int(version)


# --- structure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One HDF5 object with its attributes, read once: h5py attribute reads are slow
    (~0.1 ms each), and validation and the digest both need all of them."""

    where: str  # "/" for the root, else "/a/b"
    obj: Any
    attrs: dict[str, Any]
    children: tuple[str, ...] | None  # None for a dataset

    def child(self, name: str) -> str:
        return f"{self.where.rstrip('/')}/{name}"


def walk(f: Any, path: Path) -> dict[str, Node]:
    """Every object from the root down, each reached by exactly one hard link, by path.

    Soft and external links, objects linked from two places (including cycles), virtual
    datasets and committed datatypes are refused: a golden is one self-contained tree.
    """
    import h5py

    if h5py.h5o.get_info(f.id).rc != 1:
        raise _bad(path, "the root group is linked from inside the file")
    nodes: dict[str, Node] = {}
    stack: list[tuple[str, Any, int]] = [("/", f, 0)]
    while stack:
        where, obj, depth = stack.pop()
        children: tuple[str, ...] | None = None
        if isinstance(obj, h5py.Group):
            if depth >= MAX_DEPTH:
                raise _bad(path, f"{where} is nested more than {MAX_DEPTH} deep")
            children = tuple(obj)
        node = Node(where, obj, dict(obj.attrs.items()), children)
        nodes[where] = node
        if len(nodes) > MAX_OBJECTS:
            raise _bad(path, f"it holds more than {MAX_OBJECTS} objects")
        for name in children or ():
            sub = node.child(name)
            link = obj.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise _bad(path, f"{sub} is a {type(link).__name__}; goldens hold no links")
            child = obj[name]
            if h5py.h5o.get_info(child.id).rc != 1:
                raise _bad(path, f"{sub} is linked from more than one place")
            if isinstance(child, h5py.Dataset):
                if child.is_virtual:
                    raise _bad(path, f"{sub} is a virtual dataset; goldens are "
                                     "self-contained")
            elif not isinstance(child, h5py.Group):
                raise _bad(path, f"{sub} is a {type(child).__name__}, not a group or dataset")
            stack.append((sub, child, depth + 1))
    return nodes


def check_sizes(nodes: dict[str, Node], path: Path) -> None:
    """Refuse before reading: a dataset declaring far more than it stores, or a golden
    declaring more than the budget in total."""
    limit = budget()
    total = 0
    for where, node in nodes.items():
        if node.children is not None:
            continue
        obj = node.obj
        count = math.prod(int(n) for n in obj.shape) if obj.shape else 1
        # A variable-length element is at least a 16-byte heap reference once read.
        declared = count * max(obj.dtype.itemsize, 16 if obj.dtype.kind == "O" else 0)
        stored = obj.id.get_storage_size()
        if declared > max(SMALL_BYTES, MAX_EXPANSION * stored):
            raise _bad(path, f"{where} declares {declared} bytes but stores {stored}")
        total += declared
        if total > limit:
            raise GoldenError(f"{path}: the golden declares more than {limit} bytes of data, "
                              f"the read budget; raise {BUDGET_ENV} if it is really this large")


def _group(nodes: dict[str, Node], where: str, path: Path) -> Node:
    node = nodes[where]
    if node.children is None:
        raise _bad(path, f"{where} is not a group")
    return node


def _dataset(nodes: dict[str, Node], where: str, path: Path) -> Node:
    node = nodes[where]
    if node.children is not None:
        raise _bad(path, f"{where} is not a dataset")
    return node


def signature_root(nodes: dict[str, Node], path: Path) -> None:
    """The signature groups have the layout every reader relies on."""
    root = nodes["/"]
    check_attrs(root, schema.ROOT_RULES, path=path)
    if root.child(schema.SIGNATURES) in nodes:
        sigs = _group(nodes, root.child(schema.SIGNATURES), path)
        if not sigs.children:
            raise _bad(path, f"{sigs.where} holds no signature")
        for name in sigs.children:
            _signature_layout(nodes, _group(nodes, sigs.child(name), path), path)
    else:
        _signature_layout(nodes, root, path)


def _signature_layout(nodes: dict[str, Node], g: Node, path: Path) -> None:
    assert g.children is not None
    for grp in schema.TENSOR_GROUPS:
        if grp not in g.children:
            raise GoldenError(f"{path}: missing required group {g.child(grp)}; the golden is "
                              "incomplete — re-record it")
        group = _group(nodes, g.child(grp), path)
        for name in group.children or ():
            check_attrs(_dataset(nodes, group.child(name), path), schema.TENSOR_RULES, path=path)
    if schema.LABELS in g.children:
        check_attrs(_dataset(nodes, g.child(schema.LABELS), path), schema.TENSOR_RULES,
                    path=path)
    if schema.METRICS in g.children:
        _metrics_layout(nodes, _group(nodes, g.child(schema.METRICS), path), path)
    if schema.LATENCY in g.children:
        _latency_layout(nodes, _group(nodes, g.child(schema.LATENCY), path), path)


def _metrics_layout(nodes: dict[str, Node], mg: Node, path: Path) -> None:
    for out in mg.children or ():
        og = _group(nodes, mg.child(out), path)
        check_attrs(og, schema.METRIC_GROUP_RULES, path=path)
        for m in og.children or ():
            ds = _dataset(nodes, og.child(m), path)
            if ds.obj.shape != () or ds.obj.dtype.kind not in "fiu":
                raise _bad(path, f"{ds.where} is not a numeric scalar")
            check_attrs(ds, schema.METRIC_RULES, path=path)


def _latency_layout(nodes: dict[str, Node], lg: Node, path: Path) -> None:
    for key in lg.children or ():
        size = schema.latency_group_size(key)
        if size is None or size < 1:
            raise _bad(path, f"{lg.child(key)} is not named {schema.LATENCY_GROUP_PREFIX}<n> "
                             "with n >= 1")
        bg = _group(nodes, lg.child(key), path)
        if schema.SAMPLES not in (bg.children or ()):
            raise _bad(path, f"{bg.where} holds no {schema.SAMPLES}")
        stored = bg.attrs.get(schema.BATCH_SIZE, size)
        if not is_int(stored) or int(stored) != size:
            raise _bad(path, f"{bg.where} has {schema.BATCH_SIZE} {_short(stored)}")
        ds = _dataset(nodes, bg.child(schema.SAMPLES), path)
        if ds.obj.ndim != 1 or ds.obj.shape[0] < 1 or ds.obj.dtype.kind not in "iu":
            raise _bad(path, f"{ds.where} is not a non-empty list of integers")
        check_attrs(ds, schema.LATENCY_RULES, path=path)
        if schema.CPU_SAMPLES in (bg.children or ()):
            cpu = _dataset(nodes, bg.child(schema.CPU_SAMPLES), path)
            # One CPU time per timed call, taken by the same measurement as the wall times.
            if cpu.obj.ndim != 1 or cpu.obj.shape != ds.obj.shape or \
                    cpu.obj.dtype.kind not in "iu":
                raise _bad(path, f"{cpu.where} is not one integer per sample of {ds.where}")


# --- data --------------------------------------------------------------------------------


def stream_sha(ds: Any, where: str, path: Path,
               header: Callable[[str, tuple[int, ...]], Any],
               feed: Callable[[Any, Any], None], decode: Callable[[Any, Any], Any],
               label: str) -> str:
    """sha256 of a dataset read in blocks of about STREAM_BYTES: bounded memory."""
    h = header(label, tuple(ds.shape))
    if ds.ndim == 0 or ds.shape[0] == 0:
        feed(h, decode(ds, ds[()]))
    else:
        row_bytes = max(1, math.prod(int(n) for n in ds.shape[1:]) * ds.dtype.itemsize)
        step = max(1, STREAM_BYTES // row_bytes)
        for start in range(0, ds.shape[0], step):
            feed(h, decode(ds, ds[start:start + step]))
    return str(h.hexdigest())


def check_digest(nodes: dict[str, Node], path: Path, *, require_signature: bool) -> bool:
    """Format 2: the content digest matches and, when signed and a key is set, the
    signature too. Returns whether the golden is signed."""
    from snapshot_tool.golden.digest import digest_of, hmac_key, signature_matches

    root = nodes["/"].attrs
    stored = root.get(CONTENT_DIGEST)
    if not isinstance(stored, str) or not schema.SHA256_HEX.match(stored):
        raise _bad(path, f"it has no valid {CONTENT_DIGEST} attribute")
    actual = digest_of((n.where, n.obj, n.attrs) for n in nodes.values())
    if actual != stored:
        raise _bad(path, f"its content digest does not match (stored {stored[:12]}…, actual "
                         f"{actual[:12]}…): an attribute, a dataset or the layout changed "
                         "after recording")
    signature = root.get(CONTENT_HMAC)
    signed = signature is not None
    key = hmac_key()
    if require_signature and not signed:
        raise GoldenError(f"{path} is not signed, and a signed golden is required; record it "
                          f"with `snapshot-tool record --sign` and {HMAC_KEY_ENV} set")
    if require_signature and key is None:
        raise GoldenError(f"a signed golden is required but {HMAC_KEY_ENV} is not set; set it "
                          "to the key the golden was signed with")
    if signed and key is not None:
        if not isinstance(signature, str) or not signature_matches(actual, signature, key):
            raise GoldenError(f"{path}: its signature does not match the key in "
                              f"{HMAC_KEY_ENV}: it was signed with another key or changed "
                              "since — do not trust it")
    return signed


# --- tensors left to the reader's streamed pass -------------------------------------------

# HDF5 filters whose decoders check their bounds (zlib's deflate, HDF5's shuffle and
# fletcher32, h5py's lzf): under them a damaged chunk is an error from HDF5, never a crash
# or a loop. A tensor filtered by anything else is hashed in the child as before.
SAFE_FILTERS = frozenset({1, 2, 3, 32000})
# A compressing filter that would grow a chunk is skipped for that chunk (HDF5's optional
# filters), so a chunk stores at most its own size; the slack covers filter headers.
_CHUNK_SLACK = 4096


def deferrable(obj: Any, label: Any, file_size: int) -> bool:
    """Whether a tensor dataset's contents may be hashed by a reader that streams it anyway
    (``compare``) instead of here: numeric (no variable-length heap to parse) and stored as
    its ``dtype`` attribute ``label`` says, its data inside this file, and either contiguous
    (raw bytes, exactly the dataset's size: nothing to decode) or chunked, filtered only by
    :data:`SAFE_FILTERS`, every chunk its index lists inside the file and no larger than a
    chunk's worth of data. The whole chunk index is read here, under the child's time
    bound, so what is left for the reader to parse is the chunks' bytes alone, through
    decoders that cannot hang or crash on them. (Call it on a format-2 golden whose content
    digest matched: then the attributes the reader interprets are verified too.)"""
    import h5py

    if obj.dtype.kind not in "biufc" or obj.is_virtual:
        return False
    if label != str(obj.dtype) and not (label == "bfloat16" and obj.dtype == np.uint16):
        return False
    dcpl = obj.id.get_create_plist()
    if dcpl.get_external_count():
        return False
    if dcpl.get_layout() == h5py.h5d.CONTIGUOUS:
        return _contiguous_inside(obj, file_size)
    if dcpl.get_layout() != h5py.h5d.CHUNKED or obj.chunks is None:
        return False
    if any(dcpl.get_filter(i)[0] not in SAFE_FILTERS for i in range(dcpl.get_nfilters())):
        return False
    limit = math.prod(int(n) for n in obj.chunks) * obj.dtype.itemsize + _CHUNK_SLACK
    return all(offset is not None and 0 <= offset and offset + size <= file_size
               and size <= limit for offset, size in _chunk_extents(obj))


def _contiguous_inside(obj: Any, file_size: int) -> bool:
    """A contiguous dataset's bytes are all written and lie inside the file."""
    try:
        offset = obj.id.get_offset()
    except RuntimeError:
        # h5py takes an address of 0 (where the superblock lies, never a dataset's data)
        # for HDF5's failure: the child then hashes it, and the checksum names the damage.
        return False
    size = int(obj.id.get_storage_size())
    return (offset is not None and offset >= 0 and size == obj.size * obj.dtype.itemsize
            and offset + size <= file_size)


def _chunk_extents(obj: Any) -> list[tuple[int | None, int]]:
    """(file offset, stored bytes) of every chunk the dataset's index lists."""
    extents: list[tuple[int | None, int]] = []
    dsid = obj.id
    try:
        dsid.chunk_iter(lambda info: extents.append((info.byte_offset, info.size)))
    except (AttributeError, NotImplementedError):  # h5py < 3.8 or HDF5 < 1.12.3
        for i in range(dsid.get_num_chunks()):
            info = dsid.get_chunk_info(i)
            extents.append((info.byte_offset, info.size))
    return extents
