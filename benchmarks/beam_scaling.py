"""--runner beam on the DirectRunner: 1 vs 2 worker processes, and the sharded golden against
the single file.

    make bench-beam           # = .venv-beam/bin/python benchmarks/beam_scaling.py
    python benchmarks/beam_scaling.py [--rows 200000] [--width 1024] [--batch 500]
                                      [--shards 8]

A model is built and saved here (nothing is downloaded): an MLP 64 -> W -> W -> 10
(softmax; W = ``--width``, 1024: about 2.2 MFLOP per row, so the model run, not Beam's
start-up, is what two workers share), fed ``--rows`` synthesized rows with class labels. Each
figure is one run (a Beam run takes tens of seconds; the machine is shared, so quote the
ratios, and rerun before trusting a small difference):

* **bare TF**: the loaded model called batch by batch in this process, outputs to numpy:
  what running the model costs anyway;
* **in-process** record and compare (``--no-latency``), the default runner;
* **beam record / compare** with ``direct_num_workers`` 1 and 2 in ``multi_processing``
  mode, ``--shards`` shards; speed-up = time(1 worker) / time(2 workers);
* **golden size and read time**: the single file against the sharded directory (shards plus
  manifest), each read whole with every checksum (``read_golden``), median of 3.

Every run pins TensorFlow to one intra-op thread (SNAPSHOT_TOOL_THREADS=1, inherited by the
worker processes), so one worker uses one core and two workers two: without it, one worker
already spreads each matmul over both cores of a 2-core machine and the worker count
measures only the pipeline's overhead. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["SNAPSHOT_TOOL_THREADS"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _build(folder: Path, rows: int, width: int) -> tuple[Path, Path, Path]:
    """The model (saved), a candidate with one weight moved, and inputs+labels (.npz)."""
    from snapshot_tool.models.base import import_tf

    tf = import_tf()
    rng = np.random.default_rng(0)
    sizes = [64, width, width, 10]
    weights = [rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
               for a, b in itertools.pairwise(sizes)]

    def save(path: Path, nudge: float) -> Path:
        ws = [w.copy() for w in weights]
        ws[-1][0, 0] += nudge

        class MLP(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.ws = [tf.Variable(w) for w in ws]

            @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
            def serve(self, x: Any) -> dict[str, Any]:
                h = tf.nn.relu(x @ self.ws[0])
                h = tf.nn.relu(h @ self.ws[1])
                return {"probs": tf.nn.softmax(h @ self.ws[2])}

        m = MLP()
        tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
        return path

    data = folder / "data.npz"
    np.savez(data, x=rng.normal(size=(rows, 64)).astype(np.float32),
             labels=rng.integers(0, 10, rows))
    return save(folder / "model", 0.0), save(folder / "candidate", 0.05), data


def _bare(model: Path, data: Path, batch: int) -> float:
    from snapshot_tool.models.base import import_tf

    tf = import_tf()
    x = np.load(data)["x"]
    fn = tf.saved_model.load(str(model)).signatures["serving_default"]
    start = time.perf_counter()
    for a in range(0, len(x), batch):
        fn(x=tf.constant(x[a:a + batch]))["probs"].numpy()
    return time.perf_counter() - start


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size


def _read_time(path: Path) -> float:
    from snapshot_tool.golden.io import read_golden

    return statistics.median(_timed(lambda: read_golden(path))[0] for _ in range(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    from snapshot_tool.beam.compare import compare_beam
    from snapshot_tool.beam.record import record_beam
    from snapshot_tool.compare import CompareOptions, compare
    from snapshot_tool.record import RecordOptions, record

    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        folder = Path(tmp)
        model, candidate, data = _build(folder, args.rows, args.width)
        common: dict[str, Any] = dict(inputs=data, labels=f"{data}:labels",
                                      batch_size=args.batch, latency=False)
        bare = _bare(model, data, args.batch)
        t_rec, _ = _timed(lambda: record(model, folder / "g.h5", **common))
        t_cmp, inproc = _timed(lambda: compare(candidate, folder / "g.h5", latency=False))
        rows: list[tuple[str, float]] = [("bare TF run", bare), ("in-process record", t_rec),
                                         ("in-process compare", t_cmp)]
        beam: dict[tuple[str, int], float] = {}
        for workers in (1, 2):
            flags = [f"direct_num_workers={workers}", "direct_running_mode=multi_processing"]
            golden = folder / f"g{workers}.h5.d"
            beam[("record", workers)], _ = _timed(lambda f=flags, g=golden: record_beam(
                model, g, RecordOptions(**common), shards=args.shards, beam_args=f))
            beam[("compare", workers)], result = _timed(lambda f=flags, g=golden: compare_beam(
                candidate, g, CompareOptions(latency=False), beam_args=f))
            assert result.passed == inproc.passed
            rows += [(f"beam record, {workers} worker(s)", beam[("record", workers)]),
                     (f"beam compare, {workers} worker(s)", beam[("compare", workers)])]
        print(f"{args.rows} rows, width {args.width}, batch {args.batch}, {args.shards} shards, "
              f"{os.cpu_count()} CPUs, SNAPSHOT_TOOL_THREADS=1")
        print(f"{'':34}{'seconds':>9}{'x bare TF':>11}")
        for label, seconds in rows:
            print(f"{label:34}{seconds:9.1f}{seconds / bare:11.2f}")
        for job in ("record", "compare"):
            print(f"speed-up of 2 workers over 1, {job}: "
                  f"{beam[(job, 1)] / beam[(job, 2)]:.2f}x")
        single, sharded = folder / "g.h5", folder / "g2.h5.d"
        s1, s2 = _size(single), _size(sharded)
        r1, r2 = _read_time(single), _read_time(sharded)
        print(f"golden size: single file {s1 / 1e6:.1f} MB, sharded {s2 / 1e6:.1f} MB "
              f"({s2 / s1:.3f}x)")
        print(f"golden read (read_golden, all checksums): single {r1:.2f} s, sharded "
              f"{r2:.2f} s ({r2 / r1:.2f}x)")


if __name__ == "__main__":
    main()
