"""How much time and memory snapshot-tool's record and compare add on top of bare TensorFlow.

    .venv/bin/python benchmarks/overhead.py [--repeats 5] [--samples 2048] [--batch 64]

A regression gate that costs much more than running the model gets switched off in CI, so
its overhead is a target, and the project proves targets with benchmarks that print ratios
against a bare-TensorFlow baseline measured in the same process, never with timed unit tests
(machines are shared and noisy). Medians and ratios are what to quote.

Two models are built and exported here with Keras ``model.export()`` (nothing is
downloaded): a small CNN (32x32x3 image -> 10 logits), where the inputs dominate the data,
and a wide MLP (512 -> 2048 -> 2048 -> 1000), whose 1000 floats per sample make the outputs
large. For each, over the same N synthesized samples in batches of B:

* **bare run**: ``signatures["serving_default"]`` of a model already loaded with
  ``tf.saved_model.load``, called batch by batch, every output turned into numpy with
  ``.numpy()``. This is what running the model costs anyway.
* **bare load+run**: the same plus ``tf.saved_model.load`` (and the first call), because
  record and compare load the model themselves; "x load+run" is the apples-to-apples ratio,
  "x run" the pessimistic one.
* **record**: ``api.record(model, golden, num_samples=N, batch_size=B, latency=False,
  force=True)``: load, synthesize inputs, run, run the first batch twice more
  (``api.measure_spread``), sha256 of the model files, sha256 plus shuffle+gzip of every
  tensor into HDF5, fsync, rename.
* **compare**: ``api.compare(model, golden, latency=False)``: read the golden and verify
  its checksums, load, run, diff every output, agreement metrics.

The four phases run in one process, interleaved within each repeat and in a rotated order,
so machine drift and position effects hit them all equally; each figure is the median over
``--repeats``. A breakdown then times the library functions record and compare are made of,
one by one, so where the overhead comes from is measured rather than guessed.

Peak RSS is process-wide and never goes down, so it cannot be measured per phase in this
process: each phase runs once more in a fresh subprocess (this script with ``--child``) that
reports its own peak (``VmHWM``; ``peak_rss_kb`` says why not ``ru_maxrss``). An "idle"
child (TensorFlow imported, nothing run) shows the floor they all share, so the memory the
tool adds is visible beside the ratio of peaks.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Importing this module does not import TensorFlow; import_tf() does, quietly.
from snapshot_tool.models.base import import_tf

PHASES = ("bare_run", "bare_load_run", "record", "compare")
MEMORY_PHASES = ("idle", "bare", "record", "compare")
MB = 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    input_name: str
    sample_shape: tuple[int, ...]
    description: str


@dataclass
class ModelResult:
    spec: ModelSpec
    times: dict[str, list[float]] = field(default_factory=dict)
    parts: dict[str, list[float]] = field(default_factory=dict)
    golden_bytes: int = 0
    raw_bytes: int = 0
    memory_kb: dict[str, int] = field(default_factory=dict)

    def median(self, phase: str) -> float:
        return statistics.median(self.times[phase])

    def part(self, name: str) -> float:
        return statistics.median(self.parts[name])


# --- models ----------------------------------------------------------------------------------


def build_models(root: Path) -> list[ModelSpec]:
    """Export the two benchmark models under ``root`` with Keras ``model.export()``."""
    import_tf()
    import keras

    # Fixed weights, so every run of the benchmark measures the same arithmetic.
    keras.utils.set_random_seed(0)
    image = keras.Input((32, 32, 3), name="image")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    cnn = keras.Model(image, keras.layers.Dense(10)(h), name="cnn")

    features = keras.Input((512,), name="features")
    h = keras.layers.Dense(2048, activation="relu")(features)
    h = keras.layers.Dense(2048, activation="relu")(h)
    mlp = keras.Model(features, keras.layers.Dense(1000)(h), name="mlp")

    specs = [
        ModelSpec("cnn", root / "cnn", "image", (32, 32, 3), "3 conv 16/32/64 -> 10 logits"),
        ModelSpec("mlp", root / "mlp", "features", (512,), "512-2048-2048-1000"),
    ]
    for model, spec in zip((cnn, mlp), specs, strict=True):
        model.export(str(spec.path), verbose=False)
    return specs


def tool_inputs(spec: ModelSpec, samples: int) -> np.ndarray:
    """Exactly the array record synthesizes (seed 0), so bare TF runs the same samples."""
    from snapshot_tool.inputs.synthesize import synthesize
    from snapshot_tool.models.load import load_model

    sig = load_model(spec.path).signature(None)
    return synthesize(sig, samples, 0)[spec.input_name]


# --- the bare-TensorFlow baseline ------------------------------------------------------------


def bare_run(fn: Any, input_name: str, x: np.ndarray, batch: int) -> list[dict[str, Any]]:
    """Call ``fn`` batch by batch and materialize every output as numpy.

    The per-batch arrays are kept but not joined: joining is work the tool does (and is
    charged for), not part of running the model.
    """
    tf = import_tf()
    outs = []
    for start in range(0, x.shape[0], batch):
        result = fn(**{input_name: tf.constant(x[start:start + batch])})
        outs.append({k: v.numpy() for k, v in result.items()})
    return outs


def bare_load_run(path: Path, input_name: str, x: np.ndarray,
                  batch: int) -> list[dict[str, Any]]:
    tf = import_tf()
    # Hold the loaded object while its signature runs: the function alone does not keep
    # the object graph that owns the variables alive.
    loaded = tf.saved_model.load(str(path))
    return bare_run(loaded.signatures["serving_default"], input_name, x, batch)


# --- timing ------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    # Collect first so garbage left by the previous phase is not freed on this one's clock.
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_phases(spec: ModelSpec, x: np.ndarray, samples: int, batch: int, repeats: int,
                golden: Path) -> dict[str, list[float]]:
    """Median-ready samples of the four phases, interleaved per repeat."""
    from snapshot_tool import api

    tf = import_tf()
    loaded = tf.saved_model.load(str(spec.path))  # kept alive for fn; see bare_load_run
    fn = loaded.signatures["serving_default"]

    def record() -> None:
        api.record(spec.path, golden, num_samples=samples, batch_size=batch, latency=False,
                   force=True)

    def compare() -> None:
        result = api.compare(spec.path, golden, latency=False)
        if not result.passed:
            # A failing compare takes other code paths (fix hints); timing it would be
            # timing the wrong thing, and a deterministic model must pass against itself.
            raise SystemExit(f"compare of {spec.name} against its own golden failed")

    phases: dict[str, Callable[[], object]] = {
        "bare_run": lambda: bare_run(fn, spec.input_name, x, batch),
        "bare_load_run": lambda: bare_load_run(spec.path, spec.input_name, x, batch),
        "record": record,
        "compare": compare,
    }
    # One untimed round: first calls trace functions, fault in TensorFlow's lazily loaded
    # kernels and warm the page cache; that is start-up cost, not the per-run cost measured.
    for name in PHASES:
        phases[name]()
    times: dict[str, list[float]] = {name: [] for name in PHASES}
    for r in range(repeats):
        # Rotate the order so no phase always runs right after the same neighbour.
        for name in PHASES[r % len(PHASES):] + PHASES[:r % len(PHASES)]:
            times[name].append(timed(phases[name]))
    return times


def time_parts(spec: ModelSpec, samples: int, batch: int, repeats: int, golden: Path,
               scratch: Path) -> dict[str, list[float]]:
    """Time the library functions record and compare are built from, one by one."""
    parts: dict[str, list[float]] = {}
    for _ in range(repeats):
        time_parts_once(spec, samples, batch, golden, scratch, parts)
    return parts


def h5_write(path: Path, arrays: Mapping[str, np.ndarray], gzip: bool) -> None:
    """Write ``arrays`` with the golden's dataset options and write_golden's fsync, with or
    without the filter: the difference is the cost of the compression alone."""
    import h5py

    from snapshot_tool.golden.io import dataset_options

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            opts = dataset_options(v.shape, v) if gzip else {}
            f.create_dataset(k, data=v, **opts)
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())


def time_parts_once(spec: ModelSpec, samples: int, batch: int, golden: Path, scratch: Path,
                    parts: dict[str, list[float]]) -> None:
    from snapshot_tool import api
    from snapshot_tool.config import Config
    from snapshot_tool.golden.io import read_golden, tensor_sha256, write_golden
    from snapshot_tool.golden.schema import SignatureGolden
    from snapshot_tool.inputs.synthesize import synthesize
    from snapshot_tool.models.load import load_model, model_digest

    def add(name: str, fn: Callable[[], Any]) -> Any:
        # Keep the result: later parts work on it, as they do inside record and compare.
        box: list[Any] = []
        parts.setdefault(name, []).append(timed(lambda: box.append(fn())))
        return box[0]

    cfg = Config()
    model = add("load_model", lambda: load_model(spec.path))
    sig = model.signature(None)
    feeds = add("synthesize", lambda: synthesize(sig, samples, 0))
    outputs, batched = add("run_signature", lambda: api.run_signature(model, sig, feeds, batch))
    add("measure_spread", lambda: api.measure_spread(model, sig, feeds, batch))
    add("model_digest", lambda: model_digest(spec.path))
    tensors = {f"in_{k}": v for k, v in feeds.items()} | {
        f"out_{k}": v for k, v in outputs.items()}
    add("tensor_sha256", lambda: [tensor_sha256(v) for v in tensors.values()])
    sg = SignatureGolden(sig.name, feeds, outputs,
                         {k: {"batched": bool(b)} for k, b in batched.items()})
    add("write_golden", lambda: write_golden(scratch / "parts.h5", {"signature": sig.name},
                                             {sig.name: sg}, force=True))
    add("h5py_plain", lambda: h5_write(scratch / "plain.h5", tensors, gzip=False))
    add("h5py_gzip", lambda: h5_write(scratch / "gzip.h5", tensors, gzip=True))
    gold = add("read_golden", lambda: read_golden(golden))
    add("read_golden_nocheck", lambda: read_golden(golden, check=False))
    gsg = gold.signatures[sig.name]
    diffs = add("compare_outputs", lambda: api.compare_outputs(gsg, outputs, cfg, sig.name))

    def metrics() -> None:
        # compare checks threshold names against the golden before running the model,
        # which computes agreement metrics of the golden with itself; both are its cost.
        api.validate_metric_config(gold, [sig.name], cfg)
        api.compare_metrics(gsg, outputs, diffs, cfg)

    add("metrics", metrics)


# --- memory ------------------------------------------------------------------------------------


def child_main(args: argparse.Namespace) -> int:
    """One phase in a fresh process; prints its own peak RSS as JSON on the last line."""
    tf = import_tf()
    if args.child in ("idle", "bare"):
        # The same pools record and compare pin (api.fix_threads, passed down by the
        # parent), without importing snapshot_tool.api into the bare baseline.
        intra, inter = (int(v) for v in args.threads.split(","))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    if args.child == "bare":
        x = np.load(args.inputs_npy)
        bare_load_run(Path(args.model), args.input_name, x, args.batch)
    elif args.child == "record":
        from snapshot_tool import api

        api.record(args.model, args.golden, num_samples=args.samples, batch_size=args.batch,
                   latency=False, force=True)
    elif args.child == "compare":
        from snapshot_tool import api

        if not api.compare(args.model, args.golden, latency=False).passed:
            return 1
    print(json.dumps({"peak_kb": peak_rss_kb()}))
    return 0


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over a fork and an exec, so a child of
    this (by then large) parent would report at least the parent's RSS at fork time and
    every phase would look the same. VmHWM belongs to the address space exec created.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    # Elsewhere ru_maxrss is the best there is (KiB on Linux, bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def child_peak_kb(phase: str, spec: ModelSpec | None, golden: Path, inputs_npy: Path,
                  samples: int, batch: int, threads: str) -> int:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", phase,
           "--golden", str(golden), "--inputs-npy", str(inputs_npy), "--samples", str(samples),
           "--batch", str(batch), "--threads", threads]
    if spec is not None:
        cmd += ["--model", str(spec.path), "--input-name", spec.input_name]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"memory child {phase} failed ({proc.returncode}):\n{proc.stderr}")
    return int(json.loads(lines[-1])["peak_kb"])


# --- report ------------------------------------------------------------------------------------


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b > 0 else "   n/a"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


# Breakdown rows: (label, part key, what it belongs to). "both" = record and compare.
PART_ROWS = (
    ("load_model (tf.saved_model.load + specs)", "load_model", "both"),
    ("run_signature (N rows, batches of B)", "run_signature", "both"),
    ("synthesize (seeded inputs)", "synthesize", "record"),
    ("measure_spread (first batch twice more)", "measure_spread", "record"),
    ("model_digest (sha256 of model files)", "model_digest", "record"),
    ("write_golden (sha256 + shuffle/gzip-4 + fsync)", "write_golden", "record"),
    ("  of which tensor_sha256 (inputs+outputs)", "tensor_sha256", "record"),
    ("  h5py write, no filter (+fsync)", "h5py_plain", "reference"),
    ("  h5py write, shuffle+gzip-4 (+fsync)", "h5py_gzip", "reference"),
    ("read_golden (gunzip + sha256 verify)", "read_golden", "compare"),
    ("  read_golden(check=False) (gunzip only)", "read_golden_nocheck", "reference"),
    ("compare_outputs (tolerance diff)", "compare_outputs", "compare"),
    ("metrics (validate + agreement)", "metrics", "compare"),
)
RECORD_PARTS = ("load_model", "run_signature", "synthesize", "measure_spread", "model_digest",
                "write_golden")
COMPARE_PARTS = ("read_golden", "load_model", "run_signature", "compare_outputs", "metrics")


def report(results: Sequence[ModelResult], args: argparse.Namespace, threads: str,
           idle_kb: int) -> None:
    tf = import_tf()
    print("snapshot-tool overhead vs bare TensorFlow")
    print(f"  python {platform.python_version()}, tensorflow {tf.__version__}, "
          f"{os.cpu_count()} logical CPUs, TF threads intra,inter = {threads}")
    print(f"  N={args.samples} samples, B={args.batch}, median of {args.repeats} interleaved "
          "repeats; record/compare with latency=False")
    for r in results:
        print(f"  {r.spec.name}: {r.spec.description}, input {r.spec.input_name}"
              f"{list(r.spec.sample_shape)}")
    print()
    print("Time (seconds, medians; ratios are record or compare over the bare figure)")
    rows = []
    for r in results:
        run, load_run = r.median("bare_run"), r.median("bare_load_run")
        rec, cmp_ = r.median("record"), r.median("compare")
        rows.append([r.spec.name, str(args.samples), str(args.batch), f"{run:.3f}",
                     f"{load_run:.3f}", f"{rec:.3f}", fmt_ratio(rec, run),
                     fmt_ratio(rec, load_run), f"{cmp_:.3f}", fmt_ratio(cmp_, run),
                     fmt_ratio(cmp_, load_run)])
    print_table(["model", "N", "B", "bare run", "bare load+run", "record", "x run",
                 "x load+run", "compare", "x run", "x load+run"], rows)
    print("  spread (min-max over repeats): " + "; ".join(
        f"{r.spec.name} " + ", ".join(
            f"{p} {min(r.times[p]):.3f}-{max(r.times[p]):.3f}" for p in PHASES)
        for r in results))
    print()
    print(f"Peak RSS (MB, one fresh process per phase; idle = TensorFlow imported, nothing run: "
          f"{idle_kb / 1024:.0f} MB)")
    rows = []
    for r in results:
        m = {k: v / 1024 for k, v in r.memory_kb.items()}
        idle = idle_kb / 1024
        rows.append([r.spec.name, f"{m['bare']:.0f}", f"{m['record']:.0f}",
                     fmt_ratio(m["record"], m["bare"]), f"{m['record'] - m['bare']:+.0f}",
                     f"{m['compare']:.0f}", fmt_ratio(m["compare"], m["bare"]),
                     f"{m['compare'] - m['bare']:+.0f}",
                     fmt_ratio(m["record"] - idle, m["bare"] - idle),
                     fmt_ratio(m["compare"] - idle, m["bare"] - idle)])
    print_table(["model", "bare", "record", "x bare", "+MB", "compare", "x bare", "+MB",
                 "rec above idle", "cmp above idle"], rows)
    print()
    print("Golden size (shuffle + gzip-4) vs raw bytes of the inputs and outputs it stores")
    rows = [[r.spec.name, f"{r.golden_bytes / MB:.2f}", f"{r.raw_bytes / MB:.2f}",
             f"{r.golden_bytes / r.raw_bytes:.2f}"] for r in results]
    print_table(["model", "golden MB", "raw in+out MB", "golden/raw"], rows)
    print()
    print("Where the time goes (ms, medians of the same repeats; parts timed one by one "
          "with the library functions record/compare call)")
    rows = []
    for label, key, owner in PART_ROWS:
        row = [label, owner]
        for r in results:
            row.append(f"{r.part(key) * 1000:.0f}")
        rows.append(row)
    for label, keys, phase in (("sum of record's parts", RECORD_PARTS, "record"),
                               ("sum of compare's parts", COMPARE_PARTS, "compare")):
        row = [label, phase]
        for r in results:
            row.append(f"{sum(r.part(k) for k in keys) * 1000:.0f}")
        rows.append(row)
        rows.append([f"{phase} measured whole (above)", phase]
                    + [f"{r.median(phase) * 1000:.0f}" for r in results])
    rows.append(["bare run (above)", "baseline"]
                + [f"{r.median('bare_run') * 1000:.0f}" for r in results])
    print_table(["part", "in"] + [r.spec.name for r in results], rows)
    print()
    print("Overhead attribution (ms unless named otherwise; extras are above bare load+run)")
    rows = []
    for r in results:
        extra_rec = r.median("record") - r.median("bare_load_run")
        extra_cmp = r.median("compare") - r.median("bare_load_run")
        # The tool's first call lands in run_signature, bare TF's in its load+run figure,
        # so only the sum of load and run is comparable.
        load_run_tax = r.part("load_model") + r.part("run_signature") - r.median("bare_load_run")
        gzip = r.part("h5py_gzip") - r.part("h5py_plain")
        rows.append([r.spec.name, f"{extra_rec * 1000:.0f}", f"{extra_cmp * 1000:.0f}",
                     f"{load_run_tax * 1000:+.0f}",
                     f"{gzip * 1000:.0f}", f"{r.raw_bytes / MB / gzip:.0f}" if gzip > 0 else "n/a",
                     f"{(r.raw_bytes - r.golden_bytes) / MB:.1f}",
                     f"{r.part('tensor_sha256') * 1000:.0f}",
                     f"{(r.part('read_golden') - r.part('read_golden_nocheck')) * 1000:.0f}"])
    print_table(["model", "record extra", "compare extra", "tool load+run - bare",
                 "gzip (write)", "gzip MB/s", "MB saved", "sha256 (write)",
                 "sha256 (read)"], rows)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per phase (median)")
    p.add_argument("--samples", type=int, default=2048, help="samples N per run")
    p.add_argument("--batch", type=int, default=64, help="batch size B")
    # Internal: one memory phase in a fresh process (see child_main).
    p.add_argument("--child", choices=MEMORY_PHASES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--golden", help=argparse.SUPPRESS)
    p.add_argument("--input-name", help=argparse.SUPPRESS)
    p.add_argument("--inputs-npy", help=argparse.SUPPRESS)
    p.add_argument("--threads", default="0,0", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.repeats, args.samples, args.batch) < 1:
        p.error("--repeats, --samples and --batch must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args)
    import_tf()  # before anything else touches TensorFlow, so its start-up chatter is muted
    import h5py

    from snapshot_tool import api
    from snapshot_tool.golden.io import read_golden

    # Pin the pools now, as record/compare do: their own fix_threads() calls are no-ops once
    # the runtime has started, so bare TF and the tool run with exactly these settings.
    settings = api.fix_threads()
    threads = (f"{settings['intra_op_parallelism_threads']},"
               f"{settings['inter_op_parallelism_threads']}")
    started = time.perf_counter()
    cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="snapshot-overhead-") as tmp:
        root = Path(tmp)
        # compare(config=None) reads ./snapshot.toml or ./pyproject.toml; an empty working
        # directory means the dtype defaults apply, wherever the benchmark is started from.
        os.chdir(root)
        try:
            results: list[ModelResult] = []
            specs = build_models(root)
            for spec in specs:
                golden = root / f"{spec.name}.h5"
                x = tool_inputs(spec, args.samples)
                npy = root / f"{spec.name}.inputs.npy"
                np.save(npy, x)
                res = ModelResult(spec)
                res.times = time_phases(spec, x, args.samples, args.batch, args.repeats, golden)
                res.parts = time_parts(spec, args.samples, args.batch, args.repeats, golden,
                                       root)
                res.golden_bytes = golden.stat().st_size
                g = read_golden(golden)
                res.raw_bytes = sum(a.nbytes for sg in g.signatures.values()
                                    for a in (*sg.inputs.values(), *sg.outputs.values()))
                with h5py.File(golden, "r") as f:
                    assert "latency" not in f, "latency=False golden has latency data"
                for phase in ("bare", "record", "compare"):
                    res.memory_kb[phase] = child_peak_kb(
                        phase, spec, root / f"{spec.name}.child.h5" if phase == "record"
                        else golden, npy, args.samples, args.batch, threads)
                results.append(res)
            idle_kb = child_peak_kb("idle", None, root / "none.h5", root / "none.npy",
                                    args.samples, args.batch, threads)
        finally:
            os.chdir(cwd)
        report(results, args, threads, idle_kb)
    print(f"\n(benchmark wall time {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
