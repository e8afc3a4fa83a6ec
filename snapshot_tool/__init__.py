"""snapshot-tool: a golden-file regression gate for TensorFlow models.

The library API is what the CLI calls::

    from snapshot_tool import compare, record

Heavy dependencies (TensorFlow, h5py, scikit-learn) are imported inside the functions that
need them, and ``record``/``compare`` themselves are resolved on first use, so importing
this package stays cheap (``snapshot-tool --help`` relies on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "compare", "record"]

if TYPE_CHECKING:
    from snapshot_tool.api import compare, record


def __getattr__(name: str) -> Any:
    if name in ("record", "compare"):
        from snapshot_tool import api

        return getattr(api, name)
    raise AttributeError(f"module 'snapshot_tool' has no attribute {name!r}")
