from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.labels import load_labels, parse_spec


def test_spec_parsing(tmp_path: Path) -> None:
    assert parse_spec("data.npz:labels").key == "labels"
    assert parse_spec("data.npz").key is None
    odd = tmp_path / "a:b.npz"  # a colon that belongs to the file name
    np.savez(odd, y=np.arange(3))
    assert parse_spec(str(odd)).key is None
    with pytest.raises(InputsError, match="empty KEY"):
        parse_spec("data.npz:")


def test_choosing_the_array(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", y=np.arange(4))
    assert load_labels(parse_spec(str(tmp_path / "one.npz"))).tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "two.npz", x=np.zeros((4, 2)), labels=np.ones(4))
    assert load_labels(parse_spec(str(tmp_path / "two.npz"))).sum() == 4
    np.savez(tmp_path / "amb.npz", a=np.zeros(4), b=np.ones(4))
    with pytest.raises(InputsError, match="FILE:KEY"):
        load_labels(parse_spec(str(tmp_path / "amb.npz")))
    np.savez(tmp_path / "txt.npz", y=np.array(["a", "b"]))
    with pytest.raises(InputsError, match="numeric"):
        load_labels(parse_spec(str(tmp_path / "txt.npz")))
