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


def _restore_package_exports() -> None:
    """``snapshot_tool.record`` and ``snapshot_tool.compare`` name both the library functions
    and the modules that implement them. Importing a submodule sets the package attribute of
    the same name to the module, which would turn ``from snapshot_tool import record`` into
    the module; the functions are put back once the modules are loaded (api imports both)."""
    import snapshot_tool

    for name, function in (("record", record), ("compare", compare)):
        setattr(snapshot_tool, name, function)


_restore_package_exports()
