"""The standard streams and the terminal as the command line finds them, made safe to print to.

Only the command-line entry point calls :func:`prepare_streams`; a library caller (and
pytest's capture) keeps its own streams. What it guards against, each seen on a real run:

- a reader that stops early (``snapshot-tool compare ... | head -1``): every later write
  fails with EPIPE, and rich and click turned that into exit 1, which means "regression
  found". Output the reader no longer wants is dropped; the exit code is the command's.
- a stream closed before the start (``>&-``, ``2>&-``, a daemon's launcher): Python gives
  ``None`` for it, and the next file opened takes its descriptor, so whatever writes to
  "stderr" (TensorFlow's C++ logging, a warning) would write into that file: into the
  golden. The descriptor is pointed at /dev/null instead.
- a terminal whose encoding is not UTF-8 (a latin-1 or ASCII locale on an old server): a
  "…" or a non-ASCII path must not end the run in UnicodeEncodeError; it prints as "?".
  A file name that is not UTF-8 at all prints as its bytes on a UTF-8 terminal.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
from typing import Any, TextIO

# Narrower than this, rich cuts every table cell down to "…" and the names are lost; a
# wide line that the terminal wraps still holds everything.
MIN_WIDTH = 80
# A CI log is not a terminal; rich would assume 80 columns and fold the tables.
LOG_WIDTH = 160


class _DropWhenClosed:
    """A text stream that, once its reader is gone, drops what is written to it."""

    def __init__(self, stream: TextIO, fd: int) -> None:
        self._stream, self._fd, self.reader_gone = stream, fd, False
        # Any other failure (a full disk under `> listing.txt`): the output is incomplete,
        # which the run must say (see :func:`output_error`).
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._gone(exc)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._gone(exc)

    def _gone(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError):
            self.error = exc
        # What is still buffered goes to /dev/null when the interpreter flushes at exit,
        # instead of failing there with "Exception ignored ... BrokenPipeError".
        self.reader_gone = True
        _point_at_devnull(self._fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def output_error() -> str | None:
    """Why stdout lost output, other than its reader leaving (None: it did not)."""
    with contextlib.suppress(OSError):
        sys.stdout.flush()
    exc = getattr(sys.stdout, "error", None)
    if not isinstance(exc, OSError):
        return None
    return f"cannot write to standard output: {exc.strerror or exc}; the output is incomplete"


def _point_at_devnull(fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    if null != fd:
        os.dup2(null, fd)
        os.close(null)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _utf8(stream: TextIO) -> bool:
    try:
        return codecs.lookup(stream.encoding or "ascii").name == "utf-8"
    except LookupError:
        return False


def prepare_streams() -> None:
    """Make stdin, stdout and stderr safe for the rest of the run (see the module doc)."""
    for fd in (0, 1, 2):
        if not _is_open(fd):
            _point_at_devnull(fd)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(fd, "w", closefd=False)  # lives as long as the run
        with contextlib.suppress(AttributeError, ValueError):
            # A file name that is not UTF-8 (surrogate escapes) prints as the bytes it is on
            # a UTF-8 terminal, and as "?" on another, as "…" does.
            stream.reconfigure(errors="surrogateescape" if _utf8(stream) else "replace")
        if not isinstance(stream, _DropWhenClosed):
            stream = _DropWhenClosed(stream, fd)
        setattr(sys, name, stream)


def console_width(stream: TextIO | None) -> int:
    """The width to render tables at: COLUMNS, else the terminal's, never below
    :data:`MIN_WIDTH`; :data:`LOG_WIDTH` when the output is not a terminal and COLUMNS does
    not say. COLUMNS=0, which some CI runners set, and values that are not numbers count as
    unset (rich printed nothing at all for 0)."""
    text = os.environ.get("COLUMNS", "").strip()
    columns = int(text) if text.isdigit() else 0
    if columns <= 0:
        columns = _terminal_columns(stream)
    return max(MIN_WIDTH, columns) if columns > 0 else LOG_WIDTH


def _terminal_columns(stream: TextIO | None) -> int:
    """The terminal's width, or 0 when ``stream`` is not a terminal (or does not say)."""
    try:
        if stream is None or not stream.isatty():
            return 0
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0
