"""A stop asked for by a signal (SIGTERM from a cancelled or timed-out CI job, Ctrl-C),
delivered so that it is never lost.

Python runs a signal handler in the main thread between two bytecodes. If the main thread
is inside a finalizer at that moment (h5py closing an object, a generator being cleaned
up), the exception the handler raises is printed as "Exception ignored in ..." with a
traceback and then dropped: the run goes on and may finish replacing the golden it was
told to stop writing. So the handler also remembers the stop; :func:`raise_if_stopped` raises it
again where work is committed (before a golden or report is put in place, at each progress
step), and the hook for dropped exceptions keeps that one quiet.

Only the command-line entry point calls :func:`install`; a library caller keeps its own
signal handling, and :func:`raise_if_stopped` is then a no-op.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so it unwinds as Ctrl-C does: temp files removed,
    the old golden kept, one error line."""


_pending: type[KeyboardInterrupt] | None = None


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    raise _pending()


_previous_hook: Any = sys.unraisablehook


def _quiet_dropped_stop(args: Any) -> None:
    # A stop dropped inside a finalizer is raised again by raise_if_stopped(); its traceback would
    # only tell the user about h5py's internals.
    if _pending is not None and isinstance(args.exc_value, KeyboardInterrupt):
        return
    _previous_hook(args)


def install() -> None:
    """Route SIGTERM and SIGINT through :func:`raise_if_stopped`'s memory of them."""
    global _previous_hook
    if sys.unraisablehook is not _quiet_dropped_stop:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _quiet_dropped_stop
    # A signal the parent set to be ignored stays ignored (`cmd &` in a script ignores
    # SIGINT, so a Ctrl-C meant for the foreground job does not stop it); so does one a
    # host program chose its own handler for.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_signal)


def raise_if_stopped() -> None:
    """Raise the stop a signal asked for, if one did (again, if a finalizer dropped it)."""
    if _pending is not None:
        raise _pending()


def exit_code() -> int | None:
    """The exit code a stop asks for: 143 for SIGTERM, 130 for Ctrl-C (128 + the signal, as
    a shell reports a process the signal ended); None without one."""
    if _pending is None:
        return None
    return 143 if issubclass(_pending, Terminated) else 130


def reset() -> None:
    """Forget a stop (tests that deliver one in-process)."""
    global _pending
    _pending = None
