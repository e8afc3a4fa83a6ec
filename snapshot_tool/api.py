"""The library API: ``record``, ``compare``, ``localize`` and ``calibrate``, which the CLI
and pytest users call alike.

They return frozen dataclasses and raise :class:`SnapshotToolError` for anything the user can
fix. Nothing here prints; progress goes through an optional callback. The work lives in
:mod:`snapshot_tool.record`, :mod:`snapshot_tool.compare` and :mod:`snapshot_tool.diagnose`;
this module is the stable import path.
"""

from __future__ import annotations

from snapshot_tool.compare import (
    CompareOptions,
    ComparisonResult,
    compare,
    compare_outputs,
    compare_with,
)
from snapshot_tool.diagnose.calibrate import Calibration, CandidateVerdict, calibrate
from snapshot_tool.diagnose.divergence import Localization, Step
from snapshot_tool.diagnose.localize import localize
from snapshot_tool.latency.fingerprint import environment, fix_threads
from snapshot_tool.metrics.thresholds import compare_metrics, validate_metric_config
from snapshot_tool.models.base import run_signature
from snapshot_tool.progress import Progress
from snapshot_tool.record import (
    RecordedOutput,
    RecordOptions,
    RecordResult,
    measure_spread,
    record,
    record_with,
)

__all__ = [
    "Calibration",
    "CandidateVerdict",
    "CompareOptions",
    "ComparisonResult",
    "Localization",
    "Progress",
    "RecordOptions",
    "RecordResult",
    "RecordedOutput",
    "Step",
    "calibrate",
    "compare",
    "compare_metrics",
    "compare_outputs",
    "compare_with",
    "environment",
    "fix_threads",
    "localize",
    "measure_spread",
    "record",
    "record_with",
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
