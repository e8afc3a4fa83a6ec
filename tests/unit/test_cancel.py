"""A stop asked for by a signal is never lost, even when it lands inside a finalizer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapshot_tool import atomic, cancel


@pytest.fixture
def installed() -> Iterator[None]:
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    hook = sys.unraisablehook
    # As an interactive shell leaves them: under `nohup ... &` SIGINT arrives ignored, and
    # install() rightly keeps it so (test_an_ignored_sigint_stays_ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cancel.install()
    try:
        yield
    finally:
        cancel.reset()
        for s, h in handlers.items():
            signal.signal(s, h)
        sys.unraisablehook = hook


class _SignalsWhileFinalized:
    """Like an h5py object whose close is running when SIGTERM arrives."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        # The handler runs between two bytecodes of this finalizer, so its exception
        # can only be dropped (printed as "Exception ignored in ...").
        for _ in range(10_000):
            pass


def _drop_in_finalizer() -> None:
    obj = _SignalsWhileFinalized()
    del obj


def test_stop_swallowed_by_a_finalizer_is_raised_again_and_quietly(
        installed: None, capsys: pytest.CaptureFixture[str]) -> None:
    _drop_in_finalizer()  # without the memory of the stop, the run would go on from here
    with pytest.raises(cancel.Terminated):
        cancel.raise_if_stopped()
    assert "Traceback" not in capsys.readouterr().err


def test_a_swallowed_stop_does_not_publish_the_file(installed: None, tmp_path: Path) -> None:
    target = tmp_path / "g.h5"
    target.write_bytes(b"old")
    with pytest.raises(cancel.Terminated):
        with atomic.replacing(target) as tmp:
            tmp.write_bytes(b"new")
            _drop_in_finalizer()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.h5"]


def test_ctrl_c_is_remembered_as_an_interrupt(installed: None) -> None:
    with pytest.raises(KeyboardInterrupt) as raised:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):
            pass
    assert not isinstance(raised.value, cancel.Terminated)
    with pytest.raises(KeyboardInterrupt):
        cancel.raise_if_stopped()


def test_check_does_nothing_without_a_signal() -> None:
    cancel.raise_if_stopped()


def test_a_stop_right_after_the_temp_file_exists_removes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window a cancelled CI job hits when it signals as soon as the temp file appears."""
    real_close = os.close

    def close_then_stop(fd: int) -> None:
        real_close(fd)
        raise cancel.Terminated()

    target = tmp_path / "g.h5"
    target.write_bytes(b"old")
    monkeypatch.setattr(atomic.os, "close", close_then_stop)
    with pytest.raises(cancel.Terminated):
        with atomic.replacing(target):
            pass
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["g.h5"]
    assert target.read_bytes() == b"old"


def test_a_temp_name_taken_by_another_writer_is_not_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "g.h5"
    theirs = tmp_path / ".g.h5.theirs.tmp"
    theirs.write_bytes(b"theirs")
    monkeypatch.setattr(atomic, "temp_path", lambda t: theirs)
    with pytest.raises(FileExistsError):
        with atomic.replacing(target):
            pass
    assert theirs.read_bytes() == b"theirs"


def test_an_ignored_sigint_stays_ignored() -> None:
    """`snapshot-tool ... &` in a script: the shell ignores SIGINT for the background job,
    and a Ctrl-C meant for the foreground must not stop it."""
    code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "from snapshot_tool import cancel; cancel.install(); "
            "print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "
            "signal.getsignal(signal.SIGTERM) == cancel._on_signal)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "True"]
