"""snapshot-tool: a golden-file regression gate for TensorFlow models.

The library API is what the CLI calls. Heavy dependencies (TensorFlow, h5py, scikit-learn)
are imported inside the functions that need them, so importing this package is cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "compare", "record"]

from typing import Any


def record(*args: Any, **kwargs: Any) -> Any:
    """Record a golden file; see :func:`snapshot_tool.api.record`."""
    from snapshot_tool.api import record as _record

    return _record(*args, **kwargs)


def compare(*args: Any, **kwargs: Any) -> Any:
    """Compare a candidate against a golden; see :func:`snapshot_tool.api.compare`."""
    from snapshot_tool.api import compare as _compare

    return _compare(*args, **kwargs)
