"""The library API: ``record`` and ``compare``, which the CLI and pytest users call alike.

Both return frozen dataclasses and raise :class:`SnapshotToolError` for anything the user can
fix. Nothing here prints; progress goes through an optional callback. The work lives in
:mod:`snapshot_tool.record` and :mod:`snapshot_tool.compare`; this module is the stable
import path.
"""

from __future__ import annotations

from snapshot_tool.compare import (
    ComparisonResult,
    compare,
    compare_metrics,
    compare_outputs,
    validate_metric_config,
)
from snapshot_tool.latency.fingerprint import environment, fix_threads
from snapshot_tool.models.base import run_signature
from snapshot_tool.progress import Progress
from snapshot_tool.record import RecordedOutput, RecordResult, measure_spread, record

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
