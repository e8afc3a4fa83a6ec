"""A sharded golden: a directory ``G.h5.d/`` of shard goldens plus a manifest.

A run too large for one machine (``--runner beam``) writes one shard golden per row range,
in parallel, instead of one file. Every reader treats the directory as one golden:
:func:`read_sharded` concatenates the shards' tensors along the sample axis and takes the
whole-run values (root info, per-output attributes, task metrics) from the manifest.

Layout (manifest version 1)::

    G.h5.d/manifest.json          format, manifest_version, num_rows, attrs (the golden's root
                                  info), signatures (per signature: output_attrs,
                                  labels_source, metrics), shards (file, row_start,
                                  row_stop, bytes, sha256 of the file), sha256 (of the
                                  manifest's canonical JSON without this key)
    G.h5.d/shard-00000-of-00004.h5   a valid golden of rows [row_start, row_stop): its own
                                  inputs, outputs and labels, no metrics, no latency

Each shard is a golden in its own right (``snapshot-tool verify`` and ``compare`` accept it
alone); the manifest's digests make the directory tamper-evident as a whole: a shard that
was replaced, dropped or reordered fails ``verify``. Row ranges are whole batches, so an
output without a batch dimension (one entry per batch) concatenates to what an in-process
run records.

The directory is replaced whole: shards and manifest are written into a staging directory
beside the target and renamed into place; the manifest is written last, and a directory
without one is refused, so an interrupted run never passes for a golden.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.cancel import raise_if_stopped
from snapshot_tool.errors import GoldenError
from snapshot_tool.golden import schema
from snapshot_tool.golden.schema import (
    ROW_START,
    ROW_STOP,
    SHARD_COUNT,
    SHARD_INDEX,
    Golden,
    OutputMetrics,
    SignatureGolden,
)
from snapshot_tool.golden.validate import Verified

MANIFEST = "manifest.json"
FORMAT = "snapshot-tool-sharded-golden"
MANIFEST_VERSION = 1
SUPPORTED_MANIFEST_VERSIONS = (1,)


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest lists it."""

    file: str
    row_start: int
    row_stop: int
    bytes: int
    sha256: str


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` names a sharded golden directory (readers dispatch on this)."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.h5"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_entry(path: Path, row_start: int, row_stop: int) -> ShardEntry:
    """The manifest entry of a shard file just written."""
    return ShardEntry(path.name, row_start, row_stop, path.stat().st_size, file_sha256(path))


# --- writing -------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def build_manifest(attrs: Mapping[str, Any], signatures: Mapping[str, Mapping[str, Any]],
                   shards: Sequence[ShardEntry]) -> dict[str, Any]:
    """The manifest document, digest included. ``signatures`` maps a signature to its
    ``output_attrs``, ``labels_source`` and ``metrics`` (output -> task, threshold,
    values -> metric -> value, direction)."""
    ordered = sorted(shards, key=lambda s: s.row_start)
    for before, after in itertools.pairwise(ordered):
        if before.row_stop != after.row_start:
            raise GoldenError(f"shards {before.file} and {after.file} leave a gap or overlap "
                              f"at rows {before.row_stop}..{after.row_start}")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "manifest_version": MANIFEST_VERSION,
        "num_rows": ordered[-1].row_stop - ordered[0].row_start if ordered else 0,
        "attrs": {k: _json_value(v) for k, v in attrs.items()},
        "signatures": {name: json.loads(json.dumps(sig, default=_json_value))
                       for name, sig in signatures.items()},
        "shards": [vars(s) for s in ordered],
    }
    doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    return doc


def staging_dir(target: str | Path) -> Path:
    """A fresh directory beside ``target`` for shards to be written into."""
    p = Path(target)
    p.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))


def check_writable_dir(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise GoldenError(f"{target} exists and is a file; a sharded golden is a directory "
                          f"(try --golden {target}.d)")
    if target.exists() and not force:
        raise GoldenError(f"golden {target} already exists; pass --force to replace it")


def commit(staging: Path, target: str | Path, manifest: Mapping[str, Any], *,
           force: bool) -> Path:
    """Write the manifest into ``staging`` and move the directory into place as ``target``.

    The old golden (with --force) is moved aside before the new one is renamed in, then
    removed: a reader sees the old golden, none, or the new one, never a mix. A directory
    cannot be renamed over a full one, so when another record puts its golden in place in
    between, this one fails and that golden is kept whole.
    """
    dest = Path(target)
    tmp = staging / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True, allow_nan=True))
    os.replace(tmp, staging / MANIFEST)
    os.chmod(staging, 0o777 & ~_umask())
    check_writable_dir(dest, force)
    raise_if_stopped()  # a stop a finalizer swallowed must not replace the golden
    old: Path | None = None
    published = False
    try:
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old",
                                        dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(staging, dest)
        published = True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise GoldenError(f"golden {dest} was written by another process while this one "
                              "ran; it was kept") from None
        raise
    finally:
        # Whatever stopped the swap (a failed rename, Ctrl-C, SIGTERM between the two
        # renames): with nobody else's golden in place, the old one goes back.
        if old is not None:
            if not published and not dest.exists() and (old / dest.name).exists():
                os.replace(old / dest.name, dest)
            shutil.rmtree(old, ignore_errors=True)
    return dest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def slice_signature(sg: SignatureGolden, start: int, stop: int, batch_size: int
                    ) -> SignatureGolden:
    """Rows ``[start, stop)`` of a signature (``start`` a whole number of batches), without
    the whole-run values (metrics, latency) that the manifest carries."""
    def rows(name: str, arr: np.ndarray) -> np.ndarray:
        if sg.info(name).batched:
            return arr[start:stop]
        return arr[start // batch_size:-(-stop // batch_size)]

    return SignatureGolden(
        sg.signature, {k: v[start:stop] for k, v in sg.inputs.items()},
        {k: rows(k, v) for k, v in sg.outputs.items()}, sg.output_attrs,
        None if sg.labels is None else sg.labels[start:stop], sg.labels_source)


def signature_info(sg: SignatureGolden) -> dict[str, Any]:
    """What the manifest keeps of a signature: the values that belong to all its rows."""
    return signature_info_of(sg.output_attrs, sg.labels_source, sg.metrics)


def signature_info_of(output_attrs: Mapping[str, Mapping[str, Any]], labels_source: str,
                      metrics: Mapping[str, OutputMetrics]) -> dict[str, Any]:
    return {"output_attrs": {k: dict(v) for k, v in output_attrs.items()},
            "labels_source": labels_source,
            "metrics": {out: {**om.group_attrs(),
                              "values": {m: {"value": v.value, **om.metric_attrs(v)}
                                         for m, v in om.values.items()}}
                        for out, om in metrics.items()}}


def write_shard(staging: Path, index: int, count: int, row_start: int,
                attrs: Mapping[str, Any], signatures: Mapping[str, SignatureGolden]
                ) -> ShardEntry:
    """Write one shard golden into ``staging`` and return its manifest entry."""
    from snapshot_tool.golden.io import write_golden

    rows = {next(iter(sg.inputs.values())).shape[0] for sg in signatures.values() if sg.inputs}
    if len(rows) != 1:
        raise GoldenError("a sharded golden needs every signature to take the same number of "
                          "rows; record the signatures one by one")
    row_stop = row_start + rows.pop()
    path = staging / shard_name(index, count)
    write_golden(path, dict(attrs) | {SHARD_INDEX: index, SHARD_COUNT: count,
                                      ROW_START: row_start, ROW_STOP: row_stop,
                                      schema.NUM_SAMPLES: row_stop - row_start}, signatures)
    return shard_entry(path, row_start, row_stop)


def write_sharded(target: str | Path, golden: Golden, rows_per_shard: int, *,
                  force: bool = False) -> Path:
    """Write an in-memory golden as a sharded one, shard after shard (``--runner beam``
    writes its shards in parallel with :func:`write_shard` instead)."""
    dest = Path(target)
    check_writable_dir(dest, force)
    batch = golden.info.batch_size
    step = max(batch, rows_per_shard - rows_per_shard % batch)
    rows = max(next(iter(sg.inputs.values())).shape[0] if sg.inputs else 0
               for sg in golden.signatures.values())
    starts = list(range(0, rows, step)) or [0]
    staging = staging_dir(dest)
    try:
        entries = [write_shard(staging, i, len(starts), a, golden.attrs,
                               {n: slice_signature(sg, a, a + step, batch)
                                for n, sg in golden.signatures.items()})
                   for i, a in enumerate(starts)]
        manifest = build_manifest(golden.attrs, {n: signature_info(sg) for n, sg in
                                                 golden.signatures.items()}, entries)
        return commit(staging, dest, manifest, force=force)
    except BaseException:
        discard(staging)
        raise


# --- reading -------------------------------------------------------------------------------


def load_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the sharded golden at ``path``, with its own digest checked."""
    p = Path(path)
    try:
        doc = json.loads((p / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GoldenError(f"{p}: cannot read {MANIFEST} ({exc}); the sharded golden is "
                          "corrupt — re-record it") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GoldenError(f"{p}/{MANIFEST} is not a snapshot-tool sharded golden manifest")
    version = doc.get("manifest_version")
    if version not in SUPPORTED_MANIFEST_VERSIONS:
        raise GoldenError(f"{p} has sharded-golden manifest version {version}, which this "
                          "snapshot-tool does not read; upgrade snapshot-tool or re-record")
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if hashlib.sha256(_canonical(body)).hexdigest() != doc.get("sha256"):
        raise GoldenError(f"{p}/{MANIFEST} fails its sha256 check; the sharded golden was "
                          "edited or damaged — re-record it")
    for key, kind in (("attrs", dict), ("signatures", dict), ("shards", list)):
        if not isinstance(doc.get(key), kind):
            raise GoldenError(f"{p}/{MANIFEST}: {key} is missing or malformed")
    if not doc["shards"]:
        raise GoldenError(f"{p}/{MANIFEST} lists no shards")
    return doc


def shard_entries(doc: Mapping[str, Any], path: Path) -> list[ShardEntry]:
    try:
        entries = [ShardEntry(str(s["file"]), int(s["row_start"]), int(s["row_stop"]),
                              int(s["bytes"]), str(s["sha256"])) for s in doc["shards"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise GoldenError(f"{path}/{MANIFEST}: malformed shard entry ({exc})") from None
    for e in entries:
        if Path(e.file).name != e.file or e.file.startswith("."):
            # A manifest naming ../other.h5 would make the golden read files outside itself.
            raise GoldenError(f"{path}/{MANIFEST}: shard name {e.file!r} is not a plain file "
                              "name inside the golden")
    return entries


def check_shard(path: Path, entry: ShardEntry) -> Path:
    """The shard's path, after its size and digest match the manifest."""
    f = path / entry.file
    if not f.is_file():
        raise GoldenError(f"{path}: shard {entry.file} is missing; the sharded golden is "
                          "incomplete — re-record it")
    if f.stat().st_size != entry.bytes or file_sha256(f) != entry.sha256:
        raise GoldenError(f"{path}: shard {entry.file} does not match the digest in "
                          f"{MANIFEST}; the sharded golden is corrupt — re-record it")
    return f


def shard_paths(path: str | Path) -> list[tuple[ShardEntry, Path]]:
    """Every shard in row order, each checked against the manifest."""
    p = Path(path)
    doc = load_manifest(p)
    return [(e, check_shard(p, e)) for e in sorted(shard_entries(doc, p),
                                                   key=lambda e: e.row_start)]


@contextlib.contextmanager
def _manifest_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except GoldenError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GoldenError(f"{path}/{MANIFEST}: malformed ({type(exc).__name__}: {exc}); "
                          "re-record the golden") from None


def _metrics_from(doc: Mapping[str, Any]) -> dict[str, OutputMetrics]:
    # The manifest keeps each metrics group's attributes, and each metric's beside its value.
    return {out: OutputMetrics.from_stored(
                m, {name: (float(v["value"]), v) for name, v in m["values"].items()},
                f"{MANIFEST}: {out}") for out, m in doc.items()}


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def read_sharded(path: str | Path, *, check: bool = True,
                 require_signature: bool = False) -> Golden:
    """The whole sharded golden as one :class:`Golden`, every shard and digest checked."""
    from snapshot_tool.golden.io import read_golden

    p = Path(path)
    doc = load_manifest(p)
    shards = [read_golden(f, check=check, require_signature=require_signature)
              for _, f in shard_paths(p)]
    sigs: dict[str, SignatureGolden] = {}
    with _manifest_errors(p):
        for name in sorted(doc["signatures"]):
            info = doc["signatures"][name]
            parts = [s.signatures.get(name) for s in shards]
            if any(sg is None for sg in parts):
                raise GoldenError(f"{p}: a shard lacks signature {name!r}; re-record it")
            present = [sg for sg in parts if sg is not None]
            labels = [sg.labels for sg in present]
            sigs[name] = SignatureGolden(
                name,
                inputs={k: _concat([sg.inputs[k] for sg in present])
                        for k in present[0].inputs},
                outputs={k: _concat([sg.outputs[k] for sg in present])
                         for k in present[0].outputs},
                output_attrs={k: dict(v) for k, v in info.get("output_attrs", {}).items()},
                labels=None if any(lab is None for lab in labels) else _concat(
                    [lab for lab in labels if lab is not None]),
                labels_source=str(info.get("labels_source", "")),
                metrics=_metrics_from(info.get("metrics", {})))
        attrs = dict(doc["attrs"]) | {schema.SHARDS: len(shards)}
    return Golden(p, attrs, sigs)


def verify_sharded(path: str | Path, *, require_signature: bool = False) -> Verified:
    """Manifest digest, every shard's file digest, then each shard's own verify."""
    from snapshot_tool.golden.io import verify_golden

    checked = datasets = version = 0
    signed = True
    for _, f in shard_paths(path):
        found = verify_golden(f, require_signature=require_signature)
        checked += found.tensors
        datasets += found.datasets
        version = found.version
        signed = signed and found.signed
    return Verified(tensors=checked, version=version, datasets=datasets, signed=signed)


def describe_sharded(path: str | Path) -> dict[str, Any]:
    """What ``show`` prints: the first shard's description with whole-golden shapes, the
    manifest's root info and metrics, and the shard list."""
    from snapshot_tool.golden.describe import describe_golden

    p = Path(path)
    doc = load_manifest(p)
    described = [describe_golden(f) for _, f in shard_paths(p)]
    info = described[0]
    with _manifest_errors(p):
        for name, entry in info["signatures"].items():
            for grp in schema.TENSOR_GROUPS:
                for i, t in enumerate(entry[grp]):
                    t["shape"][0:1] = [sum(d["signatures"][name][grp][i]["shape"][0]
                                           for d in described)] if t["shape"] else []
                    t["sha256"] = ""  # per shard only; `verify` checks them all
            if "labels" in entry:
                entry["labels"]["shape"][0] = sum(
                    d["signatures"][name]["labels"]["shape"][0] for d in described)
                entry["labels"]["sha256"] = ""
            metrics = doc["signatures"].get(name, {}).get("metrics", {})
            if metrics:
                entry["metrics"] = {out: {"task": m["task"], "values": m["values"]}
                                    for out, m in metrics.items()}
        attrs = dict(info["attrs"])
        for key in (SHARD_INDEX, SHARD_COUNT, ROW_START, ROW_STOP):
            attrs.pop(key, None)
        attrs |= doc["attrs"]
        env = attrs.get(schema.ENVIRONMENT)
        if isinstance(env, str):
            with contextlib.suppress(json.JSONDecodeError):
                attrs[schema.ENVIRONMENT] = json.loads(env)
    return {"path": str(p), "attrs": attrs, "signatures": info["signatures"],
            "shards": [vars(e) for e in shard_entries(doc, p)]}



# --- row ranges: what one worker reads ----------------------------------------------------


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, stop)`` of one signature in one golden file (the golden itself, or a
    shard of a sharded one), which begin at row ``global_start`` of the whole golden."""

    file: str
    signature: str
    start: int
    stop: int
    global_start: int
    digest: tuple[int, str] | None = None  # a shard's (bytes, sha256) from the manifest


def row_ranges(path: str | Path, signature: str, rows_per_range: int) -> list[RowRange]:
    """How workers split one signature of a golden: one range per shard of a sharded golden;
    ranges of ``rows_per_range`` rows (a whole number of batches) of a single file."""
    p = Path(path)
    if is_sharded(p):
        return [RowRange(str(f), signature, 0, e.row_stop - e.row_start, e.row_start,
                         (e.bytes, e.sha256)) for e, f in shard_paths(p)]
    from snapshot_tool.golden.io import malformed_is_golden_error, open_golden, signature_groups

    with malformed_is_golden_error(p), open_golden(p) as f:
        g = signature_groups(f, p)[signature]
        names = list(g[schema.INPUTS])
        if not names:
            raise GoldenError(f"{p}: signature {signature!r} takes no inputs, so there are no "
                              "rows to split between workers; compare it in-process")
        rows = int(g[schema.INPUTS][names[0]].shape[0])
    step = max(1, rows_per_range)
    return [RowRange(str(p), signature, a, min(a + step, rows), a)
            for a in range(0, rows, step)]


def read_range(r: RowRange, batch_size: int) -> SignatureGolden:
    """The rows of ``r`` as a :class:`SignatureGolden`. A shard is read whole, after its
    file digest and every tensor checksum pass; a range of a single file is sliced (its
    checksums cover whole tensors: ``verify`` checks them, once, before the run)."""
    from snapshot_tool.golden.io import read_golden

    p = Path(r.file)
    if r.digest is not None:
        check_shard(p.parent, ShardEntry(p.name, r.global_start, r.global_start + r.stop,
                                         r.digest[0], r.digest[1]))
        return read_golden(p).signatures[r.signature]
    return _slice(p, r, batch_size)


def _slice(p: Path, r: RowRange, batch_size: int) -> SignatureGolden:
    from snapshot_tool.golden.io import (
        _decode,
        malformed_is_golden_error,
        open_golden,
        signature_groups,
    )

    with malformed_is_golden_error(p), open_golden(p) as f:
        g = signature_groups(f, p)[r.signature]
        g_in, g_out = g[schema.INPUTS], g[schema.OUTPUTS]
        inputs = {k: _decode(g_in[k], g_in[k][r.start:r.stop]) for k in g_in}
        outputs: dict[str, np.ndarray] = {}
        attrs: dict[str, dict[str, Any]] = {}
        for k in g_out:
            ds = g_out[k]
            attrs[k] = {a: schema.plain(v) for a, v in ds.attrs.items()
                        if a not in schema.TENSOR_ATTRS}
            # An output without a batch dimension holds one entry per batch.
            a, b = (r.start, r.stop) if schema.OutputRecord.from_attrs(attrs[k]).batched else (
                r.start // batch_size, -(-r.stop // batch_size))
            outputs[k] = _decode(ds, ds[a:b])
        labels = None
        source = ""
        if schema.LABELS in g:
            lab = g[schema.LABELS]
            labels = _decode(lab, lab[r.start:r.stop])
            source = schema.text(lab.attrs.get(schema.LABELS_SOURCE))
    return SignatureGolden(r.signature, inputs, outputs, attrs, labels, source)


def read_head(path: str | Path, rows: int) -> Golden:
    """The golden with only its first ``rows`` rows of every tensor, but all its whole-run
    values (root info, output attributes, metrics): what a driver needs to plan a run over
    workers and check a config, without reading the golden's data."""
    from snapshot_tool.golden.io import (
        malformed_is_golden_error,
        open_golden,
        read_metrics,
        signature_groups,
    )

    p = Path(path)
    if is_sharded(p):
        doc = load_manifest(p)
        first = p / min(shard_entries(doc, p), key=lambda e: e.row_start).file
        with _manifest_errors(p):
            attrs = dict(doc["attrs"])
            infos = doc["signatures"]
        sigs = {}
        for name in sorted(infos):
            part = _slice(first, RowRange(str(first), name, 0, rows, 0), int(
                attrs.get(schema.BATCH_SIZE, 1)))
            with _manifest_errors(p):
                sigs[name] = SignatureGolden(
                    name, part.inputs, part.outputs,
                    {k: dict(v) for k, v in infos[name].get("output_attrs", {}).items()},
                    part.labels, str(infos[name].get("labels_source", "")),
                    _metrics_from(infos[name].get("metrics", {})))
        return Golden(p, attrs, sigs)
    with malformed_is_golden_error(p), open_golden(p) as f:
        attrs = {k: schema.plain(v) for k, v in f.attrs.items()}
        metrics = {name: read_metrics(g) for name, g in signature_groups(f, p).items()}
    batch = int(attrs.get(schema.BATCH_SIZE, 1))
    sigs = {name: _slice(p, RowRange(str(p), name, 0, rows, 0), batch) for name in metrics}
    return Golden(p, attrs, {name: SignatureGolden(
        name, sg.inputs, sg.outputs, sg.output_attrs, sg.labels, sg.labels_source,
        metrics[name]) for name, sg in sigs.items()})


def output_blocks(path: str | Path, signature: str, output: str) -> Iterator[np.ndarray]:
    """One output of a golden, a shard or a block at a time (for whole-output facts such as
    "every value is in [0, 1]" without holding the output)."""
    from snapshot_tool.golden.io import (
        STREAM_BYTES,
        _decode,
        malformed_is_golden_error,
        open_golden,
        signature_groups,
    )

    p = Path(path)
    files = [f for _, f in shard_paths(p)] if is_sharded(p) else [p]
    for file in files:
        with malformed_is_golden_error(file), open_golden(file) as f:
            ds = signature_groups(f, file)[signature][schema.OUTPUTS][output]
            if ds.ndim == 0:
                yield _decode(ds, ds[()])
                continue
            row = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
            step = max(1, STREAM_BYTES // row)
            for a in range(0, ds.shape[0], step):
                yield _decode(ds, ds[a:a + step])
