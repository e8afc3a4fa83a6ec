"""Run a function in a child process under a hard time bound.

Why a process: a damaged HDF5 file can send the HDF5 C library into an endless loop (while
holding the GIL, so neither Ctrl-C nor a Python timer can interrupt it) or into a crash. The
only bound that always holds is a child process that is killed when its time is up; its
death, whatever the cause, becomes one clear :class:`SnapshotToolError`.

On Linux the child is forked: a few milliseconds, against ~0.3 s for a fresh interpreter
that imports numpy and h5py. The CLI reads goldens before it loads TensorFlow, so it forks a
single-threaded process. A library user may fork with TensorFlow's threads running; a forked
child inherits their locks, but it only runs h5py, numpy and hashlib, which take none of
them (glibc's fork handles malloc's own), and were it ever to block on one, the time bound
ends it like any other hang. Elsewhere (macOS forbids much after fork) a fresh interpreter
is started.

The function is named as ``"module:function"`` and takes and returns JSON values, so the
two ways of starting a child behave the same.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from snapshot_tool.errors import SnapshotToolError


class ChildFailed(SnapshotToolError):
    """The child process did not finish: it hung past its bound or died (crash, kill)."""


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return fn


def _run_in_child(target: str, args: list[Any]) -> bytes:
    """What the child reports: the result, a user error (type and message), or a crash."""
    try:
        doc: dict[str, Any] = {"ok": _resolve(target)(*args)}
    except SnapshotToolError as exc:
        doc = {"error": str(exc), "type": type(exc).__name__}
    except BaseException as exc:  # anything else is reported, not lost with the child
        doc = {"crash": f"{type(exc).__name__}: {exc}"}
    return json.dumps(doc).encode()


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until EOF, or None if ``deadline`` passes first."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _forked(target: str, args: list[Any], timeout: float) -> tuple[bytes | None, int]:
    r, w = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns on any fork of a multi-threaded process; see the module doc.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into the caller's code, never run atexit
        code = 0
        try:
            os.close(r)
            # As quiet as the spawned child: its failure is reported by the parent, once.
            faulthandler.disable()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            report = _run_in_child(target, args)
            view = memoryview(report)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = _read_all(r, time.monotonic() + timeout)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    if data is None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return data, status


def _spawned(target: str, args: list[Any], timeout: float) -> tuple[bytes | None, int]:
    env = dict(os.environ)
    # The child must import the very modules this process did.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen([sys.executable, "-m", "snapshot_tool.isolate", target,
                             json.dumps(args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, -signal.SIGKILL
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return out, proc.returncode


def _status_text(status: int) -> str:
    if status < 0:  # from subprocess: -signal
        return f"signal {-status}"
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def call_isolated(target: str, args: list[Any], *, timeout: float, what: str,
         errors: dict[str, type[SnapshotToolError]] | None = None,
         fork: bool | None = None) -> Any:
    """``target(*args)`` in a child process, within ``timeout`` seconds.

    A user error raised in the child is raised here again, as the type named in ``errors``
    (default :class:`SnapshotToolError`); a hang or a crash of the child raises
    :class:`ChildFailed` with ``what`` saying what was being done. ``fork`` forces one way
    of starting the child (tests); by default it forks where that is safe and cheap.
    """
    if _can_fork() if fork is None else fork:
        data, status = _forked(target, args, timeout)
    else:
        data, status = _spawned(target, args, timeout)
    if data is None:
        raise ChildFailed(f"{what} did not finish within {timeout:g} s and was stopped")
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = {}
    if "ok" in doc:
        return doc["ok"]
    if "error" in doc:
        raise (errors or {}).get(doc.get("type", ""), SnapshotToolError)(doc["error"])
    if "crash" in doc:
        raise ChildFailed(f"{what} failed ({doc['crash']})")
    raise ChildFailed(f"{what} crashed ({_status_text(status)})")


def _main(argv: list[str]) -> int:
    # The spawned child: run, write the report to stdout, exit without touching stdout again.
    data = _run_in_child(argv[0], json.loads(argv[1]))
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
