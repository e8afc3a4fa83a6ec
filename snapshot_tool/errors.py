"""Errors a user can fix. The CLI turns every one of them into one ``error:`` line and exit 2.

Anything that is *not* a ``SnapshotToolError`` is a bug in snapshot-tool and keeps its
traceback, so the two never get confused in a CI log.
"""

from __future__ import annotations


class SnapshotToolError(Exception):
    """A problem with the user's input: model, golden, inputs, config or options."""


class ModelError(SnapshotToolError):
    """The model path is missing, unreadable, or not a model snapshot-tool can run."""


class SignatureError(SnapshotToolError):
    """The requested signature does not exist, or inputs do not fit it."""


class InputsError(SnapshotToolError):
    """An inputs or labels file is missing, unreadable, or does not match the signature."""


class GoldenError(SnapshotToolError):
    """A golden file is missing, not ours, of an unknown version, or fails its checksums."""


class ConfigError(SnapshotToolError):
    """The tolerance/threshold configuration has unknown keys or bad values."""
