"""A golden's tensors written and read block by block, so memory stays bounded by a few
batches whatever the golden's size. The sha256 of each tensor is computed on the blocks as
they pass, never in a second pass.

* :class:`TensorAppender` (record): rows appended batch by batch into a dataset chunked
  along the sample axis and written whole chunks at a time, or, when compression does not
  pay, contiguous and written ~1 MB at a time.
* :class:`StoredTensor` + :class:`StreamCheck` (compare): rows read in blocks, each tensor's
  checksum verified when its last row has been read.
* :func:`open_stored`: a golden opened with every reader's checks, its small parts (root
  attrs, labels, metrics, latency) read and verified, its inputs and outputs left on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.dtypes import dtype_label, numpy_dtype
from snapshot_tool.errors import GoldenError
from snapshot_tool.golden import schema, validate
from snapshot_tool.golden.io import (
    _check_sha as check_sha,
)
from snapshot_tool.golden.io import (
    _decode as decode,
)
from snapshot_tool.golden.io import (
    _hash_body as hash_body,
)
from snapshot_tool.golden.io import (
    _hash_header as hash_header,
)
from snapshot_tool.golden.io import (
    _record,
    _set_attrs,
    check_unchanged,
    chunk_rows,
    dataset_options,
    file_identity,
    malformed_is_golden_error,
    open_golden,
    read_signature_extras,
    signature_groups,
    verify_golden,
)
from snapshot_tool.golden.io import (
    _want_sha as want_sha,
)
from snapshot_tool.golden.io import (
    _write_tensor as write_tensor,
)
from snapshot_tool.golden.schema import Golden, SignatureGolden, TensorRecord

# HDF5's chunk cache per dataset: a few of our 256 KB chunks, so a block read that
# straddles a chunk boundary (goldens written with other chunk shapes) finds the partial
# chunk still decoded, without a cache that grows the reader's memory by much.
CACHE_BYTES = 2 << 20
# A contiguous (uncompressed) tensor is written about this many bytes of rows at a time:
# at most ~2 MB (or two rows) pending per recorded tensor, a quarter of the writes.
RAW_WRITE_BYTES = 1 << 20


class TensorAppender:
    """One tensor of ``rows`` rows, appended block by block.

    Numeric tensors go to their dataset a whole chunk's worth of rows per write (so no chunk
    is compressed twice; the dataset, chunked or contiguous, is created at the first such
    write) while their sha256 is fed; strings are kept and written whole at the end,
    because whether they need NUL-safe storage is known only once all are seen.
    """

    def __init__(self, group: Any, name: str, rows: int) -> None:
        self.group, self.name, self.rows = group, name, rows
        self.written = 0
        self.label = ""
        self.rest: tuple[int, ...] = ()
        self._ds: Any = None
        self._hash: hashlib._Hash | None = None
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._chunk = 1
        self._strings: list[np.ndarray] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *self.rest)

    def fits(self, block: np.ndarray) -> bool:
        """Whether ``block`` continues this tensor (same dtype, same per-row shape)."""
        return not self.label or (block.ndim >= 1 and dtype_label(block) == self.label
                                  and block.shape[1:] == self.rest)

    def append(self, block: np.ndarray) -> None:
        if not self.label:
            self._start(block)
        elif not self.fits(block):
            raise ValueError(f"{self.name}: block {block.dtype}{block.shape} does not continue "
                             f"{self.label}{self.shape}")
        if self.written + block.shape[0] > self.rows:
            raise ValueError(f"{self.name}: more than the {self.rows} rows announced")
        self.written += block.shape[0]
        if self.label == "string":
            self._strings.append(block)
            return
        self._pending.append(block.view(np.uint16) if self.label == "bfloat16" else block)
        self._pending_rows += block.shape[0]
        if self._pending_rows >= self._chunk:
            self._flush(final=False)

    def _start(self, block: np.ndarray) -> None:
        self.label = dtype_label(block)
        self.rest = tuple(block.shape[1:])
        if self.label == "string":
            return
        stored = np.dtype(np.uint16) if self.label == "bfloat16" else block.dtype
        # Written a chunk's worth of rows at a time, whether or not the tensor is chunked
        # (contiguous when compression does not pay): few, large writes. The dataset is
        # created at the first write (see _create).
        self._chunk = chunk_rows(self.shape, stored.itemsize)
        self._hash = hash_header(self.label, self.shape)

    def _create(self, first: np.ndarray) -> None:
        # Whether compression pays is judged on the tensor's first chunk, as a whole-array
        # write judges it (dataset_options), not on the first batch: a batch of a few rows
        # is too short for lzf to find repeats, and would store compressible rows raw.
        self._ds = self.group.create_dataset(self.name, shape=self.shape, dtype=first.dtype,
                                             **dataset_options(self.shape, first))
        if self._ds.chunks is None:
            # Raw rows need no chunk alignment: written RAW_WRITE_BYTES at a time (or one
            # row, if larger), each write (and its h5py selection) costing the same
            # whatever its size.
            self._chunk = chunk_rows(self.shape, first.dtype.itemsize, RAW_WRITE_BYTES)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        data = (self._pending[0] if len(self._pending) == 1
                else np.concatenate(self._pending, axis=0))
        if self._ds is None:
            self._create(data)
        start = self.written - data.shape[0]
        # Whole chunks now; the tail waits for the next block unless this is the end.
        cut = data.shape[0] if final else (data.shape[0] // self._chunk) * self._chunk
        if cut:
            # Hashed here, a write's worth at a time, in row order: the same bytes as the
            # blocks one by one, in a few large updates instead of one per batch.
            assert self._hash is not None
            hash_body(self._hash, data[:cut])
            self._ds[start:start + cut] = data[:cut]
        self._pending = [data[cut:]] if cut < data.shape[0] else []
        self._pending_rows = data.shape[0] - cut

    def rows_so_far(self) -> np.ndarray:
        """Everything appended so far, as one array (to change how it is stored)."""
        if self.label == "string":
            return np.concatenate(self._strings, axis=0)
        # What was written, and the rows still pending as they are: flushing them would
        # create the dataset (a contiguous one allocated whole) only to delete it.
        parts = [] if self._ds is None else [np.asarray(self._ds[:self.written
                                                               - self._pending_rows])]
        parts.extend(self._pending)
        if not parts:
            return np.empty((0,))
        done = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        if self.label == "bfloat16":
            import ml_dtypes

            done = done.view(ml_dtypes.bfloat16)
        return done

    def discard(self) -> None:
        if self._ds is not None:
            del self.group[self.name]
        self._ds = None
        self._pending, self._pending_rows = [], 0
        self._strings = []

    def finish(self, extra: Mapping[str, Any] | None = None) -> None:
        if self.written != self.rows:
            raise ValueError(f"{self.name}: {self.written} of {self.rows} rows appended")
        if self.label == "string":
            write_tensor(self.group, self.name, np.concatenate(self._strings, axis=0), extra)
            return
        self._flush(final=True)
        assert self._hash is not None
        ds = self._ds
        attrs = TensorRecord(self.label, tuple(self.shape), self._hash.hexdigest()).to_attrs()
        _set_attrs(ds, {**attrs, **(extra or {})})


@dataclass(frozen=True)
class StoredTensor:
    """A tensor left on disk: what it is, and its rows on demand (decoded as recorded)."""

    where: str
    ds: Any
    label: str
    shape: tuple[int, ...]
    path: Path
    # The dataset's tensor attributes, read once (see _stored) rather than per block.
    record: TensorRecord | None = None

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 0

    @property
    def chunk_rows(self) -> int:
        # Blocks of a contiguous tensor (or a scalar) may start at any row.
        chunks = self.ds.chunks
        return int(chunks[0]) if chunks else 1

    @property
    def row_bytes(self) -> int:
        return max(1, int(np.prod(self.shape[1:], dtype=np.int64)) * int(self.ds.dtype.itemsize))

    @property
    def dtype(self) -> np.dtype[Any]:
        return numpy_dtype(self.label) if self.label else np.dtype(self.ds.dtype)

    def read(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` (everything when ``start`` is None), decoded as recorded; a
        damaged chunk is a :class:`GoldenError`."""
        with malformed_is_golden_error(self.path):
            if start is None or not self.shape:
                return decode(self.ds, self.ds[()], self.record)
            return decode(self.ds, self.ds[start:stop], self.record)


class StreamCheck:
    """The sha256 of a stored tensor, fed with its rows in order as they are read."""

    def __init__(self, tensor: StoredTensor, path: Path) -> None:
        self.tensor, self.path = tensor, path
        self.want = want_sha(tensor.ds, tensor.where, path)
        self._hash = hash_header(tensor.label, tensor.shape)
        self.fed = 0

    def feed(self, block: np.ndarray, start: int) -> None:
        if start != self.fed:
            raise ValueError(f"{self.tensor.where}: rows fed out of order ({start} after "
                             f"{self.fed})")
        hash_body(self._hash, block)
        self.fed += block.shape[0] if block.ndim else 1

    def check(self) -> None:
        """Raise :class:`GoldenError` unless every row was fed and the digest matches."""
        rows = self.tensor.rows if self.tensor.shape else 1
        if self.fed != rows:
            raise ValueError(f"{self.tensor.where}: {self.fed} of {rows} rows checked")
        check_sha(self.want, self._hash.hexdigest(), self.tensor.where, self.path)


@dataclass(frozen=True)
class StoredSignature:
    """One signature of an open golden: small parts in memory, tensors on disk."""

    meta: SignatureGolden  # inputs and outputs empty; labels, metrics, latency filled in
    inputs: dict[str, StoredTensor]
    outputs: dict[str, StoredTensor]
    output_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def head(self, rows: int) -> dict[str, np.ndarray]:
        """The first ``rows`` rows of every input (latency timing needs only these)."""
        return {k: t.read(0, rows) for k, t in self.inputs.items()}


@dataclass(frozen=True)
class StoredGolden:
    path: Path
    attrs: dict[str, Any]
    signatures: dict[str, StoredSignature]
    # Inputs and outputs whose contents the bounded validation left to this reader
    # (``open_stored(defer_tensors=True)``): :meth:`check_deferred` before any verdict.
    deferred: frozenset[str] = frozenset()
    identity: tuple[int, ...] = ()

    @property
    def meta(self) -> Golden:
        """The golden's small parts, as a :class:`Golden` without tensor values."""
        return Golden(self.path, self.attrs, {k: s.meta for k, s in self.signatures.items()})

    def check_deferred(self, checked: Collection[str]) -> None:
        """Raise :class:`GoldenError` unless every deferred tensor's sha256 matches: those in
        ``checked`` were verified on the streamed pass, the rest (an input the candidate
        does not take, a signature not compared) are read and hashed now. Also refuses a
        golden changed in place since it was validated."""
        tensors = {t.where: t for s in self.signatures.values()
                   for t in (*s.inputs.values(), *s.outputs.values())}
        for where in sorted(self.deferred - set(checked)):
            if where not in tensors:  # cannot happen: the child defers only these
                raise GoldenError(f"{self.path}: {where} was not checked; re-record it")
            _check_whole(tensors[where], self.path)
        if self.identity:
            check_unchanged(self.path, self.identity)


def _check_whole(t: StoredTensor, path: Path) -> None:
    """One tensor through its sha256, block by block (the validation's own reader)."""
    with malformed_is_golden_error(path):
        got = validate.stream_sha(
            t.ds, t.where, path, hash_header, hash_body,
            lambda ds, raw: decode(ds, raw, t.record),  # attributes read once, not per block
            t.label)
    check_sha(want_sha(t.ds, t.where, path), got, t.where, path)


def _stored(ds: Any, where: str, path: Path) -> StoredTensor:
    rec = _record(ds)
    return StoredTensor(where, ds, rec.dtype, tuple(ds.shape), path, rec)


@contextlib.contextmanager
def open_stored(path: str | Path, *, require_signature: bool = False,
                defer_tensors: bool = False) -> Iterator[StoredGolden]:
    """Open a golden for streaming: the checks every reader makes, labels/metrics/latency
    read and verified, inputs and outputs left on disk for block reads (whose damaged
    chunks are :class:`GoldenError` too, see :meth:`StoredTensor.read`).

    ``defer_tensors``: the caller streams every input and output through a
    :class:`StreamCheck` and calls :meth:`StoredGolden.check_deferred` before it reports
    anything, so the bounded validation need not hash their contents first (see
    :func:`verify_golden`)."""
    p = Path(path)
    before = file_identity(p) if p.is_file() else ()
    # The same bounded validation every reader runs first (layout, sizes, content digest,
    # every checksum but the deferred ones), in a child process under a time limit; the
    # tensors are checked again below as they are read, so the bytes used are the bytes
    # verified.
    verified = verify_golden(p, require_signature=require_signature,
                             defer_tensors=defer_tensors)
    with open_golden(p, cache_bytes=CACHE_BYTES) as f:
        check_unchanged(p, before)
        with malformed_is_golden_error(p):
            attrs = {k: schema.plain(v) for k, v in f.attrs.items()}
            sigs: dict[str, StoredSignature] = {}
            for name, g in signature_groups(f, p).items():
                prefix = "" if g.name == "/" else g.name
                g_in, g_out = g[schema.INPUTS], g[schema.OUTPUTS]
                inputs = {k: _stored(g_in[k], f"{prefix}/{schema.INPUTS}/{k}", p) for k in g_in}
                # A tensor without its checksum never gets here: verify_golden refused it.
                outputs = {k: _stored(g_out[k], f"{prefix}/{schema.OUTPUTS}/{k}", p)
                           for k in g_out}
                meta = read_signature_extras(name, g, p, check=True)
                sigs[name] = StoredSignature(meta, inputs, outputs, meta.output_attrs)
        yield StoredGolden(p, attrs, sigs, frozenset(verified.deferred), before)


def row_block(tensors: Mapping[str, StoredTensor], batch_size: int,
              target_bytes: int = 4 << 20) -> int:
    """Rows read per block: a whole number of batches (so the candidate runs the batches an
    in-memory compare runs), about ``target_bytes`` over all ``tensors``, and when that
    costs at most a few times the target, a whole number of the largest chunk too (so each
    chunk is decompressed once; otherwise the chunk cache keeps the one a block boundary
    cuts). Memory holds a few MB of rows, or one batch when a batch is larger, whatever the
    golden's size."""
    per_row = sum(t.row_bytes for t in tensors.values()) or 1
    chunk = max((t.chunk_rows for t in tensors.values()), default=1)
    step = math.lcm(batch_size, chunk)
    if step * per_row > 4 * target_bytes:
        step = -(-chunk // batch_size) * batch_size
    if step * per_row > 4 * target_bytes:
        # The largest chunk in rows is a narrow tensor's (a 1-D output: 32768 rows per
        # 256 KB chunk) and the rows are wide (an image input): aligning to it would read
        # GBs per block. Whole batches only; the cut chunk stays in the chunk cache.
        step = batch_size
    return max(step, (target_bytes // per_row) // step * step)
