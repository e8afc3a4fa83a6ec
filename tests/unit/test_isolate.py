"""The child-process bound: results and user errors come back, hangs and crashes end as one
ChildFailed, on both ways of starting the child."""

from __future__ import annotations

import os
import signal
import time

import pytest

from snapshot_tool.errors import GoldenError, SnapshotToolError
from snapshot_tool.isolate import ChildFailed
from snapshot_tool.isolate import call_isolated as call

HERE = "tests.unit.test_isolate"


def add(a: int, b: int) -> int:
    return a + b


def spin() -> None:
    while True:
        pass


def die() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def refuse(message: str) -> None:
    raise GoldenError(message)


def bug() -> None:
    raise RuntimeError("wrong B-tree signature")


@pytest.mark.parametrize("fork", [True, False])
def test_result_and_errors_come_back(fork: bool) -> None:
    assert call(f"{HERE}:add", [2, 3], timeout=60, what="adding", fork=fork) == 5
    with pytest.raises(GoldenError, match="bad golden"):
        call(f"{HERE}:refuse", ["bad golden"], timeout=60, what="x",
             errors={"GoldenError": GoldenError}, fork=fork)
    with pytest.raises(ChildFailed, match=r"reading it failed \(RuntimeError: wrong B-tree"):
        call(f"{HERE}:bug", [], timeout=60, what="reading it", fork=fork)


@pytest.mark.parametrize("fork", [True, False])
def test_hang_is_stopped_in_time(fork: bool) -> None:
    start = time.monotonic()
    with pytest.raises(ChildFailed, match="did not finish within 1 s"):
        call(f"{HERE}:spin", [], timeout=1, what="spinning", fork=fork)
    # Spawning an interpreter on a loaded machine takes a while; the bound is what matters.
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("fork", [True, False])
def test_crash_is_an_error(fork: bool) -> None:
    with pytest.raises(ChildFailed, match="signal 11"):
        call(f"{HERE}:die", [], timeout=60, what="crashing", fork=fork)
    assert issubclass(ChildFailed, SnapshotToolError)  # so the CLI exits 2, one line
