"""Whole-file replacement: temp names, stale temps of dead writers, symlinks, non-regular
targets, failures mid-write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapshot_tool.atomic import replacing, stale_temps, temp_path, write_text
from snapshot_tool.errors import SnapshotToolError


def test_temp_name_fits_a_long_target(tmp_path: Path) -> None:
    target = tmp_path / ("g" * 250)
    tmp = temp_path(target)
    assert len(tmp.name.encode()) <= 255 and tmp.parent == tmp_path
    write_text(target, "ok")
    assert target.read_text() == "ok"


def test_failure_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_dead_writers_temps_are_removed_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "g.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = temp_path(target, pid=int(dead.stdout))
    stale.write_bytes(b"left by kill -9")
    live = temp_path(target)
    live.write_bytes(b"being written")
    other = temp_path(tmp_path / "other.h5", pid=int(dead.stdout))
    other.write_bytes(b"another golden's")
    assert stale_temps(target) == [stale]
    write_text(target, "new")
    assert not stale.exists() and live.exists() and other.exists()


def test_symlink_target_replaced_link_kept(tmp_path: Path) -> None:
    real = tmp_path / "store" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert real.stat().st_mode & 0o777 == 0o640


def test_non_regular_targets_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for target in (fifo, link, tmp_path):
        with pytest.raises(SnapshotToolError, match=r"not a regular file|is a directory"):
            write_text(target, "x")
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["fifo", "link"]


def test_exclusive_write_keeps_a_file_another_writer_put_there_meanwhile(tmp_path: Path
                                                                         ) -> None:
    """Two writers that both found no file: the second to finish must not replace the
    first's (a record without --force), and leaves no temp file."""
    from snapshot_tool.atomic import AlreadyExists

    target = tmp_path / "g.h5"
    with pytest.raises(AlreadyExists), replacing(target, exclusive=True) as tmp:
        tmp.write_text("mine")
        target.write_text("theirs, finished first")
    assert target.read_text() == "theirs, finished first"
    assert [p.name for p in tmp_path.iterdir()] == ["g.h5"]
    with replacing(tmp_path / "new.h5", exclusive=True) as tmp:
        tmp.write_text("mine")
    assert (tmp_path / "new.h5").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5", "new.h5"]


def test_a_file_in_the_way_of_the_folder_is_named(tmp_path: Path) -> None:
    # --golden goldens/model.h5 where goldens is a file: the OS says only "File exists" or
    # "Not a directory".
    blocker = tmp_path / "goldens"
    blocker.write_text("not a folder")
    for target in (blocker / "g.h5", blocker / "sub" / "g.h5"):
        with pytest.raises(SnapshotToolError, match=f"{blocker} is a file, not a folder"):
            write_text(target, "x")
    assert blocker.read_text() == "not a folder"


def test_unwritable_folder_is_named_not_the_temp_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A read-only goldens folder (a read-only mount, chattr +i: root is refused there too).
    # The refusal is simulated at os.open, since the test may run as root.
    import errno

    real_open = os.open

    def refuse(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    target = tmp_path / "g.h5"
    with pytest.raises(SnapshotToolError) as err:
        write_text(target, "x")
    assert str(err.value) == (f"cannot write {target}: its folder {tmp_path} is not writable "
                              "(Read-only file system)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", ["EPERM", "EINVAL", "EOPNOTSUPP", "EXDEV"])
def test_exclusive_write_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            code: str) -> None:
    """FAT, some network and container mounts refuse hard links, each with its own errno:
    a record without --force must still write its golden there."""
    import errno

    from snapshot_tool import atomic

    def no_links(src: object, dst: object) -> None:
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(atomic.os, "link", no_links)
    with replacing(tmp_path / "g.h5", exclusive=True) as tmp:
        tmp.write_text("mine")
    assert [p.name for p in tmp_path.iterdir()] == ["g.h5"]
    assert (tmp_path / "g.h5").read_text() == "mine"


def test_exclusive_write_whose_link_was_made_but_reported_existing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS may make the link, lose the reply and answer the retry with EEXIST: the name holds
    this run's own file, which is a success."""
    from snapshot_tool import atomic

    real_link = os.link

    def link_then_eexist(src: str, dst: str) -> None:
        real_link(src, dst)
        raise FileExistsError(17, "File exists", dst)

    monkeypatch.setattr(atomic.os, "link", link_then_eexist)
    with replacing(tmp_path / "g.h5", exclusive=True) as tmp:
        tmp.write_text("mine")
    assert [p.name for p in tmp_path.iterdir()] == ["g.h5"]
    assert (tmp_path / "g.h5").read_text() == "mine"
