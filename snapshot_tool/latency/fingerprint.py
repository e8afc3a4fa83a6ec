"""The environment a timing was taken in: the machine fingerprint, the calibration
workload, TensorFlow's thread settings (pinned before the runtime starts), and the
environment a golden records.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from snapshot_tool.errors import InputsError
from snapshot_tool.latency.measure import calibration_workload, single_threaded_blas, timed_call

#: The fingerprint fields that change timings; everything else is informational.
TIMING_FIELDS = (
    "cpu_model",
    "logical_cpus",
    "usable_cpus",
    "cpu_quota",
    "tensorflow",
    "threads",
)


def calibrate(repeats: int = 7) -> float:
    """Median wall seconds of the calibration workload (see :func:`calibrate_times`)."""
    return calibrate_times(repeats)[0]


def calibrate_times(repeats: int = 7) -> tuple[float, float]:
    """Median wall and median process-CPU seconds of a fixed numpy workload (256x256 float32
    matmuls + tanh, ~5-20 ms), timed together call by call.

    Stored beside a golden's samples; the ratio of two sessions' calibrations scales stored
    samples in advisory mode, each on its own clock (wall samples by the wall ratio, CPU
    samples by the CPU ratio), and is reported beside every stored verdict. BLAS is held to
    one thread where threadpoolctl is available, so the figure reflects per-core speed
    rather than how many idle cores the runner had; with one thread the CPU figure is the
    work itself, which waiting for a busy core does not stretch.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    with single_threaded_blas():
        calibration_workload()  # warm: page in, BLAS init
        times = [timed_call(calibration_workload) for _ in range(repeats)]
    wall, cpu = zip(*times, strict=True)
    return float(np.median(wall)) / 1e9, float(np.median(cpu)) / 1e9


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Processor", "cpu model", "cpu"):
        for line in text.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_dirs(controller: str) -> list[Path]:
    """This process's own cgroup directory first, then the mount root (as in containers)."""
    root = Path("/sys/fs/cgroup")
    dirs: list[Path] = []
    own = _read(Path("/proc/self/cgroup")) or ""
    for line in own.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controller == "" and controllers == "":
            dirs.append(root / rel)
        elif controller and controller in controllers.split(","):
            for mount in (root / controllers, root / controller, root / "cpu,cpuacct"):
                dirs.append(mount / rel)
    if controller:
        dirs += [root / controller, root / "cpu,cpuacct"]
    else:
        dirs.append(root)
    return dirs


def cgroup_cpu_quota() -> float | None:
    """CPUs the cgroup may use (quota / period), or ``None`` if unlimited or unreadable."""
    for d in _cgroup_dirs(""):  # cgroup v2: "max 100000" or "200000 100000"
        text = _read(d / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota == "max":
                return None
            try:
                return round(int(quota) / int(period or "100000"), 4)
            except (ValueError, ZeroDivisionError):
                return None
    for d in _cgroup_dirs("cpu"):  # cgroup v1
        q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if q is not None and p is not None:
            try:
                quota_us, period_us = int(q), int(p)
            except ValueError:
                return None
            return round(quota_us / period_us, 4) if quota_us > 0 and period_us > 0 else None
    return None


def environment_fingerprint(thread_settings: dict[str, int] | None = None) -> dict[str, object]:
    """A JSON-ready description of what the timings depend on.

    ``thread_settings`` are the caller's (e.g. TensorFlow intra/inter op threads). The
    TensorFlow version is included only if TensorFlow is already imported; this function
    never imports it.
    """
    tf = sys.modules.get("tensorflow")
    tf_version = getattr(tf, "__version__", None) if tf is not None else None
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_quota": cgroup_cpu_quota(),
        "tensorflow": str(tf_version) if tf_version is not None else None,
        "threads": {str(k): int(v) for k, v in sorted((thread_settings or {}).items())},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def _norm(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fingerprint_matches(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[bool, str]:
    """Whether two fingerprints agree on the fields that change timings, and which differ.

    Compared: CPU model, logical and usable CPUs, cgroup CPU quota, TensorFlow version,
    thread settings. Python, numpy and platform strings are informational. A field missing
    on one side counts as different (unknown is not the same as equal).
    """
    diffs = []
    for key in TIMING_FIELDS:
        va, vb = _norm(a.get(key)), _norm(b.get(key))
        if va != vb:
            diffs.append(f"{key} {va!r} vs {vb!r}")
    if diffs:
        return False, "environment differs: " + "; ".join(diffs)
    return True, ""


def tensorflow_thread_settings() -> dict[str, int]:
    """TensorFlow's intra/inter-op thread counts as configured (0 = TF chooses)."""
    from snapshot_tool.models.base import import_tf

    tf = import_tf()
    return {
        "intra_op_parallelism_threads": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_parallelism_threads": int(tf.config.threading.get_inter_op_parallelism_threads()),
    }


def environment(thread_settings: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Where a golden was recorded: enough to explain a difference, not to reproduce one.

    The latency fingerprint (CPU model, CPUs, quota, TensorFlow, threads, python, numpy,
    platform) explains differences in outputs as well as in timings, so every golden carries
    it, plus the two versions only the golden itself depends on.
    """
    import h5py

    env: dict[str, Any] = environment_fingerprint(dict(thread_settings or {}))
    env["h5py"] = h5py.__version__
    env["machine"] = platform.machine()
    return env


def fix_threads() -> dict[str, int]:
    """Pin TensorFlow's thread pools before the runtime starts, and return the settings.

    TensorFlow sizes its pools from the machine when its context first starts; pinning them
    makes timings comparable between record and compare on the same machine, and the values
    are recorded so a different setting shows up in the fingerprint. SNAPSHOT_TOOL_THREADS
    overrides the intra-op count (e.g. 1 for the least noisy latency figures).
    """
    from snapshot_tool.models.base import import_tf

    tf = import_tf()
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    env = os.environ.get("SNAPSHOT_TOOL_THREADS", "").strip()
    if env and not (env.isdigit() and int(env) > 0):
        raise InputsError(f"SNAPSHOT_TOOL_THREADS={env!r}: expected a positive integer")
    intra = int(env) if env else cpus
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
    except RuntimeError:
        pass  # the runtime already started in this process; report what is in effect
    return tensorflow_thread_settings()

