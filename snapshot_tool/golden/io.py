"""Writing a golden (atomically: temp file + rename), reading it back with every checksum
verified, verifying it in bounded memory, and the content hash of a tensor.

Every read is bounded: :func:`verify_golden` (which ``read_golden`` and ``describe`` call
first) parses the file in a child process with a time limit (:mod:`snapshot_tool.isolate`),
so a file that sends HDF5's C code into an endless loop or a crash ends as one GoldenError.
Only a file that child found valid is then opened by this process.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.atomic import AlreadyExists, replacing, resolve_target
from snapshot_tool.dtypes import dtype_label as model_dtype_label
from snapshot_tool.errors import GoldenError
from snapshot_tool.golden import schema, validate
from snapshot_tool.golden.schema import (
    CONTENT_DIGEST,
    CONTENT_HMAC,
    FORMAT,
    FORMAT_VERSION,
    HMAC_KEY_ENV,
    SUPPORTED_VERSIONS,
    Golden,
    LatencyRecord,
    OutputMetrics,
    SignatureGolden,
    TensorRecord,
)
from snapshot_tool.isolate import ChildFailed, call_isolated
from snapshot_tool.names import first_unstorable


def tensor_sha256(arr: np.ndarray, dtype_label: str | None = None) -> str:
    """A content hash that also covers dtype and shape, so a reshape or cast is caught."""
    h = _hash_header(dtype_label or model_dtype_label(arr), arr.shape)
    _hash_body(h, arr)
    return h.hexdigest()


def _hash_header(label: str, shape: tuple[int, ...]) -> hashlib._Hash:
    h = hashlib.sha256()
    h.update(f"{label}|{shape}|".encode())
    return h


def _hash_body(h: hashlib._Hash, arr: np.ndarray) -> None:
    """Feed ``arr``'s elements in C order; consecutive row blocks of a tensor feed exactly
    what the whole tensor would, so a large dataset can be hashed block by block."""
    if arr.dtype.kind in ("O", "S", "U"):
        for item in arr.reshape(-1):
            b = _as_bytes(item)
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    else:
        a = np.ascontiguousarray(arr)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        # The array's own buffer, not a bytes copy of it: hashlib reads any contiguous
        # buffer (and releases the GIL while it hashes a large one).
        h.update(a.view(np.uint8).reshape(-1).data)


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    return bytes(item)


# Bytes per HDF5 chunk. Chunks run along the sample axis (whole rows), so reading or
# writing a block of rows touches only its own chunks; 256 KB keeps the per-chunk overhead
# (index entries, the padding of the last chunk) small while a reader's block, a whole
# number of chunks of every tensor, stays a few MB (benchmarks/golden_compression.py).
CHUNK_BYTES = 1 << 18
# shuffle + lzf: on float tensors the byte shuffle alone gets most of the saving (their
# exponent bytes repeat), and lzf then costs a fraction of gzip's time for a golden still
# smaller than the raw arrays; h5py ships lzf in every build, so plain h5py reads it
# (benchmarks/golden_compression.py has the measurements; gzip-4 was the old default).
COMPRESSION: dict[str, Any] = {"compression": "lzf", "shuffle": True}
# ...but only where it pays. shuffle + lzf costs ~5 ms of CPU per MB written (and a pass
# to undo on every read); on the values models often see or give (random-like floats:
# embeddings, normalized noise, softmax scores, float16) it saves 0-9 %, which is that CPU
# time spent for bytes that cost less than that to write or to move at ~100 MB/s, while
# ids, masks, one-hots, ReLU activations and natural images shrink by 20-90 %. So a tensor
# of at least TRIAL_BYTES is compressed only when its first chunk, compressed on trial,
# shrinks by MIN_SAVING or more; otherwise it is stored contiguous and uncompressed (no
# chunk index either: the raw bytes plus an object header). Smaller tensors are always
# compressed: the trial would cost about what it could save. Reading is the same either
# way for plain h5py; the choice changes the file's size, never its contents.
TRIAL_BYTES = 1 << 20
MIN_SAVING = 0.10
# The in-memory file (and its one dataset) a trial compresses into; never part of a golden.
# Each trial's file has a name of its own: HDF5 refuses to create a file under the name of
# one still open, and goldens may be written from several threads of one process at once
# (a Beam runner's worker threads, a library user's).
_TRIAL = "compression-trial"
_TRIALS = itertools.count()


def chunk_rows(shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES) -> int:
    """Rows per chunk of a tensor of ``shape``: ~``target`` bytes of whole rows (at least
    one row, at most all of them)."""
    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    return max(1, min(shape[0], target // row))


def dataset_options(shape: tuple[int, ...], sample: np.ndarray) -> dict[str, Any]:
    """How a numeric tensor of ``shape`` is stored, judged on ``sample`` (its first rows,
    in the stored dtype): chunked along the sample axis and compressed, or, when a large
    tensor would not shrink by MIN_SAVING, contiguous and uncompressed. Scalars and empty
    tensors cannot be chunked and are stored as they are."""
    if len(shape) == 0 or 0 in shape:
        return {}
    rows = chunk_rows(shape, sample.dtype.itemsize)
    large = int(np.prod(shape, dtype=np.int64)) * sample.dtype.itemsize >= TRIAL_BYTES
    if large and compressed_fraction(sample[:rows]) > 1 - MIN_SAVING:
        return {}
    return {"chunks": (rows, *shape[1:]), **COMPRESSION}


def compressed_fraction(sample: np.ndarray) -> float:
    """What COMPRESSION leaves of ``sample``'s bytes, stored as one chunk of an in-memory
    HDF5 file: the very filters a golden would use, so the trial cannot disagree with them
    (a chunk that would grow is stored raw, so this is at most 1 plus a few bytes)."""
    import h5py

    if sample.size == 0:
        return 1.0
    with h5py.File(f"{_TRIAL}-{next(_TRIALS)}", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset(_TRIAL, data=sample, chunks=sample.shape, **COMPRESSION)
        return float(ds.id.get_storage_size()) / sample.nbytes


def _write_tensor(group: Any, name: str, arr: np.ndarray,
                  extra: Mapping[str, Any] | None = None) -> None:
    import h5py

    label = model_dtype_label(arr)
    digest = tensor_sha256(arr, label)
    storage = ""
    if label == "string":
        items = [_as_bytes(x) for x in arr.reshape(-1)]
        flat = np.empty(arr.size, dtype=object)
        if any(b"\0" in b for b in items):
            # HDF5 variable-length strings end at the first NUL, and serialized protos
            # (tf.Example) are full of them: store such tensors as byte arrays instead.
            flat[:] = [np.frombuffer(b, dtype=np.uint8) for b in items]
            ds = group.create_dataset(name, data=flat.reshape(arr.shape),
                                      dtype=h5py.vlen_dtype(np.uint8))
            storage = schema.VLEN_UINT8
        else:
            flat[:] = items
            ds = group.create_dataset(name, data=flat.reshape(arr.shape),
                                      dtype=h5py.vlen_dtype(bytes))
            storage = schema.VLEN_BYTES
    else:
        data = arr.view(np.uint16) if label == "bfloat16" else arr
        ds = group.create_dataset(name, data=data, **dataset_options(data.shape, data))
    _set_attrs(ds, TensorRecord(label, tuple(arr.shape), digest, storage).to_attrs())
    _set_attrs(ds, extra or {})


def _set_attrs(obj: Any, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        obj.attrs[k] = schema.storable(v)


def _write_signature(root: Any, sg: SignatureGolden) -> None:
    g_in = root.create_group(schema.INPUTS)
    for name, arr in sorted(sg.inputs.items()):
        _write_tensor(g_in, name, arr)
    g_out = root.create_group(schema.OUTPUTS)
    for name, arr in sorted(sg.outputs.items()):
        _write_tensor(g_out, name, arr, sg.output_attrs.get(name, {}))
    write_extras(root, sg)


def write_extras(root: Any, sg: SignatureGolden) -> None:
    """Everything of a signature but its inputs and outputs: labels, metrics, latency.
    (A streaming record writes inputs and outputs itself, then this.)"""
    if sg.labels is not None:
        _write_tensor(root, schema.LABELS, sg.labels, {schema.LABELS_SOURCE: sg.labels_source})
    if sg.metrics:
        g_m = root.create_group(schema.METRICS)
        for out_name, om in sorted(sg.metrics.items()):
            g = g_m.create_group(out_name)
            _set_attrs(g, om.group_attrs())
            for metric, sm in sorted(om.values.items()):
                value = np.float64(sm.value)
                ds = g.create_dataset(metric, data=value)
                _set_attrs(ds, om.metric_attrs(sm))
                ds.attrs[schema.SHA256] = tensor_sha256(np.asarray(value))
    if sg.latency:
        g_l = root.create_group(schema.LATENCY)
        for bs, rec in sorted(sg.latency.items()):
            g = g_l.create_group(schema.latency_group(bs))
            samples = np.asarray(rec.samples_ns, dtype=np.int64)
            ds = g.create_dataset(schema.SAMPLES, data=samples)
            _set_attrs(ds, rec.attrs)
            ds.attrs[schema.SHA256] = tensor_sha256(samples)
            if rec.cpu_ns is not None:
                cpu = np.asarray(rec.cpu_ns, dtype=np.int64)
                g.create_dataset(schema.CPU_SAMPLES, data=cpu).attrs[schema.SHA256] = \
                    tensor_sha256(cpu)
            _set_attrs(g, rec.group_attrs())


class _DroppingFile(io.RawIOBase):
    """The temp file as h5py's file object: after the first failed write (disk full,
    RLIMIT_FSIZE) later writes are dropped instead of failing.

    With HDF5's own POSIX driver a failed write leaves the file half-closed inside the
    library, and HDF5 crashes the interpreter at exit trying to flush it again (exit 139).
    Dropping writes lets h5py close the file cleanly; the error is raised afterwards, and
    the temp file is deleted, so nothing dropped is ever read.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fh = path.open("r+b", buffering=0)
        self.error: OSError | None = None
        self._abandoned = False

    def abandon(self) -> None:
        """This file will not be published (an exception, a SIGTERM). A stop that lands
        inside h5py's close leaves the HDF5 file open until its last object is freed, which
        can be after this file is closed; HDF5 then flushes and truncates through it. Those
        calls go nowhere instead of failing on a closed file (a traceback on stderr)."""
        self._abandoned = True

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._abandoned:
            return 0
        return self._fh.readinto(buffer) or 0

    def write(self, data: Any) -> int:
        n = len(memoryview(data).cast("B"))
        if self.error is None and not self._abandoned:
            try:
                view = memoryview(data).cast("B")
                while view:
                    view = view[self._fh.write(view) or 0:]
            except OSError as exc:
                self.error = exc
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._abandoned:
            return offset
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return 0 if self._abandoned else self._fh.tell()

    def truncate(self, size: int | None = None) -> int:
        if self._abandoned:
            return size or 0
        if self.error is None:
            try:
                return self._fh.truncate(size)
            except OSError as exc:
                self.error = exc
        return self._fh.tell() if size is None else size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._fh.close()
        super().close()


# HDF5 1.10 file format: checksummed superblock, object headers, B-trees and heaps, so
# damaged metadata is refused by HDF5 itself rather than parsed. Readable by HDF5 >= 1.10
# (h5py >= 2.7); "latest" would lock out every reader older than this one's HDF5.
LIBVER = ("v110", "v110")


def signing_key(sign: bool) -> bytes | None:
    """The HMAC key a golden is signed with (``--sign``), or None when it is not signed;
    asked for and missing is an input error, reported before anything is written."""
    from snapshot_tool.golden.digest import hmac_key

    if not sign:
        return None
    key = hmac_key()
    if key is None:
        raise GoldenError(f"--sign needs the signing key in the environment variable "
                          f"{HMAC_KEY_ENV}")
    return key


def write_golden(path: str | Path, attrs: Mapping[str, Any],
                 signatures: Mapping[str, SignatureGolden], *, force: bool = False,
                 sign: bool = False) -> Path:
    """Write a golden to a temp file beside ``path`` and rename it into place.

    The rename is atomic on POSIX filesystems, so readers see the old golden or the new
    one, never a mix, and an interrupted record leaves the old golden untouched. A symlink
    at ``path`` keeps pointing at the (replaced) golden. ``sign`` adds an HMAC of the
    content digest with the key in ``SNAPSHOT_TOOL_HMAC_KEY``.
    """
    p = Path(path)
    _check_names(signatures)
    with golden_writer(p, force=force, sign=sign) as f:
        write_root_attrs(f, attrs)
        if len(signatures) == 1:
            _write_signature(f, next(iter(signatures.values())))
        else:
            g = f.create_group(schema.SIGNATURES)
            for name, sg in sorted(signatures.items()):
                _write_signature(g.create_group(name), sg)
    return p


def _check_names(signatures: Mapping[str, SignatureGolden]) -> None:
    """Refuse tensor names HDF5 would turn into groups (``head/probs``): the file written
    would read back as a damaged golden."""
    for sg in signatures.values():
        bad = first_unstorable(sg.inputs, sg.outputs)
        if bad:
            kind, name, why = bad
            raise GoldenError(f"{kind} {name!r} of signature {sg.signature!r} cannot be stored "
                              f"in a golden: {why}")


def write_root_attrs(f: Any, attrs: Mapping[str, Any]) -> None:
    # Attributes of a golden being rewritten (accept, shards) may carry its old format,
    # digest and signature; this file gets its own.
    for k, v in attrs.items():
        if k not in schema.WRITER_OWNED:
            f.attrs[k] = schema.storable(v)
    f.attrs[schema.FORMAT_ATTR] = FORMAT
    f.attrs[schema.FORMAT_VERSION_ATTR] = FORMAT_VERSION


@contextlib.contextmanager
def _open_for_write(tmp: Path, target: Path, key: bytes | None) -> Iterator[Any]:
    """The new golden's HDF5 file; its content digest (and signature) is written when the
    block ends, over whatever the block wrote."""
    import h5py

    from snapshot_tool.golden.digest import content_digest, sign

    out = _DroppingFile(tmp)
    try:
        with h5py.File(out, "w", libver=LIBVER) as f:
            yield f
            digest = content_digest(f)
            f.attrs[CONTENT_DIGEST] = digest
            if key is not None:
                f.attrs[CONTENT_HMAC] = sign(digest, key)
    except BaseException as exc:
        out.abandon()
        if out.error is None or not isinstance(exc, Exception):
            raise
    finally:
        out.close()
    if out.error is not None:
        reason = out.error.strerror or str(out.error)
        raise GoldenError(f"cannot write golden {target}: {reason}; the old golden (if any) "
                          "is unchanged") from None


@contextlib.contextmanager
def golden_writer(path: Path, *, force: bool, sign: bool = False) -> Iterator[Any]:
    """An open HDF5 file that becomes the golden at ``path`` when the block ends cleanly
    (:func:`write_golden`'s guarantees: temp file, digest, atomic replace), for a writer
    that streams its tensors in (``record``)."""
    p = Path(path)
    check_writable(p, force)
    key = signing_key(sign)
    try:
        # Without --force the golden is put in place only if nothing has its name yet: a
        # second record of the same golden, started at once, must not replace the first's.
        with replacing(p, exclusive=not force) as tmp:
            with _open_for_write(tmp, p, key) as f:
                yield f
            # A late check as well as the early one: another process may have created the
            # golden while the model ran, and --force was not given to overwrite *that*.
            check_writable(p, force)
    except AlreadyExists:
        raise GoldenError(f"golden {p} was written by another process while this one ran; "
                          "it was kept. Pass --force to replace it") from None


def signature_group(f: Any, name: str, several: bool) -> Any:
    """Where a signature's groups go: the root, or /signatures/<name> in a golden of several."""
    if not several:
        return f
    parent = f[schema.SIGNATURES] if schema.SIGNATURES in f else \
        f.create_group(schema.SIGNATURES)
    return parent.create_group(name)


def check_writable(path: Path, force: bool) -> None:
    if path.is_dir():
        from snapshot_tool.golden.sharded import is_sharded

        if is_sharded(path):
            raise GoldenError(f"golden {path} is a sharded golden (a directory that "
                              "`--runner beam` writes); re-record it with --runner beam, or "
                              "give a file name (G.h5) for a single-file golden")
        raise GoldenError(f"golden path {path} is a directory; give a file name such as "
                          f"{path / 'golden.h5'}")
    resolve_target(path)
    if path.exists() and not force:
        raise GoldenError(f"golden {path} already exists; pass --force to replace it")


@contextlib.contextmanager
def open_golden(path: str | Path, *, cache_bytes: int | None = None) -> Iterator[Any]:
    """Open a golden read-only after the checks every reader needs. Unbounded: call it on
    a file :func:`verify_golden` passed, or inside the verifying child."""
    import h5py

    p = Path(path)
    _check_path(p)
    try:
        f = h5py.File(p, "r", **({"rdcc_nbytes": cache_bytes} if cache_bytes else {}))
    except OSError as exc:
        raise GoldenError(f"cannot open golden {p}: {exc}") from None
    try:
        fmt, _ = schema.format_of(f.attrs)
        if fmt != FORMAT:
            raise GoldenError(f"{p} is an HDF5 file but not a snapshot-tool golden "
                              f"(format attribute {fmt[:60]!r})")
        validate.format_version(f, p, SUPPORTED_VERSIONS)
        yield f
    finally:
        f.close()


def _check_path(p: Path) -> None:
    import h5py

    if not p.exists():
        raise GoldenError(f"golden {str(p)!r} not found; record one with "
                          f"`snapshot-tool record MODEL --golden {p}`")
    if not p.is_file():
        raise GoldenError(f"{p} is not a regular file, so not a snapshot-tool golden")
    if not os.access(p, os.R_OK):
        raise GoldenError(f"golden {p} is not readable (permission denied)")
    try:
        hdf5 = h5py.is_hdf5(str(p))
    except OSError as exc:
        raise GoldenError(f"cannot read golden {p}: {exc}") from None
    if not hdf5:
        raise GoldenError(f"{p} is not an HDF5 file, so not a snapshot-tool golden")


def _record(ds: Any) -> TensorRecord:
    return TensorRecord.from_attrs(ds.attrs, tuple(ds.shape))


def _decode(ds: Any, raw: Any, rec: TensorRecord | None = None) -> np.ndarray:
    """Stored representation -> the tensor as recorded (strings as bytes, bfloat16).
    ``rec``: the dataset's attributes, when the caller has read them already (a reader of
    many blocks of one tensor reads them once, not per block)."""
    rec = rec or _record(ds)
    if rec.dtype == "string":
        byte_arrays = rec.string_storage == schema.VLEN_UINT8
        raw_arr = np.asarray(raw, dtype=object) if np.ndim(raw) else None
        arr = np.empty(np.shape(raw) if raw_arr is not None else (), dtype=object)
        items = raw_arr.reshape(-1) if raw_arr is not None else [raw]
        arr.reshape(-1)[:] = [np.asarray(x, dtype=np.uint8).tobytes() if byte_arrays
                              else _as_bytes(x) for x in items] if arr.size else []
        return arr
    if rec.dtype == "bfloat16":
        import ml_dtypes

        return np.asarray(raw, dtype=np.uint16).view(ml_dtypes.bfloat16)
    return np.asarray(raw)


def _want_sha(ds: Any, where: str, path: Path) -> str:
    rec = _record(ds)
    if not rec.sha256:
        raise GoldenError(f"{path}: {where} has no sha256 attribute; the golden is "
                          "incomplete — re-record it")
    return rec.sha256


def _check_sha(want: str, got: str, where: str, path: Path) -> None:
    if got != want:
        raise GoldenError(f"{path}: {where} fails its sha256 check (stored {want[:12]}…, "
                          f"actual {got[:12]}…); the golden is corrupt — re-record it")


def _read_tensor(ds: Any, where: str, path: Path, check: bool) -> np.ndarray:
    rec = _record(ds)
    arr = _decode(ds, ds[()])
    if check:
        _check_sha(_want_sha(ds, where, path), tensor_sha256(arr, rec.dtype), where, path)
    return arr


def signature_groups(f: Any, path: Path) -> dict[str, Any]:
    """Every signature's group (layout already checked by :func:`verify_golden`)."""
    if schema.SIGNATURES in f:
        return {name: f[schema.SIGNATURES][name] for name in f[schema.SIGNATURES]}
    return {schema.root_signature(f.attrs) or "serving_default": f}


def _read_signature(name: str, g: Any, path: Path, check: bool) -> SignatureGolden:
    prefix = "" if g.name == "/" else g.name
    g_in, g_out = g[schema.INPUTS], g[schema.OUTPUTS]
    inputs = {k: _read_tensor(g_in[k], f"{prefix}/{schema.INPUTS}/{k}", path, check)
              for k in g_in}
    outputs = {k: _read_tensor(g_out[k], f"{prefix}/{schema.OUTPUTS}/{k}", path, check)
               for k in g_out}
    return replace(read_signature_extras(name, g, path, check), inputs=inputs, outputs=outputs)


def read_signature_extras(name: str, g: Any, path: Path, check: bool) -> SignatureGolden:
    """A signature's small parts (output attrs, labels, metrics, latency) without the values
    of its inputs and outputs: what a reader that streams those needs up front."""
    prefix = "" if g.name == "/" else g.name
    g_out = g[schema.OUTPUTS]
    # Output attributes are kept as stored (a newer writer's extras survive a rewrite);
    # schema.OutputRecord reads them.
    output_attrs = {k: {a: schema.plain(v) for a, v in g_out[k].attrs.items()
                        if a not in schema.TENSOR_ATTRS} for k in g_out}
    labels = None
    labels_source = ""
    if schema.LABELS in g:
        labels = _read_tensor(g[schema.LABELS], f"{prefix}/{schema.LABELS}", path, check)
        labels_source = schema.text(g[schema.LABELS].attrs.get(schema.LABELS_SOURCE))
    return SignatureGolden(name, {}, {}, output_attrs, labels, labels_source,
                           read_metrics(g, f"{path}: {prefix}/{schema.METRICS}"),
                           _read_latency(g))


def read_metrics(g: Any, where: str = "metrics") -> dict[str, OutputMetrics]:
    """A signature group's recorded task metrics (small: read without its tensors)."""
    if schema.METRICS not in g:
        return {}
    return {out: OutputMetrics.from_stored(
                mg.attrs, {m: (float(mg[m][()]), mg[m].attrs) for m in mg}, f"{where}/{out}")
            for out, mg in g[schema.METRICS].items()}


def _read_latency(g: Any) -> dict[int, LatencyRecord]:
    if schema.LATENCY not in g:
        return {}
    records = (LatencyRecord.from_stored(
                   key, lg.attrs, lg[schema.SAMPLES][()], lg[schema.SAMPLES].attrs,
                   lg[schema.CPU_SAMPLES][()] if schema.CPU_SAMPLES in lg else None)
               for key, lg in g[schema.LATENCY].items())
    return {rec.batch_size: rec for rec in records}


@contextlib.contextmanager
def malformed_is_golden_error(path: Path) -> Iterator[None]:
    """A golden edited or damaged by hand can break our reader in many small ways (a group
    where a dataset belongs, a text attr where a number belongs, an unreadable chunk); each
    is one clear GoldenError, never a traceback."""
    try:
        yield
    except GoldenError:
        raise
    except OSError as exc:
        raise GoldenError(f"{path}: cannot read the golden's data ({exc}); the file is "
                          "corrupt — re-record it") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        raise GoldenError(f"{path}: malformed golden ({type(exc).__name__}: {exc}); "
                          "re-record it") from None


# Rows per block when a reader streams a dataset: bounded memory for any golden size.
STREAM_BYTES = validate.STREAM_BYTES

READ_TIMEOUT_ENV = "SNAPSHOT_TOOL_READ_TIMEOUT"
# Parsing and hashing run at well over 20 MB/s even on a slow, busy machine; a small golden
# gets 15 s, far beyond the fraction of a second it needs.
_BASE_TIMEOUT_S = 15.0
_BYTES_PER_S = 20 << 20


def read_timeout(path: Path) -> float:
    text = os.environ.get(READ_TIMEOUT_ENV)
    if text is not None:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise GoldenError(f"{READ_TIMEOUT_ENV}={text!r} must be a positive number of "
                              "seconds")
        return value
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    return _BASE_TIMEOUT_S + size / _BYTES_PER_S


def file_identity(p: Path) -> tuple[int, ...]:
    st = p.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_unchanged(p: Path, before: tuple[int, ...]) -> None:
    """``p`` is still the file ``before`` (its :func:`file_identity`) named: what was validated
    is what was read. A golden replaced or written in place meanwhile is refused."""
    if file_identity(p) != before:
        raise GoldenError(f"golden {p} changed while it was being read; run again once "
                          "whatever writes it has finished")


def read_golden(path: str | Path, *, check: bool = True,
                require_signature: bool = False) -> Golden:
    """Read a whole golden into memory after :func:`verify_golden` passed it, verifying
    every tensor checksum again on the way (the bytes read here are the bytes used)."""
    p = Path(path)
    if _sharded(p):
        from snapshot_tool.golden.sharded import read_sharded

        return read_sharded(p, check=check, require_signature=require_signature)
    _check_path(p)
    before = file_identity(p)
    verify_golden(p, require_signature=require_signature)
    with malformed_is_golden_error(p), open_golden(p) as f:
        attrs = {k: schema.plain(v) for k, v in f.attrs.items()}
        sigs = {name: _read_signature(name, g, p, check)
                for name, g in signature_groups(f, p).items()}
    check_unchanged(p, before)
    # The root's numbers were checked by verify_golden (schema.ROOT_RULES, stricter than
    # RootInfo.from_attrs), on this very file.
    return Golden(p, attrs, sigs)


def verify_golden(path: str | Path, *, require_signature: bool = False,
                  defer_tensors: bool = False) -> validate.Verified:
    """The one validation every reader relies on (schema, attribute types, sizes, links,
    every checksum, the content digest and signature), in a child process under a time
    bound. Raises :class:`GoldenError` on the first problem.

    ``defer_tensors`` (a reader that streams every input and output through its sha256
    anyway, and checks them before it reports anything): the child leaves the contents of
    the inputs and outputs that :func:`validate.deferrable` allows unhashed, and lists them
    in ``Verified.deferred``; everything else, their metadata and chunk indexes included,
    is checked as always. It saves reading the bulk of a large golden twice."""
    p = Path(path)
    if _sharded(p):
        from snapshot_tool.golden.sharded import verify_sharded

        return verify_sharded(p, require_signature=require_signature)
    _check_path(p)
    doc = call_isolated("snapshot_tool.golden.io:_verify_in_child",
                       [str(p), require_signature, defer_tensors], timeout=read_timeout(p),
                       what=f"reading golden {p}", errors={"GoldenError": GoldenError})
    doc["deferred"] = tuple(doc.get("deferred", ()))
    return validate.Verified(**doc)


def root_attrs(path: str | Path) -> dict[str, Any]:
    """A golden's root attributes (text and numbers), read under the same time bound as
    every read, without the full verification (``status`` lists many goldens)."""
    p = Path(path)
    _check_path(p)
    attrs: dict[str, Any] = call_isolated(
        "snapshot_tool.golden.io:_root_attrs_in_child", [str(p)], timeout=read_timeout(p),
        what=f"reading golden {p}", errors={"GoldenError": GoldenError})
    return attrs


def _root_attrs_in_child(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        with malformed_is_golden_error(p), open_golden(p) as f:
            attrs = {k: schema.plain(v) for k, v in f.attrs.items()}
    except GoldenError:
        raise
    except Exception as exc:
        raise GoldenError(f"{path}: cannot read the golden ({type(exc).__name__}); the file "
                          "is damaged — re-record it") from None
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in attrs.items()}


def _verify_in_child(path: str, require_signature: bool, defer_tensors: bool = False
                     ) -> dict[str, Any]:
    try:
        return verify_unbounded(Path(path), require_signature=require_signature,
                                defer_tensors=defer_tensors)._asdict()
    except (ChildFailed, GoldenError):
        raise
    except Exception as exc:
        # h5py raises RuntimeError/OSError/KeyError... for damaged metadata, from anywhere.
        raise GoldenError(f"{path}: cannot read the golden ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}); the file is damaged — "
                          "re-record it") from None


# The tensors a streaming reader reads block by block: a signature's inputs and outputs.
_STREAMED = re.compile(rf"^(/{schema.SIGNATURES}/[^/]+)?/({schema.INPUTS}|{schema.OUTPUTS})"
                       r"/[^/]+$")


def verify_unbounded(p: Path, *, require_signature: bool = False,
                     defer_tensors: bool = False) -> validate.Verified:
    """:func:`verify_golden` without the child process: call it only inside one."""
    deferred: list[str] = []
    file_size = p.stat().st_size

    with malformed_is_golden_error(p), open_golden(p) as f:
        version = validate.format_version(f, p, SUPPORTED_VERSIONS)
        nodes = validate.walk(f, p)
        validate.check_sizes(nodes, p)
        validate.signature_root(nodes, p)
        if version >= 2:
            signed = validate.check_digest(nodes, p, require_signature=require_signature)
        elif require_signature:
            raise GoldenError(f"{p} is a format-{version} golden, which cannot be signed; "
                              "re-record it with `snapshot-tool record --sign`")
        else:
            signed = False
        tensors = datasets = 0
        for where, node in nodes.items():
            if node.children is not None:
                continue
            obj = node.obj
            datasets += 1
            parent = where.rsplit("/", 2)[-2] if where.count("/") >= 2 else ""
            is_tensor = parent in schema.TENSOR_GROUPS or where.endswith(f"/{schema.LABELS}")
            if schema.SHA256 not in node.attrs and version < 2 and not is_tensor:
                continue  # format 1 kept no checksum on metrics and latency samples
            want = schema.text(node.attrs.get(schema.SHA256))
            if not want:
                raise GoldenError(f"{p}: {where} has no sha256 attribute; the golden is "
                                  "incomplete — re-record it")
            # Format 2 only: its content digest, checked above, covers the attributes
            # (dtype, shape) the streaming reader interprets before it hashes the data.
            if defer_tensors and version >= 2 and _STREAMED.match(where) and \
                    validate.deferrable(obj, node.attrs.get(schema.DTYPE), file_size):
                deferred.append(where)
                tensors += 1
                continue
            label = schema.text(node.attrs.get(schema.DTYPE)) or model_dtype_label(
                np.empty(0, obj.dtype))
            got = validate.stream_sha(obj, where, p, _hash_header, _hash_body, _decode, label)
            _check_sha(want, got, where, p)
            tensors += is_tensor
    return validate.Verified(tensors=tensors, version=version, datasets=datasets,
                             signed=signed, deferred=tuple(deferred))


def _sharded(p: Path) -> bool:
    from snapshot_tool.golden.sharded import is_sharded

    return is_sharded(p)
