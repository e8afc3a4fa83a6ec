"""Writing a golden (atomically: temp file + rename), reading it back with every checksum
verified, verifying it in bounded memory, and the content hash of a tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.dtypes import dtype_label as model_dtype_label
from snapshot_tool.errors import GoldenError
from snapshot_tool.golden.schema import (
    FORMAT,
    FORMAT_VERSION,
    SUPPORTED_VERSIONS,
    Golden,
    LatencyRecord,
    OutputMetrics,
    SignatureGolden,
    StoredMetric,
)


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
        h.update(a.view(np.uint8).reshape(-1).tobytes() if a.size else b"")


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    return bytes(item)


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
            storage = "vlen_uint8"
        else:
            flat[:] = items
            ds = group.create_dataset(name, data=flat.reshape(arr.shape),
                                      dtype=h5py.vlen_dtype(bytes))
            storage = "vlen_bytes"
    else:
        data = arr.view(np.uint16) if label == "bfloat16" else arr
        kwargs: dict[str, Any] = {}
        if data.ndim > 0 and data.size > 0:
            kwargs = {"chunks": True, "compression": "gzip", "compression_opts": 4,
                      "shuffle": True}
        ds = group.create_dataset(name, data=data, **kwargs)
    ds.attrs["dtype"] = label
    if storage:
        ds.attrs["string_storage"] = storage
    ds.attrs["shape"] = json.dumps(list(arr.shape))
    ds.attrs["sha256"] = digest
    for k, v in (extra or {}).items():
        ds.attrs[k] = v


def _write_signature(root: Any, sg: SignatureGolden) -> None:
    g_in = root.create_group("inputs")
    for name, arr in sorted(sg.inputs.items()):
        _write_tensor(g_in, name, arr)
    g_out = root.create_group("outputs")
    for name, arr in sorted(sg.outputs.items()):
        _write_tensor(g_out, name, arr, sg.output_attrs.get(name, {}))
    if sg.labels is not None:
        _write_tensor(root, "labels", sg.labels, {"source": sg.labels_source})
    if sg.metrics:
        g_m = root.create_group("metrics")
        for out_name, om in sorted(sg.metrics.items()):
            g = g_m.create_group(out_name)
            g.attrs["task"] = om.task
            g.attrs["threshold"] = om.threshold
            for metric, sm in sorted(om.values.items()):
                ds = g.create_dataset(metric, data=np.float64(sm.value))
                ds.attrs["direction"] = sm.direction
    if sg.latency:
        g_l = root.create_group("latency")
        for bs, rec in sorted(sg.latency.items()):
            g = g_l.create_group(f"batch_{bs}")
            ds = g.create_dataset("samples_ns", data=np.asarray(rec.samples_ns, dtype=np.int64))
            for k, v in rec.attrs.items():
                ds.attrs[k] = v
            g.attrs["batch_size"] = bs


def write_golden(path: str | Path, attrs: Mapping[str, Any],
                 signatures: Mapping[str, SignatureGolden], *, force: bool = False) -> Path:
    """Write a golden to a temp file beside ``path`` and rename it into place.

    The rename is atomic on POSIX filesystems, so readers see the old golden or the new
    one, never a mix, and an interrupted record leaves the old golden untouched.
    """
    import h5py

    p = Path(path)
    check_writable(p, force)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in attrs.items():
                f.attrs[k] = v
            if len(signatures) == 1:
                _write_signature(f, next(iter(signatures.values())))
            else:
                g = f.create_group("signatures")
                for name, sg in sorted(signatures.items()):
                    _write_signature(g.create_group(name), sg)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; a golden is a shared artefact, so it gets the mode the
        # replaced file had, or what a plain open() would have given it.
        os.chmod(tmp, p.stat().st_mode & 0o7777 if p.exists() else _default_mode())
        # A late check as well as the early one: another process may have created the
        # golden while the model ran, and --force was not given to overwrite *that*.
        check_writable(p, force)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return p


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable(path: Path, force: bool) -> None:
    if path.is_dir():
        raise GoldenError(f"golden path {path} is a directory; give a file name such as "
                          f"{path / 'golden.h5'}")
    if path.exists() and not force:
        raise GoldenError(f"golden {path} already exists; pass --force to replace it")


@contextlib.contextmanager
def open_golden(path: str | Path) -> Iterator[Any]:
    """Open a golden read-only after the checks every reader needs."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise GoldenError(f"golden {str(p)!r} not found; record one with "
                          f"`snapshot-tool record MODEL --golden {p}`")
    if p.is_dir() or not h5py.is_hdf5(str(p)):
        raise GoldenError(f"{p} is not an HDF5 file, so not a snapshot-tool golden")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise GoldenError(f"cannot open golden {p}: {exc}") from None
    try:
        fmt = attr_str(f.attrs.get("format"))
        if fmt != FORMAT:
            raise GoldenError(f"{p} is an HDF5 file but not a snapshot-tool golden "
                              f"(format attribute {fmt!r})")
        version = f.attrs.get("format_version")
        try:
            known = version is not None and int(version) in SUPPORTED_VERSIONS
        except (TypeError, ValueError):
            known = False
        if not known:
            raise GoldenError(
                f"{p} has golden format version {version}, which this snapshot-tool does not "
                f"read (supported: {', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade "
                "snapshot-tool or re-record the golden")
        _refuse_links(f, p)
        yield f
    finally:
        f.close()


def attr_str(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def _refuse_links(f: Any, path: Path) -> None:
    import h5py

    # External links and virtual datasets make a golden depend on other files; a golden
    # must be one self-contained artefact, so they are refused rather than followed.
    def walk(group: Any, prefix: str) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            where = f"{prefix}/{name}"
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                raise GoldenError(f"{path}: {where} is a link; goldens must not contain links")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj, where)
            elif isinstance(obj, h5py.Dataset) and obj.is_virtual:
                raise GoldenError(f"{path}: {where} is a virtual dataset; goldens must be "
                                  "self-contained")

    walk(f, "")


def _decode(ds: Any, raw: Any) -> np.ndarray:
    """Stored representation -> the tensor as recorded (strings as bytes, bfloat16)."""
    label = attr_str(ds.attrs.get("dtype"))
    if label == "string":
        byte_arrays = attr_str(ds.attrs.get("string_storage")) == "vlen_uint8"
        raw_arr = np.asarray(raw, dtype=object) if np.ndim(raw) else None
        arr = np.empty(np.shape(raw) if raw_arr is not None else (), dtype=object)
        items = raw_arr.reshape(-1) if raw_arr is not None else [raw]
        arr.reshape(-1)[:] = [np.asarray(x, dtype=np.uint8).tobytes() if byte_arrays
                              else _as_bytes(x) for x in items] if arr.size else []
        return arr
    if label == "bfloat16":
        import ml_dtypes

        return np.asarray(raw, dtype=np.uint16).view(ml_dtypes.bfloat16)
    return np.asarray(raw)


def _want_sha(ds: Any, where: str, path: Path) -> str:
    want = attr_str(ds.attrs.get("sha256"))
    if not want:
        raise GoldenError(f"{path}: {where} has no sha256 attribute; the golden is "
                          "incomplete — re-record it")
    return want


def _check_sha(want: str, got: str, where: str, path: Path) -> None:
    if got != want:
        raise GoldenError(f"{path}: {where} fails its sha256 check (stored {want[:12]}…, "
                          f"actual {got[:12]}…); the golden is corrupt — re-record it")


def _read_tensor(ds: Any, where: str, path: Path, check: bool) -> np.ndarray:
    arr = _decode(ds, ds[()])
    if check:
        want = _want_sha(ds, where, path)
        _check_sha(want, tensor_sha256(arr, attr_str(ds.attrs.get("dtype"))), where, path)
    return arr


# Bytes per block when verify streams a dataset: bounded memory for any golden size.
STREAM_BYTES = 64 << 20


def _stream_check(ds: Any, where: str, path: Path) -> None:
    want = _want_sha(ds, where, path)
    h = _hash_header(attr_str(ds.attrs.get("dtype")), tuple(ds.shape))
    if ds.ndim == 0 or ds.shape[0] == 0:
        _hash_body(h, _decode(ds, ds[()]))
    else:
        row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        step = max(1, STREAM_BYTES // row_bytes)
        for start in range(0, ds.shape[0], step):
            _hash_body(h, _decode(ds, ds[start:start + step]))
    _check_sha(want, h.hexdigest(), where, path)


def signature_groups(f: Any, path: Path) -> dict[str, Any]:
    """Every signature's group, each checked for the layout every reader relies on."""
    if "signatures" in f:
        groups = {name: f["signatures"][name] for name in f["signatures"]}
        if not groups:
            raise GoldenError(f"{path}: /signatures is empty")
    else:
        groups = {attr_str(f.attrs.get("signature")) or "serving_default": f}
    for name, g in groups.items():
        for required in ("inputs", "outputs"):
            if required not in g:
                where = "/" if g is f else f"/signatures/{name}/"
                raise GoldenError(f"{path}: missing required group {where}{required}; the "
                                  "golden is incomplete — re-record it")
        _check_layout(g, "/" if g is f else f"/signatures/{name}/", path)
    return groups


def _check_root_ints(attrs: dict[str, Any], path: Path) -> None:
    for key in ("batch_size", "num_samples", "seed"):
        if key in attrs and not isinstance(attrs[key], int):
            raise GoldenError(f"{path}: root attribute {key} is {attrs[key]!r}, not an "
                              "integer; the golden is malformed — re-record it")


def _read_signature(name: str, g: Any, path: Path, check: bool) -> SignatureGolden:
    prefix = "" if g.name == "/" else g.name
    inputs = {k: _read_tensor(g["inputs"][k], f"{prefix}/inputs/{k}", path, check)
              for k in g["inputs"]}
    outputs: dict[str, np.ndarray] = {}
    output_attrs: dict[str, dict[str, Any]] = {}
    for k in g["outputs"]:
        ds = g["outputs"][k]
        outputs[k] = _read_tensor(ds, f"{prefix}/outputs/{k}", path, check)
        output_attrs[k] = {a: plain_attr(ds.attrs[a]) for a in ds.attrs
                           if a not in ("dtype", "shape", "sha256", "string_storage")}
    labels = None
    labels_source = ""
    if "labels" in g:
        labels = _read_tensor(g["labels"], f"{prefix}/labels", path, check)
        labels_source = attr_str(g["labels"].attrs.get("source"))
    metrics = read_metrics(g)
    latency: dict[int, LatencyRecord] = {}
    if "latency" in g:
        for key in g["latency"]:
            lg = g["latency"][key]
            bs = int(lg.attrs.get("batch_size", key.removeprefix("batch_")))
            ds = lg["samples_ns"]
            attrs = {a: plain_attr(ds.attrs[a]) for a in ds.attrs}
            latency[bs] = LatencyRecord(bs, np.asarray(ds[()], dtype=np.int64), attrs)
    return SignatureGolden(name, inputs, outputs, output_attrs, labels, labels_source,
                           metrics, latency)


def read_metrics(g: Any) -> dict[str, OutputMetrics]:
    """A signature group's recorded task metrics (small: read without its tensors)."""
    metrics: dict[str, OutputMetrics] = {}
    if "metrics" in g:
        for out_name in g["metrics"]:
            mg = g["metrics"][out_name]
            values = {m: StoredMetric(float(mg[m][()]), attr_str(mg[m].attrs.get("direction")))
                      for m in mg}
            metrics[out_name] = OutputMetrics(
                task=attr_str(mg.attrs.get("task")),
                threshold=float(mg.attrs.get("threshold", 0.5)),
                values=values)
    return metrics


def plain_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


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


def _check_layout(g: Any, where: str, path: Path) -> None:
    import h5py

    for grp in ("inputs", "outputs"):
        if not isinstance(g[grp], h5py.Group):
            raise GoldenError(f"{path}: {where}{grp} is not a group; the golden is malformed")
        for name in g[grp]:
            if not isinstance(g[grp][name], h5py.Dataset):
                raise GoldenError(f"{path}: {where}{grp}/{name} is not a dataset; the golden "
                                  "is malformed")
    if "metrics" in g:
        for out in g["metrics"]:
            for m in g["metrics"][out]:
                ds = g["metrics"][out][m]
                if not isinstance(ds, h5py.Dataset) or ds.shape != ():
                    raise GoldenError(f"{path}: {where}metrics/{out}/{m} is not a scalar; "
                                      "the golden is malformed")
    if "latency" in g:
        for key in g["latency"]:
            if not key.startswith("batch_") or not key.removeprefix("batch_").isdigit():
                raise GoldenError(f"{path}: {where}latency/{key} is not named batch_<n>; "
                                  "the golden is malformed")


def read_golden(path: str | Path, *, check: bool = True) -> Golden:
    """Read a whole golden into memory, verifying every checksum on the way. A sharded
    golden (``G.h5.d/``) is read as the one golden its shards make up."""
    p = Path(path)
    if _sharded(p):
        from snapshot_tool.golden.sharded import read_sharded

        return read_sharded(p, check=check)
    with malformed_is_golden_error(p), open_golden(p) as f:
        attrs = {k: plain_attr(f.attrs[k]) for k in f.attrs}
        sigs = {name: _read_signature(name, g, p, check)
                for name, g in signature_groups(f, p).items()}
        _check_root_ints(attrs, p)
    return Golden(p, attrs, sigs)


def verify_golden(path: str | Path) -> tuple[int, int]:
    """Schema and checksum check, streaming each tensor in blocks so memory stays bounded
    whatever the golden's size. Returns (tensors checked, format version); raises
    :class:`GoldenError` on the first problem."""
    p = Path(path)
    if _sharded(p):
        from snapshot_tool.golden.sharded import verify_sharded

        return verify_sharded(p)
    checked = 0
    with malformed_is_golden_error(p), open_golden(p) as f:
        groups = signature_groups(f, p)
        for name, g in groups.items():
            prefix = "" if g is f else f"/signatures/{name}"
            tensors = [(f"{prefix}/{grp}/{k}", g[grp][k])
                       for grp in ("inputs", "outputs") for k in g[grp]]
            if "labels" in g:
                tensors.append((f"{prefix}/labels", g["labels"]))
            for where, ds in tensors:
                _stream_check(ds, where, p)
                checked += 1
        _check_root_ints({k: plain_attr(f.attrs[k]) for k in f.attrs}, p)
        version = int(f.attrs["format_version"])
    return checked, version



def _sharded(p: Path) -> bool:
    from snapshot_tool.golden.sharded import is_sharded

    return is_sharded(p)
