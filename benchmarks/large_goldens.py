"""Large goldens: snapshot-tool's record and compare against a bare-TensorFlow script.

    .venv/bin/python benchmarks/large_goldens.py [--quick] [--repeats 3] [--sizes 10000,...]

Everything is measured on whole processes, side by side in one run, because that is what a
CI job pays: the tool's CLI (``python -m snapshot_tool record|compare ... --no-latency``)
against benchmarks/bare_tf.py, the script a user would write by hand (load the SavedModel,
run ``serving_default`` batch by batch, ``np.savez`` / ``np.load`` + ``np.allclose``).
Both sides call ``gc.freeze()`` when their work is done, so neither pays the interpreter's
exit-time collections over TensorFlow's import objects: the ratios are like for like. The
tool's modules are byte-compiled once before anything is timed, as ``pip install`` does:
with ``PYTHONDONTWRITEBYTECODE`` set (as on the shared dev machine) a run from the source
tree would otherwise compile all of snapshot_tool from source every time, which no
installed copy does (TensorFlow's own modules are installed, hence compiled, for both).

1. **Time**: record and compare vs the bare script on a compute-heavy model (ResNet50 from
   ``keras.applications`` with ``weights=None``: random weights, nothing downloaded) and on
   a cheap 2-input MLP over 1,000,000 samples (batch 1024), where the tool's own work shows.
   One untimed warm-up round (page cache, first imports), then ``--repeats`` rounds in which
   the four processes run interleaved in a rotated order, so drift on this shared machine
   hits them all alike. Medians, the min-max spread, and the ratios tool / bare, for wall
   time and for CPU seconds (user + system of each process tree, from ``os.wait4``: what
   the tool's helper threads and validation child cost in total, and less moved than wall
   time by other jobs on a shared machine).
2. **By size**: the MLP at 10k, 100k, 1M and 5M samples, each size run like a timing
   case (interleaved repeats, medians; the 1M timing case is reused): wall and CPU ratios
   of record and compare at every size, and peak RSS of compare (and record) with the
   bare compare beside it. Peak RSS comes from ``os.wait4`` (the kernel's
   ``ru_maxrss`` of that child). This parent never imports TensorFlow and stays small,
   because Linux carries a parent's resident set over fork/exec into the child's figure.
3. **Size**: the golden's bytes against the raw ``.npz`` (``np.savez``, uncompressed) of
   the same inputs and outputs that the bare record writes.

The machine's load average is printed before and after: with other jobs on the same cores,
absolute seconds move; the interleaved ratios are what to quote. Not part of the test suite;
``make bench`` runs it. ``--quick`` is a smoke run (16 ResNet samples, 100k MLP samples,
sizes 10k and 100k, one repeat) that checks the benchmark itself still works. The ResNet
case defaults to 32 samples in batches of 8 (four batches, so record's one extra batch for
its determinism check weighs as it would in a real run, at a cost this shared machine can
afford; ``--resnet-samples``/``--resnet-batch`` change it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MB = 1024 * 1024
PHASES = ("bare_record", "tool_record", "bare_compare", "tool_compare")

# The cheap model: two inputs, one small output; about 112 bytes of tensors per sample.
MLP_INPUTS = {"a": 16, "b": 8}
MLP_OUTPUT = 4


@dataclass(frozen=True)
class Case:
    name: str
    model: Path
    samples: int
    batch: int
    description: str


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_kb: int
    returncode: int
    cpu_s: float = 0.0  # user + system, the child's and its own children's


@dataclass
class CaseResult:
    case: Case
    runs: dict[str, list[Run]] = field(default_factory=dict)
    golden_bytes: int = 0
    npz_bytes: int = 0

    def median_s(self, phase: str) -> float:
        return statistics.median(r.seconds for r in self.runs[phase])

    def median_cpu(self, phase: str) -> float:
        return statistics.median(r.cpu_s for r in self.runs[phase])

    def median_mb(self, phase: str) -> float:
        return statistics.median(r.peak_kb for r in self.runs[phase]) / 1024


# --- children (the only code that imports TensorFlow) -----------------------------------------


def build_models(root: Path, which: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)  # fixed random weights: every run does the same arithmetic
    if which == "resnet50":
        image = keras.Input((224, 224, 3), name="image")
        model = keras.applications.ResNet50(weights=None, input_tensor=image)
    else:
        a = keras.Input((MLP_INPUTS["a"],), name="a")
        b = keras.Input((MLP_INPUTS["b"],), name="b")
        h = keras.layers.Concatenate()([a, b])
        h = keras.layers.Dense(64, activation="relu")(h)
        h = keras.layers.Dense(64, activation="relu")(h)
        model = keras.Model([a, b], keras.layers.Dense(MLP_OUTPUT)(h))
    model.export(str(root / which), verbose=False)


def write_inputs(path: Path, which: str, samples: int) -> None:
    rng = np.random.default_rng(0)
    if which == "resnet50":
        arrays = {"image": rng.random((samples, 224, 224, 3), dtype=np.float32)}
    else:
        arrays = {k: rng.standard_normal((samples, d), dtype=np.float32)
                  for k, d in MLP_INPUTS.items()}
    np.savez(path, **arrays)


# --- whole-process runs -----------------------------------------------------------------------


def byte_compile() -> None:
    """Write snapshot_tool's .pyc files, as installing it does (see the module docstring);
    py_compile writes them even under PYTHONDONTWRITEBYTECODE, and every run reads them."""
    import compileall

    compileall.compile_dir(str(REPO / "snapshot_tool"), quiet=1)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The worktree's snapshot_tool wins over any installed copy; TensorFlow's start-up
    # chatter is muted the same way for both sides.
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run(cmd: Sequence[str], cwd: Path) -> Run:
    """Run ``cmd`` to completion; wall seconds and the child's own peak RSS (KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # wait4 gives this child's rusage alone (not RUSAGE_CHILDREN's running maximum).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                         f"{out.decode(errors='replace')[-2000:]}"
                         f"{err.decode(errors='replace')[-4000:]}")
    return Run(seconds, int(usage.ru_maxrss), proc.returncode,
               usage.ru_utime + usage.ru_stime)


def phase_cmd(phase: str, case: Case, root: Path, inputs: Path, tag: str = "") -> list[str]:
    py = sys.executable
    golden = root / f"{case.name}{tag}.h5"
    npz = root / f"{case.name}{tag}.expected.npz"
    if phase == "bare_record":
        return [py, str(HERE / "bare_tf.py"), "record", str(case.model), str(inputs), str(npz),
                "--batch", str(case.batch)]
    if phase == "bare_compare":
        return [py, str(HERE / "bare_tf.py"), "compare", str(case.model), str(inputs), str(npz),
                "--batch", str(case.batch)]
    if phase == "tool_record":
        return [py, "-m", "snapshot_tool", "record", str(case.model), "--golden", str(golden),
                "--inputs", str(inputs), "--batch-size", str(case.batch), "--no-latency",
                "--force"]
    return [py, "-m", "snapshot_tool", "compare", str(case.model), "--golden", str(golden),
            "--no-latency"]


def child(args: list[str], root: Path) -> None:
    run([sys.executable, str(Path(__file__).resolve()), "--child", *args], root)


def time_case(case: Case, root: Path, repeats: int) -> CaseResult:
    inputs = root / f"{case.name}.inputs.npz"
    child(["inputs", case.name.split("_")[0], str(case.samples), str(inputs)], root)
    res = CaseResult(case, {p: [] for p in PHASES})
    # Untimed round: creates the golden and the expected .npz, warms the page cache.
    for phase in PHASES:
        run(phase_cmd(phase, case, root, inputs), root)
    for r in range(repeats):
        for phase in PHASES[r % len(PHASES):] + PHASES[:r % len(PHASES)]:
            res.runs[phase].append(run(phase_cmd(phase, case, root, inputs), root))
            print(f"  {case.name} {phase}: {res.runs[phase][-1].seconds:.2f} s, "
                  f"{res.runs[phase][-1].peak_kb / 1024:.0f} MB", file=sys.stderr, flush=True)
    res.golden_bytes = (root / f"{case.name}.h5").stat().st_size
    res.npz_bytes = (root / f"{case.name}.expected.npz").stat().st_size
    inputs.unlink()
    return res


def size_sweep(mlp: Path, sizes: Sequence[int], root: Path, repeats: int,
               done: Sequence[CaseResult]) -> list[CaseResult]:
    """The MLP at each size, timed and measured like a timing case (interleaved repeats;
    medians), reusing a timing case of the same size instead of running it twice."""
    rows = []
    for n in sizes:
        same = [r for r in done if r.case.model == mlp and r.case.samples == n]
        res = same[0] if same else time_case(Case(f"mlp_{n}", mlp, n, 1024, ""), root, repeats)
        rows.append(res)
        print(f"  sweep {n}: compare {res.median_mb('tool_compare'):.0f} MB, bare "
              f"{res.median_mb('bare_compare'):.0f} MB", file=sys.stderr, flush=True)
    return rows


# --- report -----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table, so the output pastes into an issue note as it is."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, python {platform.python_version()}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def size_ratio(golden: int, npz: int) -> str:
    """The ratio to 4 places and the difference in KB: a golden of tensors that do not
    compress (stored raw) differs from the .npz only by what each file adds to the arrays
    (a few KB), which 2 places would round away in either direction."""
    return f"{golden / npz:.4f} ({(golden - npz) / 1024:+.0f} KB)"


def report_times(results: Sequence[CaseResult], repeats: int) -> None:
    print(f"\n### Time and memory, whole processes (median of {repeats} interleaved repeats)\n")
    rows = []
    for r in results:
        rows.append([
            r.case.name, f"{r.case.samples:,}", str(r.case.batch),
            f"{r.median_s('bare_record'):.2f}", f"{r.median_s('tool_record'):.2f}",
            f"{r.median_s('tool_record') / r.median_s('bare_record'):.2f}x",
            f"{r.median_s('bare_compare'):.2f}", f"{r.median_s('tool_compare'):.2f}",
            f"{r.median_s('tool_compare') / r.median_s('bare_compare'):.2f}x",
            f"{r.median_mb('bare_compare'):.0f}", f"{r.median_mb('tool_compare'):.0f}",
            f"{r.median_mb('tool_compare') / r.median_mb('bare_compare'):.2f}x",
            f"{r.golden_bytes / MB:.1f}", f"{r.npz_bytes / MB:.1f}",
            size_ratio(r.golden_bytes, r.npz_bytes)])
    table(["case", "N", "B", "bare rec s", "record s", "ratio", "bare cmp s", "compare s",
           "ratio", "bare cmp MB", "compare MB", "ratio", "golden MB", "raw npz MB",
           "size ratio"], rows)
    print("\nCPU seconds (user + system of the whole process tree; medians): less moved by "
          "other jobs than wall time, and what the tool's helper threads cost in total\n")
    table(["case", "bare rec cpu", "record cpu", "ratio", "bare cmp cpu", "compare cpu",
           "ratio"], [[
               r.case.name, f"{r.median_cpu('bare_record'):.2f}",
               f"{r.median_cpu('tool_record'):.2f}",
               f"{r.median_cpu('tool_record') / r.median_cpu('bare_record'):.2f}x",
               f"{r.median_cpu('bare_compare'):.2f}", f"{r.median_cpu('tool_compare'):.2f}",
               f"{r.median_cpu('tool_compare') / r.median_cpu('bare_compare'):.2f}x"]
              for r in results])
    print("\nspread (min-max s): " + "; ".join(
        f"{r.case.name} " + ", ".join(
            f"{p} {min(x.seconds for x in r.runs[p]):.2f}-{max(x.seconds for x in r.runs[p]):.2f}"
            for p in PHASES) for r in results))
    for r in results:
        print(f"{r.case.name}: {r.case.description}")


def report_sweep(rows: Sequence[CaseResult], repeats: int) -> None:
    print(f"\n### By golden size (MLP, batch 1024; medians of {repeats} interleaved repeats)\n")
    out = [[f"{r.case.samples:,}", f"{r.median_s('tool_record'):.1f}",
            f"{r.median_s('bare_record'):.1f}", ratio(r, "record", "s"),
            f"{r.median_s('tool_compare'):.1f}", f"{r.median_s('bare_compare'):.1f}",
            ratio(r, "compare", "s"), ratio(r, "record", "cpu"), ratio(r, "compare", "cpu"),
            f"{r.median_mb('tool_compare'):.0f}", f"{r.median_mb('bare_compare'):.0f}",
            ratio(r, "compare", "mb"), f"{r.median_mb('tool_record'):.0f}",
            f"{r.golden_bytes / MB:.1f}", f"{r.npz_bytes / MB:.1f}",
            size_ratio(r.golden_bytes, r.npz_bytes)] for r in rows]
    table(["N", "record s", "bare rec s", "ratio", "compare s", "bare cmp s", "ratio",
           "record cpu ratio", "compare cpu ratio", "compare MB", "bare cmp MB", "ratio",
           "record MB", "golden MB", "raw npz MB", "size ratio"], out)
    first, last = rows[0], rows[-1]
    print(f"\ncompare peak at {last.case.samples:,} / at {first.case.samples:,}: "
          f"{last.median_mb('tool_compare') / first.median_mb('tool_compare'):.2f}x "
          "(goal <= 1.2x)")
    at_1m = [r for r in rows if r.case.samples == 1_000_000]
    if at_1m:
        r = at_1m[0]
        print(f"compare peak at 1,000,000 vs bare script: {r.median_mb('tool_compare'):.0f} "
              f"vs {r.median_mb('bare_compare'):.0f} MB (goal: below)")


def ratio(r: CaseResult, command: str, measure: str) -> str:
    """tool / bare of ``command`` (record, compare): wall seconds, CPU seconds or peak MB."""
    median = {"s": r.median_s, "cpu": r.median_cpu, "mb": r.median_mb}[measure]
    return f"{median(f'tool_{command}') / median(f'bare_{command}'):.2f}x"


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per case (median)")
    p.add_argument("--resnet-samples", type=int, default=32)
    p.add_argument("--resnet-batch", type=int, default=8)
    p.add_argument("--mlp-samples", type=int, default=1_000_000)
    p.add_argument("--sizes", default="10000,100000,1000000,5000000",
                   help="comma-separated sample counts for the memory sweep ('' skips it)")
    p.add_argument("--only", choices=("time", "sweep"), help="run one section")
    p.add_argument("--cases", default="resnet50,mlp",
                   help="comma-separated timing cases (resnet50, mlp)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.resnet_samples, args.mlp_samples = 1, 16, 100_000
        args.sizes = "10000,100000"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            build_models(Path(rest[1]), rest[0])
        else:
            write_inputs(Path(rest[2]), rest[0], int(rest[1]))
        return 0
    started = time.perf_counter()
    print("## snapshot-tool vs bare TensorFlow, large goldens\n")
    print(f"machine: {machine()}; load average at start {load()}")
    print("both sides gc.freeze() before exit (like for like: no exit-time GC walk on either); "
          "snapshot_tool byte-compiled first, as installed")
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="snapshot-large-") as tmp:
        root = Path(tmp)
        results: list[CaseResult] = []
        sweep: list[CaseResult] = []
        child(["build", "mlp", str(root)], root)
        wanted = {c.strip() for c in args.cases.split(",") if c.strip()}
        if args.only != "sweep":
            if "resnet50" in wanted:
                child(["build", "resnet50", str(root)], root)
            cases = [Case("resnet50", root / "resnet50", args.resnet_samples, args.resnet_batch,
                          f"ResNet50, random weights, 224x224x3 -> 1000, batch "
                          f"{args.resnet_batch}"),
                     Case("mlp", root / "mlp", args.mlp_samples, 1024,
                          "MLP a[16]+b[8] -> 64 -> 64 -> 4, batch 1024")]
            results = [time_case(c, root, args.repeats) for c in cases if c.name in wanted]
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        if args.only != "time" and sizes:
            sweep = size_sweep(root / "mlp", sizes, root, args.repeats, results)
    if results:
        report_times(results, args.repeats)
    if sweep:
        report_sweep(sweep, args.repeats)
    print(f"\nload average at end {load()}; benchmark wall time "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
