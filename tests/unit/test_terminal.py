from __future__ import annotations

import io
import os

import pytest

from snapshot_tool.terminal import LOG_WIDTH, MIN_WIDTH, _DropWhenClosed, console_width


@pytest.mark.parametrize(("columns", "width"), [
    (None, LOG_WIDTH), ("0", LOG_WIDTH), ("-3", LOG_WIDTH), ("abc", LOG_WIDTH),
    ("20", MIN_WIDTH), ("120", 120), ("500", 500)])
def test_console_width_of_a_log(monkeypatch: pytest.MonkeyPatch, columns: str | None,
                                width: int) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert console_width(io.StringIO()) == width
    assert console_width(None) == width


def test_writes_after_the_reader_left_are_dropped() -> None:
    read, write = os.pipe()
    stream = os.fdopen(write, "w", buffering=1)
    wrapped = _DropWhenClosed(stream, write)
    wrapped.write("first\n")
    os.close(read)
    assert wrapped.write("second\n") == len("second\n")
    wrapped.flush()
    assert wrapped.reader_gone
    assert wrapped.write("third\n") == len("third\n")
    stream.close()  # the descriptor now points at /dev/null: closing flushes nowhere


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_remembered_not_dropped_silently() -> None:
    with open("/dev/full", "w", buffering=1) as stream:
        wrapped = _DropWhenClosed(stream, stream.fileno())
        wrapped.write("line\n")
        wrapped.flush()
        assert isinstance(wrapped.error, OSError)
        assert wrapped.reader_gone  # what follows is dropped: the run ends in one error
