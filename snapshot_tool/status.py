"""``status``: the goldens under a folder, whether they still match the model on disk, and
which have an obtained golden waiting to be reviewed and accepted.

Only root attributes are read (no tensor is loaded), and each model is hashed once however
many goldens name it, so a repository's worth of goldens is listed in seconds.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from snapshot_tool.errors import SnapshotToolError

if TYPE_CHECKING:  # models.load imports the model runtimes; status needs them only to hash
    from snapshot_tool.models.load import RecordedModelState as ModelState

# Folders that never hold a project's goldens but can hold very many files.
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__",
              ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox"}


@dataclass(frozen=True)
class GoldenStatus:
    path: Path
    format_version: int | None
    created: str
    age_days: float | None
    model_path: str
    model_digest: str
    model_state: ModelState
    obtained: Path | None  # a pending G.obtained.h5 beside the golden
    accepted: int  # entries in its history
    problem: str = ""  # set when the file could not be read as a golden

    @property
    def stale(self) -> bool:
        return self.model_state in ("changed", "missing") or self.obtained is not None \
            or bool(self.problem)


def _h5_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".h5.d"))
        for name in sorted(files):
            if name.endswith(".h5"):
                yield Path(folder) / name


def _age_days(created: str, now: _dt.datetime) -> float | None:
    try:
        when = _dt.datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (now - when).total_seconds() / 86400.0)


def _model_state(model_path: str, digest: str, golden: Path, root: Path,
                 cache: dict[Path, str]) -> ModelState:
    from snapshot_tool.models.load import locate_recorded_model

    return locate_recorded_model(model_path, digest, golden, root, digests=cache)[1]


def golden_status(root: str | Path = ".") -> list[GoldenStatus]:
    """Every golden under ``root`` (obtained files are listed with their golden)."""
    from snapshot_tool.golden.io import root_attrs
    from snapshot_tool.golden.schema import OBTAINED_SUFFIX, RootInfo, obtained_path

    base = Path(root)
    if not base.is_dir():
        raise SnapshotToolError(f"{base} is not a folder; give the folder to scan for goldens")
    now = _dt.datetime.now(_dt.UTC)
    cache: dict[Path, str] = {}
    found: list[GoldenStatus] = []
    for path in _h5_files(base):
        if path.name.endswith(OBTAINED_SUFFIX):
            continue
        try:
            # bounded: one damaged file must not hang the listing
            info = RootInfo.from_attrs(root_attrs(path), path)
        except SnapshotToolError as exc:
            if "not a snapshot-tool golden" in str(exc):
                continue  # some other HDF5 file: not ours to judge
            found.append(GoldenStatus(path, None, "", None, "", "", "unknown", None, 0,
                                      problem=str(exc)))
            continue
        pending = obtained_path(path)
        found.append(GoldenStatus(
            path=path, format_version=info.format_version, created=info.created,
            age_days=_age_days(info.created, now), model_path=info.model_path,
            model_digest=info.model_digest,
            model_state=_model_state(info.model_path, info.model_digest, path, base, cache),
            obtained=pending if pending.exists() else None,
            accepted=len(info.history_entries)))
    return found
