"""Which HDF5 filter a golden's tensors should use: size against write and read time.

    .venv/bin/python benchmarks/golden_compression.py G.h5 [G2.h5 ...] [--quick]

For every golden given, its input and output tensors (the bulk of any large golden) are
rewritten into scratch files with each candidate filter, chunked along the sample axis as
snapshot-tool writes them, then read back chunk by chunk. The baseline is the same tensors
with no filter at all (``raw``), which is also what ``np.savez`` stores. Only filters that
ship with every h5py build are tried (gzip, lzf, shuffle), so a golden stays readable by
plain h5py anywhere. Times are medians of ``--repeats``; the machine's load average is
printed, since other jobs on the same cores move the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FILTERS: dict[str, dict[str, Any]] = {
    "raw": {},
    "lzf": {"compression": "lzf"},
    "shuffle+lzf": {"compression": "lzf", "shuffle": True},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "shuffle+gzip-1": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "shuffle+gzip-4": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "shuffle+gzip-6": {"compression": "gzip", "compression_opts": 6, "shuffle": True},
    "shuffle+gzip-9": {"compression": "gzip", "compression_opts": 9, "shuffle": True},
}
CHUNK_BYTES = 1 << 18


def tensors(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            parts = name.split("/")
            if (isinstance(obj, h5py.Dataset) and len(parts) >= 2
                    and parts[-2] in ("inputs", "outputs") and obj.dtype.kind in "fiucb"
                    and obj.ndim >= 1):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def chunk_rows(arr: np.ndarray) -> int:
    row = max(1, arr[:1].nbytes)
    return max(1, min(arr.shape[0], CHUNK_BYTES // row))


def write(path: Path, arrays: dict[str, np.ndarray], opts: dict[str, Any]) -> float:
    start = time.perf_counter()
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr, chunks=(chunk_rows(arr), *arr.shape[1:]), **opts)
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())
    return time.perf_counter() - start


def read(path: Path) -> float:
    start = time.perf_counter()
    with h5py.File(path, "r") as f:
        def visit(_: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                step = obj.chunks[0] if obj.chunks else obj.shape[0]
                for a in range(0, obj.shape[0], step):
                    obj[a:a + step]
        f.visititems(visit)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("goldens", nargs="+", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one repeat")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for golden in args.goldens:
        arrays = tensors(golden)
        raw = sum(a.nbytes for a in arrays.values())
        print(f"\n### {golden.name}: {len(arrays)} tensors, {raw / 2**20:.1f} MB raw; "
              f"chunks of ~{CHUNK_BYTES >> 10} KB along the sample axis; median of {repeats}\n")
        print("| filter | size MB | size/raw | write s | write MB/s | read s | read MB/s |")
        print("|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory(prefix="snapshot-compress-") as tmp:
            for name, opts in FILTERS.items():
                target = Path(tmp) / f"{name}.h5"
                w = statistics.median(write(target, arrays, opts) for _ in range(repeats))
                r = statistics.median(read(target) for _ in range(repeats))
                size = target.stat().st_size
                print(f"| {name} | {size / 2**20:.1f} | {size / raw:.3f} | {w:.2f} | "
                      f"{raw / 2**20 / w:.0f} | {r:.2f} | {raw / 2**20 / r:.0f} |")
                target.unlink()
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
