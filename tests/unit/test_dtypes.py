"""Dtype labels and how a value of one shows (snapshot_tool.dtypes)."""

from __future__ import annotations

import numpy as np

from snapshot_tool.dtypes import scalar_value


def test_a_scalar_string_shows_as_text() -> None:
    assert scalar_value(np.array("héllo".encode(), dtype=object)) == "héllo"
    assert scalar_value(np.array(b"\xff")) == "\ufffd"
    assert scalar_value(np.array(0.5, dtype=np.float32)) == 0.5
    assert scalar_value(np.array(np.complex64(1 + 2j))) == "(1+2j)"
