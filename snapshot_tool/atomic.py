"""Replacing a file whole: temp file beside the target, fsync, rename; nothing else ever.

Goldens and reports go through here, so a crash, ``kill -9``, a full disk or
``RLIMIT_FSIZE`` leaves either the old file or the new one, never a mix or a stub:

- the temp name carries the writer's host and pid, so the next writer removes the temp
  files of writers that died (``kill -9`` runs no cleanup), and never a live writer's;
- the name is shortened to fit the file system's name limit (a legal 250-character golden
  name must not fail because its temp name is longer);
- a symlinked target is replaced at the link's destination, so the link stays a link;
  a target that exists but is not a regular file (a device, a FIFO, a directory) is refused
  rather than replaced;
- a write that must not replace anything (``record`` without ``--force``) publishes with a
  hard link, which fails if the name exists: two writers started at once cannot both pass a
  "does it exist?" check and the later silently replace the earlier's file.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

from snapshot_tool.cancel import raise_if_stopped
from snapshot_tool.errors import SnapshotToolError

_SUFFIX = ".tmp"
# ".<name prefix>.<host tag>.<pid>.<random>.tmp"
_TEMP = re.compile(r"^\.(?P<name>.*)\.(?P<host>[0-9a-f]{6})\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def host_tag() -> str:
    """Six hex digits naming this machine: pids are only comparable on one host, and a
    folder on a network file system is shared by several."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def who() -> str:
    """``user@host``: who wrote a file (an accept's history, an obtained golden's run)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def temp_path(target: Path, pid: int | None = None) -> Path:
    """A fresh temp name beside ``target`` for writer ``pid`` (default: this process)."""
    tail = f".{host_tag()}.{os.getpid() if pid is None else pid}.{secrets.token_hex(4)}{_SUFFIX}"
    room = max(1, _name_max(target.parent) - len(tail.encode()) - 1)
    # Cut by bytes, as the file system counts them: a UTF-8 character cut in half is
    # dropped, and a name that is not UTF-8 at all (latin-1 bytes on disk) keeps its bytes.
    raw = os.fsencode(target.name)[:room]
    try:
        target.name.encode()
    except UnicodeEncodeError:
        name = os.fsdecode(raw)
    else:
        name = raw.decode("utf-8", "ignore")
    return target.parent / f".{name}{tail}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def stale_temps(target: Path) -> list[Path]:
    """Temp files for ``target`` left by writers on this host that are no longer running."""
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    mine = host_tag()
    stale = []
    for entry in entries:
        m = _TEMP.match(entry.name)
        if (m and m["host"] == mine and target.name.startswith(m["name"])
                and not _pid_alive(int(m["pid"]))):
            stale.append(entry)
    return stale


def clean_stale_temps(target: Path) -> None:
    for p in stale_temps(target):
        with contextlib.suppress(OSError):
            p.unlink()


def resolve_target(path: Path) -> Path:
    """Where a write to ``path`` must land: through symlinks to the real file, which must be
    a regular file if it exists."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    if real.is_symlink():  # realpath stops where it found a loop
        raise SnapshotToolError(f"{path} is a symlink loop (-> {os.readlink(real)}); "
                                "remove it or point it at a file")
    if real.exists() and not real.is_file():
        what = "a directory" if real.is_dir() else "not a regular file"
        shown = f"{path} (-> {real})" if real != path else str(path)
        raise SnapshotToolError(f"{shown} is {what}; give the path of a regular file to "
                                "write")
    return real


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is; not every platform lets a
    # directory be opened, and the data is already safe on those that do not.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AlreadyExists(SnapshotToolError):
    """An exclusive write found its target written by someone else meanwhile."""


def _publish_new(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target`` only if nothing has it: a hard link is created
    atomically or not at all. A file system without hard links (FAT, some network and
    container mounts; each says so with its own errno) gets the plain rename, after one more
    check (the window is then the few microseconds between the two calls)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        # NFS may create the link, lose the reply and report EEXIST on the retry: the name
        # then holds this very file, which is a success, not another writer's golden.
        if not _same_file(tmp, target):
            raise AlreadyExists(f"{target} already exists") from None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        if target.exists():
            raise AlreadyExists(f"{target} already exists") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _someone_elses(exc: BaseException, tmp: Path) -> bool:
    """Whether ``tmp`` failed to be created because another writer has that name."""
    return isinstance(exc, FileExistsError) and exc.filename == str(tmp)


def make_parent(target: Path) -> None:
    """Create ``target``'s folder, saying which path is in the way when it cannot be (the
    OS says only "No such file or directory" or "Not a directory")."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise  # the CLI names the path it was denied
    except OSError as exc:
        existing = next((p for p in (target.parent, *target.parent.parents) if p.exists()),
                        None)
        why = (f"{existing} is a file, not a folder"
               if existing is not None and not existing.is_dir()
               else f"{exc.strerror or exc} ({exc.filename or target.parent})")
        raise SnapshotToolError(f"cannot create the folder {target.parent} for {target}: "
                                f"{why}") from None


def _create_temp(tmp: Path, target: Path) -> int:
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        # The temp file's own name (".g.h5.5bce98...tmp") means nothing to the user; the
        # folder that refused it does.
        raise SnapshotToolError(f"cannot write {target}: its folder {target.parent} is not "
                                f"writable ({exc.strerror or exc})") from None


@contextlib.contextmanager
def replacing(path: str | Path, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; on normal exit it is fsynced and renamed over ``path``
    (its destination if a symlink), keeping the replaced file's mode. On any exception the
    temp file is removed and ``path`` is untouched. ``exclusive``: ``path`` must not exist
    when the new file is put in place; if another writer created it meanwhile,
    :class:`AlreadyExists` is raised and that writer's file is kept."""
    target = resolve_target(Path(path))
    make_parent(target)
    clean_stale_temps(target)
    tmp = temp_path(target)
    # The temp file is created inside the try: a SIGTERM landing just after it exists (a CI
    # job cancelled at that moment) must still remove it.
    try:
        os.close(_create_temp(tmp, target))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        # A temp file is created 0600; the result gets the mode the replaced file had, or
        # what a plain open() would have given it: goldens and reports are shared artefacts.
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else _default_mode())
        resolve_target(target)  # it may have become something else while we wrote
        raise_if_stopped()  # a stop a finalizer swallowed must not publish the file
        if exclusive:
            _publish_new(tmp, target)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        if not _someone_elses(exc, tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically. A file name that is not UTF-8 in
    the text (a report naming such a golden; Python holds its bytes as surrogate escapes)
    is written with backslash escapes (``\\xe9``), as the golden stores it, not refused."""
    from snapshot_tool.golden.schema import storable

    with replacing(path) as tmp:
        with tmp.open("w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(storable(text))
            fh.flush()
