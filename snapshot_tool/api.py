"""The library API: ``record`` and ``compare``, which the CLI and pytest users call alike.

Both return frozen dataclasses and raise :class:`SnapshotToolError` for anything the user can
fix. Nothing here prints; progress goes through an optional callback. The work lives in
:mod:`snapshot_tool.recording`, :mod:`snapshot_tool.comparing` and the pieces they share in
:mod:`snapshot_tool.running`; this module is the stable import path.
"""

from __future__ import annotations

from snapshot_tool.comparing import (
    ComparisonResult,
    compare,
    compare_metrics,
    compare_outputs,
    validate_metric_config,
)
from snapshot_tool.recording import RecordedOutput, RecordResult, measure_spread, record
from snapshot_tool.running import Progress, environment, fix_threads, run_signature

__all__ = [
    "ComparisonResult",
    "Progress",
    "RecordResult",
    "RecordedOutput",
    "compare",
    "compare_metrics",
    "compare_outputs",
    "environment",
    "fix_threads",
    "measure_spread",
    "record",
    "run_signature",
    "validate_metric_config",
]
