"""A seeded generator of damaged and hostile goldens, from real ones.

Case ``i`` of seed ``s`` is always the same mutant of the same golden, so a failure found by
the fuzz tests is reproduced by its (seed, index) alone. Kinds:

- byte level (what storage, transfer and caches do): bit flips anywhere or in HDF5
  metadata only, zeroed blocks of 64-512 bytes, random bytes, truncations;
- h5py level (what a person or a script does): attribute edits to hostile values, deleted
  or added attributes, values edited in place behind their checksum's back, deleted or
  retyped objects, links, cycles, deep nesting and absurd declared sizes.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BYTE_KINDS = ("bitflip", "bitflip_meta", "zero_block", "zero_block_meta", "random_block",
              "truncate")
H5_KINDS = ("attr_edit", "attr_delete", "attr_add", "value_edit", "object_delete",
            "object_retype", "structure")
KINDS = BYTE_KINDS + H5_KINDS

# Attribute values that have broken readers before: wrong types, absurd or non-finite
# numbers, numbers as text, empty and huge values.
HOSTILE_VALUES: tuple[Any, ...] = (
    "abc", "", "1", "many", "nan", 1e30, -1e30, -1.0, 0.0, float("nan"), float("inf"),
    1.9, True, False, np.int64(-1), np.int64(2**62), np.uint64(2**64 - 1), np.int8(2),
    np.array([1, 2, 3]), np.array([], dtype=np.float64), b"\xff\xfe", "x" * 100_000,
    np.float32(1e-30), '{"python": 3}', "[1, 2]",
)


@dataclass(frozen=True)
class Mutant:
    index: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"case {self.index} {self.kind}: {self.detail}"


def metadata_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of ``path`` that hold HDF5 metadata, not raw tensor data: every range
    between the data chunks. Damage there reaches HDF5's parser, not just a checksum."""
    import h5py

    data: list[tuple[int, int]] = []
    with h5py.File(path, "r") as f:
        def visit(_name: str, obj: Any) -> None:
            if not isinstance(obj, h5py.Dataset):
                return
            dsid = obj.id
            offset = dsid.get_offset()
            if offset is not None:
                data.append((offset, offset + dsid.get_storage_size()))
            elif obj.chunks is not None:
                for i in range(dsid.get_num_chunks()):
                    info = dsid.get_chunk_info(i)
                    data.append((info.byte_offset, info.byte_offset + info.size))

        f.visititems(visit)
    size = path.stat().st_size
    ranges: list[tuple[int, int]] = []
    pos = 0
    for start, end in sorted(data):
        if start > pos:
            ranges.append((pos, start))
        pos = max(pos, end)
    if pos < size:
        ranges.append((pos, size))
    return ranges


def _offset(rng: random.Random, size: int, meta: list[tuple[int, int]] | None) -> int:
    if not meta:
        return rng.randrange(size)
    weights = [end - start for start, end in meta]
    start, end = rng.choices(meta, weights=weights)[0]
    return rng.randrange(start, end)


def _byte_mutation(rng: random.Random, kind: str, path: Path,
                   meta: list[tuple[int, int]]) -> str:
    data = bytearray(path.read_bytes())
    size = len(data)
    in_meta = meta if kind.endswith("_meta") else None
    if kind.startswith("bitflip"):
        spots = []
        for _ in range(rng.randint(1, 4)):
            at, bit = _offset(rng, size, in_meta), rng.randrange(8)
            data[at] ^= 1 << bit
            spots.append(f"{at}.{bit}")
        detail = "bits " + ",".join(spots)
    elif kind.startswith("zero_block"):
        at, n = _offset(rng, size, in_meta), rng.randint(64, 512)
        data[at:at + n] = bytes(len(data[at:at + n]))
        detail = f"{n} zero bytes at {at}"
    elif kind == "random_block":
        at, n = _offset(rng, size, meta), rng.randint(1, 64)
        data[at:at + n] = rng.randbytes(len(data[at:at + n]))
        detail = f"{n} random bytes at {at}"
    else:  # truncate
        keep = rng.randrange(size)
        del data[keep:]
        detail = f"truncated to {keep} of {size} bytes"
    path.write_bytes(bytes(data))
    return detail


def _objects(f: Any) -> list[Any]:
    found: list[Any] = [f]
    f.visititems(lambda _name, obj: found.append(obj))
    return found


def _datasets(f: Any) -> list[Any]:
    import h5py

    return [o for o in _objects(f) if isinstance(o, h5py.Dataset)]


def _attr_edit(rng: random.Random, f: Any) -> str:
    candidates = [(o, a) for o in _objects(f) for a in o.attrs]
    obj, attr = rng.choice(candidates)
    value = rng.choice(HOSTILE_VALUES)
    obj.attrs[attr] = value
    return f"{obj.name}@{attr} = {_short(value)}"


def _attr_delete(rng: random.Random, f: Any) -> str:
    obj, attr = rng.choice([(o, a) for o in _objects(f) for a in o.attrs])
    del obj.attrs[attr]
    return f"deleted {obj.name}@{attr}"


def _attr_add(rng: random.Random, f: Any) -> str:
    obj = rng.choice(_objects(f))
    name = rng.choice(("spread", "nondeterministic", "batched", "threshold", "note",
                       "batch_size", "direction"))
    value = rng.choice(HOSTILE_VALUES)
    obj.attrs[name] = value
    return f"{obj.name}@{name} := {_short(value)}"


def _value_edit(rng: random.Random, f: Any) -> str:
    """Change stored numbers in place, leaving every attribute (and checksum) as it was."""
    numeric = [d for d in _datasets(f) if d.dtype.kind in "fiub" and d.size > 0]
    ds = rng.choice(numeric)
    arr = np.array(ds[()])
    flat = arr.reshape(-1)
    i = rng.randrange(flat.size)
    raw = flat.view(np.uint8) if flat.dtype.itemsize else flat
    byte = i * flat.dtype.itemsize + rng.randrange(flat.dtype.itemsize)
    raw[byte] ^= 1 << rng.randrange(8)
    ds[...] = arr
    return f"{ds.name}[{i}] bit flipped in place"


def _object_delete(rng: random.Random, f: Any) -> str:
    victim = rng.choice(_objects(f)[1:])
    name = victim.name
    del f[name]
    return f"deleted {name}"


def _object_retype(rng: random.Random, f: Any) -> str:
    """A group where a dataset belongs or the other way round, keeping the attributes."""
    import h5py

    victim = rng.choice(_objects(f)[1:])
    name, attrs = victim.name, dict(victim.attrs)
    is_group = isinstance(victim, h5py.Group)
    del f[name]
    new = f.create_dataset(name, data=np.zeros(3)) if is_group else f.create_group(name)
    for k, v in attrs.items():
        new.attrs[k] = v
    return f"{name} {'group -> dataset' if is_group else 'dataset -> group'}"


def _structure(rng: random.Random, f: Any, tmp_dir: Path) -> str:
    import h5py

    groups = [o for o in _objects(f) if isinstance(o, h5py.Group)]
    g = rng.choice(groups)
    how = rng.choice(("hard_cycle", "deep", "soft", "external", "huge", "empty_samples",
                      "batch_0", "virtual", "many_attrs", "huge_vlen"))
    if how == "hard_cycle":
        g["loop"] = g
    elif how == "deep":
        cur = g
        for i in range(3000):
            cur = cur.create_group(f"d{i}")
    elif how == "soft":
        g["alias"] = h5py.SoftLink(rng.choice(_objects(f)).name)
    elif how == "external":
        g["ext"] = h5py.ExternalLink("/etc/hostname", "/x")
    elif how == "huge":
        ds = rng.choice(_datasets(f))
        name, attrs = ds.name, dict(ds.attrs)
        del f[name]
        new = f.create_dataset(name, shape=(10**12,), dtype="f4", chunks=(2**20,))
        for k, v in attrs.items():
            new.attrs[k] = v
        return f"{name} replaced by a declared (10**12,) float32 dataset"
    elif how == "empty_samples":
        samples = [d for d in _datasets(f) if d.name.endswith("samples_ns")]
        if not samples:
            return _attr_edit(rng, f)
        name, attrs = samples[0].name, dict(samples[0].attrs)
        del f[name]
        new = f.create_dataset(name, data=np.zeros(0, np.int64))
        for k, v in attrs.items():
            new.attrs[k] = v
        return f"{name} emptied"
    elif how == "batch_0":
        lat = f.require_group(f"{g.name.rstrip('/')}/latency")
        lat.create_group("batch_0").create_dataset("samples_ns", data=np.arange(5))
    elif how == "virtual":
        src = tmp_dir / "elsewhere.h5"
        with h5py.File(src, "w") as other:
            other["x"] = np.arange(4.0)
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(src), "x", shape=(4,))
        g.create_virtual_dataset("virtual", layout)
    elif how == "many_attrs":
        for i in range(2000):
            g.attrs[f"a{i}"] = i
    else:  # huge_vlen: one enormous string element
        g.create_dataset("blob", data=np.array([b"x" * (8 << 20)], dtype=object),
                         dtype=h5py.vlen_dtype(bytes))
    return f"{how} at {g.name}"


H5_MUTATORS: dict[str, Callable[[random.Random, Any], str]] = {
    "attr_edit": _attr_edit, "attr_delete": _attr_delete, "attr_add": _attr_add,
    "value_edit": _value_edit, "object_delete": _object_delete,
    "object_retype": _object_retype,
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def mutate(source: Path, dest: Path, seed: int, index: int,
           meta: list[tuple[int, int]] | None = None) -> Mutant:
    """Write mutant ``index`` of ``source`` to ``dest`` (same seed, same index: same bytes
    for byte kinds, same edit for h5py kinds)."""
    import h5py

    rng = random.Random(f"{seed}:{index}")
    kind = KINDS[index % len(KINDS)] if index < len(KINDS) else rng.choice(KINDS)
    shutil.copyfile(source, dest)
    if kind in BYTE_KINDS:
        detail = _byte_mutation(rng, kind, dest, meta if meta is not None
                                else metadata_ranges(source))
    else:
        with h5py.File(dest, "r+") as f:
            if kind == "structure":
                detail = _structure(rng, f, dest.parent)
            else:
                detail = H5_MUTATORS[kind](rng, f)
    return Mutant(index, kind, detail)
